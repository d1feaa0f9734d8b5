"""The model in a loop with its tools: generate, parse tool calls as data, dispatch, answer.

Tool calls are parsed as JSON (`parse_tool_calls`) and dispatched only to the tools declared here;
an undeclared tool or a malformed call is reported back to the model as a tool message, never
executed. Generation is batched across questions, since on a CPU a 135M model is overhead-bound at
batch 1 (STACK-NOTES).

    rt = ToolRuntime(model, tokenizer, tools={"search": (SEARCH_TOOL, lambda args: ...)})
    transcripts = rt.answer_many(["What is the wire fee?"])
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from cogcore.train.chat_template import parse_tool_calls

ToolFn = Callable[[dict], str]


@dataclass
class Transcript:
    question: str
    messages: list[dict]
    answer: str = ""
    calls: list[dict] = field(default_factory=list)  # {name, arguments, result}
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class ToolRuntime:
    def __init__(self, model, tokenizer, tools: dict[str, tuple[dict, ToolFn]], max_new_tokens: int = 64,
                 max_rounds: int = 3, batch_size: int = 8):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tools = tools
        self.max_new_tokens = max_new_tokens
        self.max_rounds = max_rounds
        self.batch_size = batch_size

    def answer_many(self, questions: list[str]) -> list[Transcript]:
        t0 = time.time()
        live = [Transcript(q, [{"role": "user", "content": q}]) for q in questions]
        pending = list(live)
        for round_ in range(self.max_rounds):
            if not pending:
                break
            outputs = self._generate([t.messages for t in pending])
            pending = [t for t, out in zip(pending, outputs) if self._step(t, out, last=round_ == self.max_rounds - 1)]
        seconds = (time.time() - t0) / max(len(live), 1)
        for t in live:
            t.seconds = seconds  # batched generation: the per-question share of the wall time
        return live

    def _step(self, t: Transcript, text: str, last: bool) -> bool:
        """Record one generation; return True when the conversation goes on (a tool was called)."""
        content, calls, errors = parse_tool_calls(text)
        if not calls and not errors or last:
            t.answer = content
            t.messages.append({"role": "assistant", "content": content})
            return False
        t.messages.append({"role": "assistant", "content": content, "tool_calls": [
            {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
            for c in calls]})
        for err in errors:
            t.errors.append(err)
            t.messages.append({"role": "tool", "name": "error", "content": f"error: {err}"})
        for call in calls:
            result = self.dispatch(call)
            t.calls.append({**call, "result": result})
            t.messages.append({"role": "tool", "name": call["name"], "content": result})
        return True

    def dispatch(self, call: dict) -> str:
        """Run a declared tool with parsed arguments; anything else is an error message."""
        if call["name"] not in self.tools:
            return f"error: unknown tool {call['name']!r}; available: {', '.join(self.tools)}"
        _, fn = self.tools[call["name"]]
        try:
            return fn(call["arguments"])
        except Exception as e:  # a tool's failure is the model's information, not our crash
            return f"error: tool {call['name']!r} failed: {type(e).__name__}: {e}"

    @torch.no_grad()
    def _generate(self, conversations: list[list[dict]]) -> list[str]:
        tok = self.tokenizer
        schemas = [schema for schema, _ in self.tools.values()]
        prompts = [tok.apply_chat_template(m, tools=schemas, tokenize=False, add_generation_prompt=True)
                   for m in conversations]
        outputs = []
        side, tok.padding_side = tok.padding_side, "left"  # decoder-only batches pad on the left
        try:
            for i in range(0, len(prompts), self.batch_size):
                enc = tok(prompts[i:i + self.batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(self.model.device)
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
                new = gen[:, enc["input_ids"].shape[1]:]
                outputs += tok.batch_decode(new, skip_special_tokens=False)
        finally:
            tok.padding_side = side
        return [o.split(tok.eos_token)[0].replace(tok.pad_token, "") for o in outputs]
