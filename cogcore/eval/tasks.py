"""lm-eval tasks written from the run's held-out data, and runs of lm-eval's own harness on them.

Two tasks, each a YAML file beside its data in `eval/tasks/`, usable with plain
`lm_eval --include_path runs/<name>/eval/tasks --tasks cogcore_closedbook,cogcore_heldout_ppl`:

- `cogcore_closedbook`: closed-book questions about held-out facts, scored as multiple choice
  (the true value against three values of the same kind from other facts), by loglikelihood.
  A model that only learned the domain's language should sit near chance (0.25); a model that
  answers from its weights what it never read would be guessing or leaking.
- `cogcore_heldout_ppl`: perplexity on held-out documents (word/byte perplexity, bits per byte).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from cogcore.questions import Question, normalize_answer

CLOSEDBOOK = "cogcore_closedbook"
HELDOUT_PPL = "cogcore_heldout_ppl"
PPL_CHARS = 2000  # long enough to measure, short enough for a CPU


def write_tasks(folder: Path, questions: list[Question], facts: list[dict], heldout_docs: list[dict],
                seed: int = 0) -> list[str]:
    """Write the task YAMLs and their data; return the task names that have data."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    mc = _multiple_choice(questions, facts, seed)
    if mc:
        _write_jsonl(folder / f"{CLOSEDBOOK}.jsonl", mc)
        _write_yaml(folder / f"{CLOSEDBOOK}.yaml", {
            "task": CLOSEDBOOK, "dataset_path": "json", "test_split": "test",
            # Absolute path: lm-eval resolves data_files against the working directory (STACK-NOTES).
            "dataset_kwargs": {"data_files": {"test": str((folder / f"{CLOSEDBOOK}.jsonl").resolve())}},
            "output_type": "multiple_choice", "doc_to_text": "{{question}}\nAnswer:",
            "doc_to_choice": "choices", "doc_to_target": "gold",
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")],
            "metadata": {"version": 1.0}})
        names.append(CLOSEDBOOK)
    if heldout_docs:
        rows = [{"doc_id": d["id"], "text": d["text"][:PPL_CHARS]} for d in heldout_docs]
        _write_jsonl(folder / f"{HELDOUT_PPL}.jsonl", rows)
        _write_yaml(folder / f"{HELDOUT_PPL}.yaml", {
            "task": HELDOUT_PPL, "dataset_path": "json", "test_split": "test",
            "dataset_kwargs": {"data_files": {"test": str((folder / f"{HELDOUT_PPL}.jsonl").resolve())}},
            "output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "{{text}}",
            # lm-eval's own aggregations for these, as in its wikitext task.
            "metric_list": [{"metric": m, "aggregation": agg, "higher_is_better": False} for m, agg in (
                ("word_perplexity", "weighted_perplexity"), ("byte_perplexity", "weighted_perplexity"),
                ("bits_per_byte", "bits_per_byte"))],
            "metadata": {"version": 1.0}})
        names.append(HELDOUT_PPL)
    return names


def _multiple_choice(questions: list[Question], facts: list[dict], seed: int) -> list[dict]:
    by_kind: dict[str, list[str]] = {}
    for f in facts:
        by_kind.setdefault(f["kind"], []).append(f["text"])
    rng = random.Random(seed)
    rows = []
    for q in questions:
        pool = sorted({v for v in by_kind.get(q.kind, []) if normalize_answer(v) != normalize_answer(q.answer)})
        if len(pool) < 3:
            continue
        choices = rng.sample(pool, 3) + [q.answer]
        rng.shuffle(choices)
        rows.append({"question": q.question, "choices": choices, "gold": choices.index(q.answer),
                     "fact_id": q.fact_id})
    return rows


def run_lm_eval(model, tokenizer, task_dir: Path, tasks: list[str], batch_size: int) -> dict:
    """Run lm-eval's harness in process on a loaded model; return {task: {metric: value}}."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, log_samples=False)
    return {task: {k.split(",")[0]: v for k, v in metrics.items()
                   if isinstance(v, (int, float)) and "stderr" not in k}
            for task, metrics in out["results"].items()}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _write_yaml(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
