"""Counting the work of every curation step, exactly, for documents, bytes and tokens.

For each step: `docs_in == kept + sum(dropped.values())`, and the same for bytes and tokens, where
a document's bytes and tokens are measured as it enters the step. A step that rewrites text
(normalization, boilerplate removal, redaction) changes the size of the documents it keeps; that
change is recorded as `bytes_delta` / `tokens_delta`, so the next step's input is exactly
`kept + delta`. Tokens are whitespace-separated words: cheap, exact and independent of any model.

A step's counts are a `StepStats` (stats.py, where they are saved); those of parallel workers add up
(`a + b`, or `sum(parts, start=StepStats(name))`). A sample of each drop reason is kept for
inspection (`cogcore inspect RUN --reason R`).
"""

from __future__ import annotations

from cogcore.curate.stats import StepStats

SAMPLES_PER_REASON = 20
SAMPLE_CHARS = 500


def size(doc: dict) -> tuple[int, int]:
    """(bytes, tokens) of a document's text."""
    text = doc["text"]
    return len(text.encode("utf-8")), len(text.split())


def check_accounting(steps: list[StepStats], docs_in: int, docs_out: int) -> None:
    """The identity at every step and across steps; a violation is a bug, so it fails loudly."""
    n = docs_in
    expected_bytes = None
    for st in steps:
        if st.docs_in != n or st.docs_in != st.kept + sum(st.dropped.values()):
            raise AssertionError(f"document accounting broken at step {st.step}: {st.to_json()}")
        for unit in ("bytes", "tokens"):
            if getattr(st, f"{unit}_in") != getattr(st, f"{unit}_kept") + sum(getattr(st, f"{unit}_dropped").values()):
                raise AssertionError(f"{unit} accounting broken at step {st.step}: {st.to_json()}")
        if expected_bytes is not None and st.bytes_in != expected_bytes:
            raise AssertionError(
                f"bytes entering {st.step} ({st.bytes_in}) != bytes left by the step before ({expected_bytes})"
            )
        expected_bytes = st.bytes_kept + st.bytes_delta
        n = st.kept
    if n != docs_out:
        raise AssertionError(f"accounting broken: last step kept {n}, but {docs_out} documents were written")


def add_sample(samples: dict[str, list], reason: str, doc: dict, step: str) -> None:
    bucket = samples.setdefault(reason, [])
    if len(bucket) < SAMPLES_PER_REASON:
        bucket.append(
            {
                "id": doc["id"],
                "source": doc["source"],
                "step": step,
                "text": doc["text"][:SAMPLE_CHARS],
                "meta": doc["meta"],
            }
        )


def merge_samples(into: dict[str, list], more: dict[str, list]) -> None:
    for reason, rows in more.items():
        bucket = into.setdefault(reason, [])
        bucket.extend(rows[: max(0, SAMPLES_PER_REASON - len(bucket))])
