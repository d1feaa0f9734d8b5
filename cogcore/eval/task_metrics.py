"""lm-eval hooks for cogcore's own tasks: `custom_dataset` and `process_results`.

`write_tasks` copies this file beside the task YAMLs (as `cogcore_task_metrics.py`), where a YAML
line `process_results: !function cogcore_task_metrics.segment_perplexity` finds it, so that plain
`lm_eval --include_path runs/<name>/eval/tasks` runs the tasks with no cogcore installed. It must
therefore import nothing from cogcore.
"""

from __future__ import annotations

from pathlib import Path


def task_rows(data_file: str, **_) -> dict:
    """A task's rows as its `test` split, read from the JSONL file of that name beside this file,
    wherever the tasks folder is now (lm-eval passes the task's dataset_kwargs and metadata)."""
    import datasets

    path = Path(__file__).with_name(data_file)
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(path), split="train")})


def segment_perplexity(doc: dict, results: list) -> dict:
    """One non-fact segment of a held-out document, scored as a loglikelihood request: its summed
    log-probability, weighted by its words and bytes, so that lm-eval's `weighted_perplexity` and
    `bits_per_byte` aggregations give the perplexity of the document's text with the facts left out
    (the same aggregations its wikitext task uses for the whole text)."""
    loglikelihood = results[0][0]  # (loglikelihood, is_greedy)
    text = doc["continuation"]
    n_bytes = len(text.encode("utf-8"))
    return {
        "word_perplexity": (loglikelihood, len(text.split())),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
