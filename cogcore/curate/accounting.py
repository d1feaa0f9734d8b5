"""Counting the work of every curation step, exactly, for documents, bytes and tokens.

For each step: `docs_in == kept + sum(dropped.values())`, and the same for bytes and tokens, where
a document's bytes and tokens are measured as it enters the step. A step that rewrites text
(normalization, boilerplate removal, redaction) changes the size of the documents it keeps; that
change is recorded as `bytes_delta` / `tokens_delta`, so the next step's input is exactly
`kept + delta`. Tokens are whitespace-separated words: cheap, exact and independent of any model.

Step stats from parallel workers are merged by adding them up; a sample of each drop reason is
kept for inspection (`cogcore inspect RUN --reason R`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

SAMPLES_PER_REASON = 20
SAMPLE_CHARS = 500


def size(doc: dict) -> tuple[int, int]:
    """(bytes, tokens) of a document's text."""
    text = doc["text"]
    return len(text.encode("utf-8")), len(text.split())


@dataclass
class StepStats:
    step: str
    docs_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_kept: int = 0
    bytes_dropped: Counter = field(default_factory=Counter)
    bytes_delta: int = 0
    tokens_in: int = 0
    tokens_kept: int = 0
    tokens_dropped: Counter = field(default_factory=Counter)
    tokens_delta: int = 0
    seconds: float = 0.0

    def record(self, before: list[tuple[int, int]], kept_idx: list[int], dropped: list[tuple[int, str]],
               after: list[tuple[int, int]]) -> None:
        """One batch: sizes before the step, which rows were kept (and their sizes after), which dropped why."""
        self.docs_in += len(before)
        self.bytes_in += sum(b for b, _ in before)
        self.tokens_in += sum(t for _, t in before)
        self.kept += len(kept_idx)
        for i, (b_after, t_after) in zip(kept_idx, after):
            self.bytes_kept += before[i][0]
            self.tokens_kept += before[i][1]
            self.bytes_delta += b_after - before[i][0]
            self.tokens_delta += t_after - before[i][1]
        for i, reason in dropped:
            self.dropped[reason] += 1
            self.bytes_dropped[reason] += before[i][0]
            self.tokens_dropped[reason] += before[i][1]

    def merge(self, other: "StepStats") -> None:
        for name in ("docs_in", "kept", "bytes_in", "bytes_kept", "bytes_delta", "tokens_in", "tokens_kept",
                     "tokens_delta", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("dropped", "bytes_dropped", "tokens_dropped"):
            getattr(self, name).update(getattr(other, name))

    def as_dict(self) -> dict:
        return {"step": self.step, "docs_in": self.docs_in, "kept": self.kept, "dropped": dict(self.dropped),
                "bytes_in": self.bytes_in, "bytes_kept": self.bytes_kept, "bytes_dropped": dict(self.bytes_dropped),
                "bytes_delta": self.bytes_delta, "tokens_in": self.tokens_in, "tokens_kept": self.tokens_kept,
                "tokens_dropped": dict(self.tokens_dropped), "tokens_delta": self.tokens_delta,
                "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, d: dict) -> "StepStats":
        s = cls(d["step"])
        for k, v in d.items():
            if k in ("dropped", "bytes_dropped", "tokens_dropped"):
                setattr(s, k, Counter(v))
            elif k != "step":
                setattr(s, k, v)
        return s


def check_accounting(steps: list[dict], docs_in: int, docs_out: int) -> None:
    """The identity at every step and across steps; a violation is a bug, so it fails loudly."""
    n = docs_in
    expected_bytes = None
    for st in steps:
        if st["docs_in"] != n or st["docs_in"] != st["kept"] + sum(st["dropped"].values()):
            raise AssertionError(f"document accounting broken at step {st['step']}: {st}")
        for unit in ("bytes", "tokens"):
            if st[f"{unit}_in"] != st[f"{unit}_kept"] + sum(st[f"{unit}_dropped"].values()):
                raise AssertionError(f"{unit} accounting broken at step {st['step']}: {st}")
        if expected_bytes is not None and st["bytes_in"] != expected_bytes:
            raise AssertionError(f"bytes entering {st['step']} ({st['bytes_in']}) != bytes left by the step "
                                 f"before ({expected_bytes})")
        expected_bytes = st["bytes_kept"] + st["bytes_delta"]
        n = st["kept"]
    if n != docs_out:
        raise AssertionError(f"accounting broken: last step kept {n}, but {docs_out} documents were written")


def add_sample(samples: dict[str, list], reason: str, doc: dict, step: str) -> None:
    bucket = samples.setdefault(reason, [])
    if len(bucket) < SAMPLES_PER_REASON:
        bucket.append({"id": doc["id"], "source": doc["source"], "step": step,
                       "text": doc["text"][:SAMPLE_CHARS], "meta": doc["meta"]})


def merge_samples(into: dict[str, list], more: dict[str, list]) -> None:
    for reason, rows in more.items():
        bucket = into.setdefault(reason, [])
        bucket.extend(rows[: max(0, SAMPLES_PER_REASON - len(bucket))])
