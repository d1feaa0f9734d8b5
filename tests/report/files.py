"""Run directories' files as the stages write them, for the tests of the report and compare.

Curation stats, training metrics and eval results are built with the stages' own classes
(`CurateStats`, `TrainMetrics`, `EvalResults`), so a test's run directory cannot drift from what
the stages write.
"""

from __future__ import annotations

import json
from pathlib import Path

from cogcore.curate.stats import CurateStats, StepStats, UnreadableEntry
from cogcore.eval.results import EvalResults, Memorization
from cogcore.train.metrics import LoggedStep, TrainMetrics

# A 2-layer, 64-wide Llama's config.json: what the cost model reads of the final model.
TINY_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "tie_word_embeddings": True,
}


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def curate_stats(docs_in: int, steps=(), *, unreadable=(), **fields) -> dict:
    """stats.json of a curation: `steps` as (name, documents in, kept, {reason: dropped}); `unreadable`
    as (path, reason) pairs."""
    kept = steps[-1][2] if steps else docs_in
    always = {
        "docs_out": kept,
        "splits": {},
        "facts": {},
        "pii": {},
        "unreadable_by_reason": {},
        "recoded": {},
        "warnings": [],
    }
    return CurateStats(
        docs_in=docs_in,
        steps=[StepStats(name, docs_in=n, kept=k, dropped=d) for name, n, k, d in steps],
        unreadable=[UnreadableEntry(path=p, reason=r, source="docs") for p, r in unreadable],
        **{**always, **fields},
    ).to_json()


def train_metrics(
    losses=(),
    *,
    method: str = "full",
    tokens: int = 4096,
    seconds: float = 2.0,
    trainable_params: int = 150_000,
    total_params: int = 150_000,
    **fields,
) -> dict:
    """metrics.json of a train stage that trained, one logged step per loss."""
    history = [
        LoggedStep(step=i + 1, loss=loss, learning_rate=None, grad_norm=None, tokens_per_s=None, mfu=None)
        for i, loss in enumerate(losses)
    ]
    return TrainMetrics(
        method=method,
        steps=len(losses) or 4,
        tokens_trained=tokens,
        seconds=seconds,
        tokens_per_s=tokens / seconds,
        trainable_params=trainable_params,
        total_params=total_params,
        log_history=history,
        **fields,
    ).to_json()


def eval_results(**fields) -> dict:
    """results.json with what the eval stage always writes, and `fields`."""
    always = {
        "lm_eval_version": "0.4.9",
        "backend": "hf",
        "questions": 4,
        "train_questions": 4,
        "memorization": Memorization(),
    }
    return EvalResults(**{**always, **fields}).to_json()
