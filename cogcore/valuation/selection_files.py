"""What the select stage writes for train.cpt, `cogcore inspect` and the report.

- `select/scores.parquet`: one row per training document: `doc_id`, `source`, `tokens` (the base
  model's tokenizer), one column per scorer, `rank` (the value it was ranked by, higher first),
  `selected` and `reason` (why not, or "selected");
- `select/stats.json`: `SelectStats`: the accounting (`in == selected + sum(not_selected)`), the
  budget, the ranking scorer and the settings of every scorer, what each cost, per-source counts
  and score quantiles.

    stats = SelectStats.read(run / "select/stats.json")       # None when the stage has not run
    chosen = selected_ids(run / "select")                     # the training documents training sees

This module imports only shared modules and pyarrow, so that any reader of the files can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cogcore.io import write_atomic, write_json_atomic
from cogcore.stage_files import RunFileError, check_fields, read_json_object, rerun

STATS_FILE = "stats.json"
SCORES_FILE = "scores.parquet"
STAGE = "select"


@dataclass(frozen=True)
class SelectStats:
    enabled: bool
    docs_in: int = 0
    selected: int = 0
    not_selected: dict[str, int] = field(default_factory=dict)  # reason -> documents
    tokens_in: int = 0
    tokens_selected: int = 0
    target: str | None = None  # what the data was valued toward
    target_docs: int = 0
    rank_by: str | None = None
    budget: dict[str, Any] = field(default_factory=dict)  # {"fraction": f} or {"tokens": n}, method, temperature
    quotas: dict[str, float] = field(default_factory=dict)
    scorers: dict[str, Any] = field(default_factory=dict)  # name -> settings and what it cost (proxies' logs)
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> {"in", "selected"}
    quantiles: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # scorer -> source -> 5 quantiles
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> SelectStats:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    @classmethod
    def read(cls, path: Path) -> SelectStats | None:
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, path)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


def write_scores(path: Path, columns: dict[str, list]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_atomic(path, lambda tmp: pq.write_table(pa.table(columns), tmp))


def read_scores(path: Path) -> dict[str, list]:
    """The scores table as {column: values}; RunFileError when it is there but unreadable."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pydict()
    except (OSError, ValueError) as e:
        raise RunFileError(f"{path}: not a readable parquet table ({e}); {rerun(STAGE)}") from None


def document_tokens(folder: Path) -> dict[str, int]:
    """doc id -> its length in the base model's tokens, as the select stage counted it."""
    table = read_scores(folder / SCORES_FILE)
    return dict(zip(table["doc_id"], table["tokens"]))


def document_ranks(folder: Path) -> dict[str, float]:
    """doc id -> the value it was ranked by (higher is better; NaN where it had none)."""
    table = read_scores(folder / SCORES_FILE)
    return dict(zip(table["doc_id"], table["rank"]))


def selected_ids(folder: Path) -> set[str] | None:
    """The ids of the documents the select stage chose; None when it did not select (off, or not run)."""
    stats = SelectStats.read(folder / STATS_FILE)
    if stats is None or not stats.enabled:
        return None
    table = read_scores(folder / SCORES_FILE)
    return {doc for doc, chosen in zip(table["doc_id"], table["selected"]) if chosen}


MIXTURE_FILE = "mixture.json"


@dataclass(frozen=True)
class MixtureRecord:
    """select/mixture.json: group weights learned on a proxy; train.cpt resamples by `weights`."""

    method: str  # alignment | excess_loss
    groups: list[str]
    weights: dict[str, float]  # the average over the trajectory: what train.cpt uses
    final: dict[str, float]
    natural: dict[str, float]  # each group's share of the selected tokens before mixing
    trajectory: list[list[float]]  # weights after each update, in `groups` order
    settings: dict[str, Any]
    proxy: dict[str, Any]  # the mixing proxy's training log
    runs: list[dict[str, Any]] = field(default_factory=list)  # regmix: each tried mixture and its target loss

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> MixtureRecord:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> MixtureRecord | None:
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, path)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())
