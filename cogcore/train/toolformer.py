"""The Toolformer filter: keep a planned search call only where its result helps predict the facts.

For each call planned by `cpt_data.plan_calls`, the base model scores the fact tokens that follow
the call three ways (Schick et al. 2023, "Toolformer", section 2):

    L_plain  the fact tokens after the text before the call
    L_empty  ... after the text, the call, and an empty result
    L_result ... after the text, the call, and its result

and the call is kept where `min(L_plain, L_empty) - L_result >= tau`: the result, not the mere
presence of a call, must make the facts easier to predict. L is the mean cross-entropy (nats) over
the tokens of the facts the call answers, in the text from the call to the last of them.
Toolformer weights the next few tokens with decaying weights and uses tau_f = 1.0 on that
weighted loss; we score only the fact tokens, unweighted, and default to tau = 0.0 (any decrease),
because a base model that has never seen the markup gains less from a result than a fine-tuned
one does. Raise tau to keep fewer, surer calls.

Every sequence is tokenized piece by piece exactly as `cpt_data.encode_segments` does for
training, so the scored tokens are those the model will train on. Scoring is batched, without
gradients, with right padding (so position ids are the natural ones). SmolLM2-135M on one CPU
core scores ~0.65 calls/s (~280 tokens/s): the ~1,900 calls of the banking corpus at 4 per
document take ~50 minutes, so on a CPU filter a sample, or run it on a GPU.

    examples = [e for doc in docs for e in call_examples(doc, plan_calls(doc, facts_of[doc["id"]]))]
    kept = filter_calls(model, tokenizer, examples, tau=0.0)
    calls = calls_by_doc(examples, kept)   # -> build_cpt_rows(..., strategy="toolcall", calls=calls)
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from cogcore.io import write_jsonl_atomic
from cogcore.token_loss import token_nll
from cogcore.train.cpt_data import (
    PlannedCall,
    call_markup,
    encode_untrusted,
    fact_label_mask,
    plan_calls,
    result_markup,
    result_segment,
)
from cogcore.untrusted_text import control_strings

DEFAULT_TAU = 0.0
DEFAULT_PREFIX_CHARS = 400


@dataclass(frozen=True)
class CallExample:
    """One planned call in its document: the text before it, its markup, and the text it answers."""

    call: PlannedCall
    prefix: str
    call_text: str
    result_text: str
    continuation: str
    spans: tuple[tuple[int, int], ...]  # the answered facts, relative to `continuation`


def call_examples(doc: dict, calls: list[PlannedCall], prefix_chars: int = DEFAULT_PREFIX_CHARS) -> list[CallExample]:
    """The scoring examples of a document's calls, cut as `render_segments` cuts the training text."""
    text, out = doc["text"], []
    for call in calls:
        cut = len(text[: call.at].rstrip(" \t"))
        start = max(0, cut - prefix_chars)
        if start:  # begin at a word, not mid-token
            start = text.find(" ", start, cut) + 1 or start
        newline = "" if cut == 0 or text[cut - 1] == "\n" else "\n"
        end = max(e for _, e in call.spans)
        out.append(
            CallExample(
                call,
                text[start:cut],
                newline + call_markup(call.query),
                result_markup(call.result),
                text[cut:end],
                tuple((s - cut, e - cut) for s, e in call.spans),
            )
        )
    return out


def calls_by_doc(examples: list[CallExample], kept: list[bool]) -> dict[str, list[PlannedCall]]:
    """doc id -> the calls that passed, for `build_cpt_rows(..., calls=...)`."""
    out: dict[str, list[PlannedCall]] = defaultdict(list)
    for example, keep in zip(examples, kept):
        if keep:
            out[example.call.doc_id].append(example.call)
    return dict(out)


def call_losses(model, tokenizer, examples: list[CallExample], batch_size: int = 8) -> list[dict]:
    """Per example: {"plain", "empty", "result"} mean fact-token losses (nats) and `fact_tokens`."""
    if not examples:
        return []
    # The document's characters neutralized as training neutralizes them (encode_segments): the
    # scored tokens are the trained ones even where a document holds control-token text.
    pieces = [piece for e in examples for piece in _pieces(e)]
    enc = encode_untrusted(
        tokenizer, [text for text, _ in pieces], [where for _, where in pieces], control_strings(tokenizer)
    )
    sequences, targets, n_facts = [], [], []
    for i, e in enumerate(examples):
        prefix, call, result, empty, cont = (ids for ids, _ in enc[5 * i : 5 * i + 5])
        in_fact = fact_label_mask(enc[5 * i + 4][1], sorted(e.spans))
        n_facts.append(sum(in_fact))
        for head in (prefix, prefix + call + empty, prefix + call + result):
            sequences.append(head + cont)
            targets.append([False] * len(head) + in_fact)
    sums = token_nll(model, sequences, targets, batch_size)
    out = []
    for i, n in enumerate(n_facts):
        plain, empty, result = (s / max(n, 1) for s in sums[3 * i : 3 * i + 3])
        out.append({"plain": plain, "empty": empty, "result": result, "fact_tokens": n})
    return out


def _pieces(e: CallExample) -> list[tuple[str, tuple[int, int] | None]]:
    """The five pieces of an example, each with the range of it that comes from the document."""
    result = result_segment(e.call.result)  # its text is e.result_text; the passage inside is the document's
    return [
        (e.prefix, (0, len(e.prefix))),
        (e.call_text, None),
        (e.result_text, result.untrusted),
        (result_markup(""), None),
        (e.continuation, (0, len(e.continuation))),
    ]


def filter_calls(
    model, tokenizer, examples: list[CallExample], tau: float = DEFAULT_TAU, batch_size: int = 8
) -> list[bool]:
    """Keep a call where min(L_plain, L_empty) - L_result >= tau (see the module docstring)."""
    return [_passes(x, tau) for x in call_losses(model, tokenizer, examples, batch_size)]


def _gain(losses: dict) -> float:
    """How much the result lowers the loss on the facts (nats per fact token)."""
    return min(losses["plain"], losses["empty"]) - losses["result"]


def _passes(losses: dict, tau: float) -> bool:
    return losses["fact_tokens"] > 0 and _gain(losses) >= tau


def select_calls(
    model,
    tokenizer,
    docs: list[dict],
    facts: list[dict],
    max_calls_per_doc: int,
    tau: float = DEFAULT_TAU,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    log_path: Path | None = None,
) -> tuple[dict[str, list[PlannedCall]], dict]:
    """Plan every document's calls, score them (all, or a seeded sample of `limit`), keep those that
    pass; return doc id -> kept calls (for `build_cpt_rows(..., calls=...)`) and the counts. Calls
    left out of the sample are dropped, not kept unscored: every call trained on has earned its place.
    With `log_path`, each scored call and its three losses go to a JSONL file."""
    examples = _planned_examples(docs, facts, max_calls_per_doc)
    planned = len(examples)
    if limit is not None and planned > limit:
        examples = sorted(random.Random(seed).sample(examples, limit), key=lambda e: (e.call.doc_id, e.call.at))
    losses = _scored(model, tokenizer, examples, batch_size)
    kept = [_passes(x, tau) for x in losses]
    if log_path is not None:
        write_jsonl_atomic(
            log_path,
            (
                {"doc_id": e.call.doc_id, "at": e.call.at, "query": e.call.query, **x, "kept": k}
                for e, x, k in zip(examples, losses, kept)
            ),
        )
    gains = [_gain(x) for x in losses if x["fact_tokens"]]
    stats = {
        "planned": planned,
        "scored": len(examples),
        "kept": sum(kept),
        "tau": tau,
        "mean_gain_nats": round(sum(gains) / len(gains), 4) if gains else None,
    }
    return calls_by_doc(examples, kept), stats


def _planned_examples(docs: list[dict], facts: list[dict], max_calls_per_doc: int) -> list[CallExample]:
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for f in facts:
        by_doc[f["doc_id"]].append(f)
    return [
        e for doc in docs for e in call_examples(doc, plan_calls(doc, by_doc.get(doc["id"], []), max_calls_per_doc))
    ]


def _scored(model, tokenizer, examples: list[CallExample], batch_size: int) -> list[dict]:
    """call_losses over all examples, a few batches at a time (so the progress bar moves)."""
    losses = []
    step = max(batch_size * 4, 1)
    for i in tqdm(range(0, len(examples), step), desc="toolformer filter", unit="batch", disable=not examples):
        losses += call_losses(model, tokenizer, examples[i : i + step], batch_size)
    return losses
