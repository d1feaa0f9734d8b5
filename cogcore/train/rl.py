"""Reinforcement learning on the search tool: GRPO with a verifiable reward, as Search-R1 did.

After tool-use fine-tuning has taught the format (a `search` call, then the value with its source),
the model answers training-fact questions itself, several times each (a group), calling the real
index; an answer earns 1 when it holds the fact's value (compared as evaluation compares it:
`cogcore.eval.fact_sets.ValueMatcher`), else 0; GRPO moves the policy toward the answers that beat
their group's mean. What it can improve is what fine-tuning on fixed transcripts cannot reach: the
queries the model itself writes, and which passage it reads the value from.

TRL's `GRPOTrainer` runs the loop (generation, tool execution, the advantage and the clipped
objective). The model's calls are parsed by the tokenizer's response template (the hermes
`<tool_call>` JSON that the chat template renders) and dispatched by name to the one declared tool:
`search`, whose arguments are checked as at serving (`run_search_tool`); nothing a model writes is
evaluated. The tool is listed to the model with the exact schema it was fine-tuned and is served
with (`SEARCH_TOOL`), not one re-derived from a docstring.

    result = train_grpo(model, tok, index, questions, settings, out_dir)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cogcore.questions import Question
from cogcore.retrieval import SEARCH_TOOL, run_search_tool
from cogcore.retrieval.hits import Searcher

# The response template for ChatML turns with hermes tool calls (cogcore's chat template and the
# Qwen family's): how the trainer reads a completion back into content and tool calls.
HERMES_RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


class DeclaredTool(dict):
    """A tool as the trainer takes it: its OpenAI schema (a dict: the chat template lists it as it
    stands) that can also be called with the parsed arguments (the trainer dispatches by
    `__name__`). A bad argument is returned to the model as the tool's error text."""

    def __init__(self, schema: dict, run: Callable[[dict], str]):
        super().__init__(schema)
        self.__name__ = schema["function"]["name"]
        self._run = run

    def __call__(self, **arguments) -> str:
        return self._run(arguments)


def search_tool(index: Searcher) -> DeclaredTool:
    return DeclaredTool(SEARCH_TOOL, lambda arguments: run_search_tool(index, arguments))


@dataclass(frozen=True)
class RlSettings:
    """`train.tools.rl` as the trainer takes it (the recipe documents each field)."""

    steps: int
    questions: int
    group: int  # completions per question (GRPO's G)
    batch_size: int  # questions per step
    lr: float
    beta: float  # KL penalty toward the starting model; 0 = none (no reference model is kept)
    temperature: float
    max_completion_tokens: int
    max_tool_calls: int
    lora_r: int
    seed: int


def final_text(completion) -> str:
    """What the user reads: the last assistant turn's text of a completion (messages or a string)."""
    if isinstance(completion, str):
        return completion
    turns = [m for m in completion if m.get("role") == "assistant"]
    return str(turns[-1].get("content") or "") if turns else ""


def called_tool(completion) -> bool:
    return not isinstance(completion, str) and any(m.get("role") == "tool" for m in completion)


def answer_reward(matcher: Callable[[str, str], bool]) -> Callable[..., list[float]]:
    """The verifiable reward: 1.0 when the final answer holds the expected value, else 0.0."""

    def reward(completions, answer, **_) -> list[float]:
        return [1.0 if matcher(a, final_text(c)) else 0.0 for c, a in zip(completions, answer, strict=True)]

    reward.__name__ = "answer_holds_value"
    return reward


def prompts(questions: Sequence[Question]) -> list[dict]:
    """The training rows: the user's question (the trainer adds the tool list), and its answer."""
    return [{"prompt": [{"role": "user", "content": q.question}], "answer": q.answer} for q in questions]


def train_grpo(
    model,
    tokenizer,
    index: Searcher,
    questions: Sequence[Question],
    settings: RlSettings,
    out_dir: Path,
    matcher: Callable[[str, str], bool],
    report_to: Sequence[str] = (),
):
    """GRPO on `questions` with the search tool; returns (the model with its LoRA merged, a record
    of the run: steps, seconds, the reward and tool-call rate per logged step)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    tokenizer.response_template = HERMES_RESPONSE_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    generations = settings.batch_size * settings.group
    args = GRPOConfig(
        output_dir=str(out_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=generations,
        num_generations=settings.group,
        generation_batch_size=generations,
        learning_rate=settings.lr,
        beta=settings.beta,
        temperature=settings.temperature,
        max_completion_length=settings.max_completion_tokens,
        max_tool_calling_iterations=settings.max_tool_calls,
        logging_steps=1,
        save_strategy="no",
        report_to=list(report_to),
        seed=settings.seed,
        use_cpu=not _has_cuda(),
        bf16=False,
        remove_unused_columns=False,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[answer_reward(matcher)],
        args=args,
        train_dataset=Dataset.from_list(prompts(questions)),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=settings.lora_r, lora_alpha=2 * settings.lora_r, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        tools=[search_tool(index)],
    )
    began = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - began
    history = [
        {k: h[k] for k in ("step", "reward", "tools/call_frequency", "tools/failure_frequency") if k in h}
        for h in trainer.state.log_history
        if "reward" in h
    ]
    merged = trainer.model.merge_and_unload()
    return merged, {"steps": trainer.state.global_step, "seconds": round(seconds, 1), "history": history}


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
