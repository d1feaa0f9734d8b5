"""The model in a loop with its tools: generate, parse tool calls as data, dispatch, answer.

Tool calls are parsed as JSON (`parse_tool_calls`) and dispatched only to the tools declared here,
with arguments checked against the tool's JSON schema first; an undeclared tool, a malformed call
(too long or too deeply nested included) or invalid arguments are reported back to the model as a
tool message, never executed. Tool results enter the prompt neutralized (cogcore.untrusted_text), so
a document cannot forge a turn or a call in it. The recipe's own tools run where the recipe names a
Python implementation (`python: module:function`, see `python_tools`). Generation is batched
across questions, since on a CPU a 135M model is overhead-bound at batch 1 (greedy decoding of
SmolLM2-135M ran at ~12 tokens/s on 2 cores at batch 1: 30 small layers, each a kernel launch).

    rt = ToolRuntime(model, tokenizer, tools={"search": (SEARCH_TOOL, lambda args: ...)})
    transcripts = rt.answer_many(["What is the wire fee?"])
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import torch

from cogcore.tool_protocol import parse_tool_calls, template_messages
from cogcore.untrusted_text import control_strings

ToolFn = Callable[[dict], str]
Tools = dict[str, tuple[dict, "ToolFn | None"]]  # name -> (OpenAI function schema, implementation or None)


def argument_error(schema: dict, arguments: dict) -> str | None:
    """Why `arguments` do not fit the tool's parameter schema, or None when they do."""
    parameters = schema.get("function", schema).get("parameters") or {"type": "object"}
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(parameters)(parameters).iter_errors(arguments)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message}{f' (at {where})' if where else ''}"


def dispatch(tools: Tools, call: dict) -> str:
    """Run a declared tool with checked arguments; anything else is an error message for the model."""
    name = call["name"]
    if name not in tools:
        return f"error: unknown tool {name!r}; available: {', '.join(tools)}"
    schema, fn = tools[name]
    problem = argument_error(schema, call["arguments"])
    if problem:
        return f"error: invalid arguments for {name!r}: {problem}"
    if fn is None:
        return f"error: tool {name!r} has no implementation here (the recipe gives it no `python:`)"
    try:
        result = fn(call["arguments"])
    except Exception as e:  # a tool's failure is the model's information, not our crash
        return f"error: tool {name!r} failed: {type(e).__name__}: {e}"
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)


def python_tools(specs: list[dict]) -> Tools:
    """The recipe's tools ({name, description, parameters, python}) with their implementations
    imported: only the named function of the named module; a tool without `python` stays declared
    (listed to the model) but answers every call with an error."""
    tools: Tools = {}
    for spec in specs:
        schema = {"type": "function", "function": {k: spec[k] for k in ("name", "description", "parameters")}}
        fn = None
        if spec.get("python"):
            module_name, _, attr = spec["python"].partition(":")
            try:
                fn = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as e:
                raise ValueError(
                    f"tool {spec['name']!r}: cannot load {spec['python']!r} ({type(e).__name__}: {e}); "
                    "is the module installed or on PYTHONPATH?"
                ) from None
            if not callable(fn):
                raise ValueError(f"tool {spec['name']!r}: {spec['python']!r} is not a function")
        tools[spec["name"]] = (schema, fn)
    return tools


@dataclass
class Transcript:
    question: str
    messages: list[dict]
    answer: str = ""
    calls: list[dict] = field(default_factory=list)  # {name, arguments, result}
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


CONSTRAIN = ("none", "valid", "required")


def bounded_strings(schema, max_chars: int):
    """A copy of a JSON schema where every string without a maxLength gets `max_chars`."""
    if isinstance(schema, list):
        return [bounded_strings(s, max_chars) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bounded_strings(v, max_chars) for k, v in schema.items()}
    if out.get("type") == "string" and "maxLength" not in out:
        out["maxLength"] = max_chars
    return out


class ToolRuntime:
    """`constrain`: "none" generates freely; "valid" makes every tool call the model starts fit its
    tool's JSON schema (xgrammar's structural tag for hermes-style calls, applied to the logits as
    they are generated); "required" also makes the first turn a call (later turns as "valid")."""

    def __init__(
        self,
        model,
        tokenizer,
        tools: Tools,
        max_new_tokens: int = 64,
        max_rounds: int = 3,
        batch_size: int = 8,
        constrain: str = "none",
    ):
        if constrain not in CONSTRAIN:
            raise ValueError(f"constrain {constrain!r}: allowed: {', '.join(CONSTRAIN)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tools = tools
        self.max_new_tokens = max_new_tokens
        self.max_rounds = max_rounds
        self.batch_size = batch_size
        self.constrain = constrain if tools else "none"  # nothing to call: nothing to constrain
        self._grammars: dict[str, object] = {}

    def answer_many(self, questions: list[str]) -> list[Transcript]:
        t0 = time.time()
        live = [Transcript(q, [{"role": "user", "content": q}]) for q in questions]
        pending = list(live)
        for round_ in range(self.max_rounds):
            if not pending:
                break
            outputs = self._generate([t.messages for t in pending], first=round_ == 0)
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
        t.messages.append(
            {
                "role": "assistant",
                "content": content,
                "tool_calls": [
                    {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                    for c in calls
                ],
            }
        )
        for err in errors:
            t.errors.append(err)
            t.messages.append({"role": "tool", "name": "error", "content": f"error: {err}"})
        for call in calls:
            result = self.dispatch(call)
            t.calls.append({**call, "result": result})
            t.messages.append({"role": "tool", "name": call["name"], "content": result})
        return True

    def dispatch(self, call: dict) -> str:
        return dispatch(self.tools, call)

    @torch.no_grad()
    def prompts(self, conversations: list[list[dict]]) -> list[str]:
        """The text the model continues: every declared tool listed, as in training. Tool results,
        the question and the model's own turns are neutralized, as in training: a document in a
        search result cannot forge a turn (the transcript keeps them as they were)."""
        schemas = [schema for schema, _ in self.tools.values()]
        controls = control_strings(self.tokenizer)
        # Arguments as mappings, as in training: most model templates print `arguments | tojson`.
        return [
            self.tokenizer.apply_chat_template(
                template_messages(m, controls), tools=schemas, tokenize=False, add_generation_prompt=True
            )
            for m in conversations
        ]

    def _grammar(self, choice: str):
        """The compiled structural tag for a tool choice ("auto" or "required"), compiled once."""
        if choice not in self._grammars:
            import xgrammar as xgr

            vocab = self.model.get_output_embeddings().weight.shape[0]
            compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab))
            # Strings the schema leaves unbounded get a bound that fits in the turn: a weak model
            # repeating itself inside a query would otherwise run out of tokens mid-call.
            bound = max(16, 2 * self.max_new_tokens)
            tag = xgr.get_builtin_structural_tag(
                "qwen_3",  # Qwen3's calls are hermes-style: <tool_call>{"name", "arguments"}</tool_call>
                tools=[bounded_strings(schema, bound) for schema, _ in self.tools.values()],
                tool_choice=choice,
                reasoning="disabled",
                max_whitespace_cnt=2,  # JSON allows endless whitespace; a weak model takes the offer
            )
            self._grammars[choice] = compiler.compile_structural_tag(tag)
        return self._grammars[choice]

    def _constraint(self, first: bool) -> list:
        if self.constrain == "none":
            return []
        import xgrammar as xgr

        choice = "required" if self.constrain == "required" and first else "auto"
        return [xgr.contrib.hf.LogitsProcessor(self._grammar(choice))]  # one per generate() call

    def _generate(self, conversations: list[list[dict]], first: bool = True) -> list[str]:
        tok = self.tokenizer
        prompts = self.prompts(conversations)
        outputs = []
        side, tok.padding_side = tok.padding_side, "left"  # decoder-only batches pad on the left
        try:
            for i in range(0, len(prompts), self.batch_size):
                enc = tok(
                    prompts[i : i + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.model.device)
                gen = self.model.generate(
                    **enc,
                    max_new_tokens=self.max_new_tokens,
                    logits_processor=self._constraint(first),
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
                new = gen[:, enc["input_ids"].shape[1] :]
                outputs += tok.batch_decode(new, skip_special_tokens=False)
        finally:
            tok.padding_side = side
        return [o.split(tok.eos_token)[0].replace(tok.pad_token, "") for o in outputs]


def run_tools(run: Path, index) -> Tools:
    """The tools a trained run's model was trained with: `search` over `index`, then the recipe's
    own (from `train/tools/tools.json`), implemented where the recipe names a function."""
    from cogcore.retrieval.tool import SEARCH_TOOL, run_search_tool

    tools: Tools = {"search": (SEARCH_TOOL, lambda args: run_search_tool(index, args))}
    spec_file = run / "train" / "tools" / "tools.json"
    if spec_file.exists():
        tools.update(python_tools(json.loads(spec_file.read_text())))
    return tools


_SOURCE = re.compile(r"^\d+\. \[([^\]|]+?)(?: \| [^\]]*)?\]", re.M)


def sources(transcript: Transcript) -> list[str]:
    """Documents the search calls returned, in order of first appearance."""
    found = [m.group(1) for c in transcript.calls if c["name"] == "search" for m in _SOURCE.finditer(c["result"])]
    return list(dict.fromkeys(found))
