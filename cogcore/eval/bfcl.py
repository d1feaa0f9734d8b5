"""The Berkeley Function Calling Leaderboard (single-turn, Python, AST-scored) on a local model.

Each entry's function docs become OpenAI tool schemas (`bfcl_data.to_tools`), the conversation is
rendered with the model's own chat template, one greedy turn is generated (batched, as in
`cogcore.runtime`), the hermes `<tool_call>` blocks are parsed with `parse_tool_calls`, and the
calls are scored by `bfcl_checker.check`, a re-statement of BFCL's AST checker whose verdicts
agree with BFCL's own (`python benchmarks/bfcl_agreement.py`). No tool is executed.

    scores = run_bfcl(model, tokenizer, categories=["simple_python", "parallel"], limit=50, batch_size=16)
    # {"simple_python": <accuracy>, "parallel": <accuracy>}

Parsing is the runtime's (and vLLM's hermes parser's): it also takes `<tool_call>{...}</tool_call>`
without the newlines, or with the closing tag cut off, which BFCL's Qwen handler would count as no
call. That is deliberate: the score is of the calls the served model would make.

`non_live_ast_python` (added when all four non-live AST categories are run) is the unweighted
mean of simple_python, multiple, parallel and parallel_multiple. BFCL's published "non-live AST"
also folds Java and JavaScript into simple, which this scorer does not run: compare with care.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cogcore.eval.bfcl_checker import check
from cogcore.eval.bfcl_data import DEFAULT_CATEGORIES, BfclEntry, canonical_category, load_category, to_tools
from cogcore.tool_protocol import parse_tool_calls

NON_LIVE_AST = ("simple_python", "multiple", "parallel", "parallel_multiple")
# BFCL sends function-calling models no system prompt of its own; without one, our chat template
# would put in its default, which tells the model to use a search tool that BFCL does not offer.
SYSTEM = "You are a helpful assistant."


def run_bfcl(
    model,
    tokenizer,
    categories=DEFAULT_CATEGORIES,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 512,
    out_path: Path | None = None,
) -> dict[str, float]:
    """Accuracy per category on the first `limit` entries of each (all when None); with out_path,
    one JSON line per entry (raw output, parsed calls, verdict and BFCL error type)."""
    entries = [e for c in dict.fromkeys(canonical_category(c) for c in categories) for e in load_category(c, limit)]
    prompts = [
        tokenizer.apply_chat_template(
            with_system(e.messages), tools=to_tools(e.functions), tokenize=False, add_generation_prompt=True
        )
        for e in entries
    ]
    outputs = generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    rows = [score_output(e, text) for e, text in zip(entries, outputs)]
    if out_path is not None:
        Path(out_path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return summarize(rows)


def with_system(messages: list[dict]) -> list[dict]:
    """The entry's messages, opening with a neutral system turn when it has none (live entries may)."""
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": SYSTEM}, *messages]


def score_output(entry: BfclEntry, text: str, underscore_names: bool = True) -> dict:
    """One entry's verdict on the model's generated text (names as `to_tools` showed them)."""
    _, calls, errors = parse_tool_calls(text)
    valid, error = check(entry.category, entry.functions, calls, entry.possible_answer, underscore_names)
    return {
        "id": entry.id,
        "category": entry.category,
        "valid": valid,
        "error": error,
        "output": text,
        "calls": calls,
        "parse_errors": errors,
    }


def summarize(rows: list[dict]) -> dict[str, float]:
    by_category: dict[str, list[bool]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row["valid"])
    scores = {c: sum(v) / len(v) for c, v in by_category.items()}
    if all(c in scores for c in NON_LIVE_AST):
        scores["non_live_ast_python"] = sum(scores[c] for c in NON_LIVE_AST) / len(NON_LIVE_AST)
    return scores


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy completions of rendered prompts, batched; prompts of similar length share a batch
    (BFCL prompts range from one short function to dozens), results come back in input order."""
    model.eval()
    tok = tokenizer
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: dict[int, str] = {}
    side, tok.padding_side = tok.padding_side, "left"  # decoder-only batches pad on the left
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            enc = tok([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(
                model.device
            )
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=False)
            outputs.update(zip(batch, texts))
    finally:
        tok.padding_side = side
    return [outputs[i].split(tok.eos_token)[0].replace(tok.pad_token, "") for i in range(len(prompts))]
