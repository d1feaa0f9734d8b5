"""curate/stats.json: what curation did, as one typed object that every reader shares.

The pipeline writes it (pipeline.py); the later stages read the split counts from it, `cogcore
inspect RUN` the drops and warnings, the report the whole data funnel:

    stats = CurateStats.read(run / "curate" / "stats.json")   # None when curation has not run
    stats.docs_in, stats.docs_out, stats.splits["train"], [s.step for s in stats.steps]

A file that is cut off, damaged, or written by another version of cogcore (a field missing or of
another type) raises RunFileError naming the file and the stage to re-run; there is no fallback for
an older shape. This module imports no other part of the curate package, so that any reader of the
file can import it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from cogcore.io import write_json_atomic
from cogcore.stage_files import check_fields, read_json_object

STATS_FILE = "stats.json"
STAGE = "curate"


@dataclass
class StepStats:
    """What one step did to the documents it received: one entry of `steps`.

    `docs_in == kept + sum(dropped.values())`, and the same for bytes and tokens, measured as a
    document enters the step; `*_delta` is what the step's rewriting changed in the documents it
    kept (accounting.py).
    """

    step: str
    docs_in: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=Counter)  # reason -> documents
    bytes_in: int = 0
    bytes_kept: int = 0
    bytes_dropped: dict[str, int] = field(default_factory=Counter)
    bytes_delta: int = 0
    tokens_in: int = 0
    tokens_kept: int = 0
    tokens_dropped: dict[str, int] = field(default_factory=Counter)
    tokens_delta: int = 0
    seconds: float = 0.0

    def record(
        self,
        before: list[tuple[int, int]],
        kept_idx: list[int],
        dropped: list[tuple[int, str]],
        after: list[tuple[int, int]],
    ) -> None:
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

    def __add__(self, other: StepStats) -> StepStats:
        """The counts of one step over two parts of the corpus (two batches, two workers), added up,
        so that `sum(parts, start=StepStats(name))` is the whole corpus's."""
        if other.step != self.step:
            raise ValueError(f"cannot add the stats of step {other.step} to those of step {self.step}")
        total = StepStats(self.step)
        for name in _SUMS:
            setattr(total, name, getattr(self, name) + getattr(other, name))
        for name in _BY_REASON:
            getattr(total, name).update(getattr(self, name))
            getattr(total, name).update(getattr(other, name))
        return total

    def to_json(self) -> dict:
        return {
            **asdict(self),
            **{name: dict(getattr(self, name)) for name in _BY_REASON},
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> StepStats:
        check_fields(cls, data, where=where, stage=STAGE, required=[f.name for f in fields(cls)])
        return cls(**{**data, **{name: Counter(data[name]) for name in _BY_REASON}})


_SUMS = (
    "docs_in",
    "kept",
    "bytes_in",
    "bytes_kept",
    "bytes_delta",
    "tokens_in",
    "tokens_kept",
    "tokens_delta",
    "seconds",
)
_BY_REASON = ("dropped", "bytes_dropped", "tokens_dropped")


@dataclass(frozen=True)
class UnreadableEntry:
    """One entry of `unreadable`: a file, or `count` records of one file, skipped, and why."""

    path: str
    reason: str  # "kind" or "kind: the library's detail"; the kind is snake_case
    source: str
    count: int = 1  # written only when over 1

    @property
    def kind(self) -> str:
        return self.reason.split(":")[0]

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "reason": self.reason,
            "source": self.source,
            **({"count": self.count} if self.count > 1 else {}),
        }

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> UnreadableEntry:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass(frozen=True)
class DropWarning:
    """One entry of `warnings`: `kind` is "step_drop" (a step dropped over curate.warn_drop_fraction of
    what it received) or "empty_source" (a source yielded no document). Fields that do not apply to
    the kind are None (and not written)."""

    kind: str
    message: str
    step: str | None = None  # step_drop: the step, its share dropped, of how many, and its top reason
    share: float | None = None
    docs_in: int | None = None
    dropped: int | None = None
    reason: str | None = None
    reason_docs: int | None = None
    threshold: float | None = None
    inspect: str | None = None  # the command that shows samples of `reason`
    source: str | None = None  # empty_source: the source, its path, and its unreadable files by reason
    path: str | None = None
    unreadable: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> DropWarning:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass(frozen=True)
class RebalanceReport:
    """`rebalance`: cluster sizes before and after the cap (rebalance.py), for the report."""

    clusters: int
    cap: int
    max_share: float
    before: dict[str, int]  # cluster label -> documents
    after: dict[str, int]
    upsampled_docs: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> RebalanceReport:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass
class CurateStats:
    """curate/stats.json: `steps` in run order, each accounting for every document it received;
    `rebalance` only when rebalancing ran."""

    docs_in: int
    docs_out: int
    steps: list[StepStats]
    splits: dict[str, int]  # "train" / "heldout" -> documents
    facts: dict[str, int]  # fact kind -> facts found in the kept documents
    pii: dict[str, int]  # PII kind -> values redacted (in every redacted document, duplicates included)
    unreadable: list[UnreadableEntry]
    unreadable_by_reason: dict[str, int]  # reason kind -> files and records skipped
    recoded: dict[str, str]  # file read in a fallback encoding -> that encoding
    warnings: list[DropWarning]
    rebalance: RebalanceReport | None = None

    def to_json(self) -> dict:
        data = {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "steps": [s.to_json() for s in self.steps],
            "unreadable": [u.to_json() for u in self.unreadable],
            "warnings": [w.to_json() for w in self.warnings],
        }
        if self.rebalance is None:
            del data["rebalance"]
        else:
            data["rebalance"] = self.rebalance.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> CurateStats:
        check_fields(cls, data, where=where, stage=STAGE)
        rebalance = data.get("rebalance")  # only when rebalancing ran
        return cls(
            **{
                **data,
                "steps": [StepStats.from_json(s, where) for s in data["steps"]],
                "unreadable": [UnreadableEntry.from_json(u, where) for u in data["unreadable"]],
                "warnings": [DropWarning.from_json(w, where) for w in data["warnings"]],
                "rebalance": None if rebalance is None else RebalanceReport.from_json(rebalance, where),
            }
        )

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> CurateStats | None:
        """The stats in `path`; None when it does not exist (curation has not run)."""
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, where=path)
