"""What the rephrase stage writes for train.cpt, `cogcore inspect RUN --rephrase` and the report.

- `rephrase/docs.jsonl`: the accepted rewrites, as curated documents: `{id, text, source:
  "rephrased", meta: {split: "train", rephrased_from, style, title}}`; `source` is their mixture group;
- `rephrase/facts.jsonl`: the facts detected in them, by the detector curation ran (same kinds,
  patterns, terms and learned names), so that `mask` and `toolcall` treat them as any fact;
- `rephrase/rejected.jsonl`: rejected rewrites, up to `rephrase.rejected_samples` of each reason,
  with the gate's findings and the start of their source;
- `rephrase/stats.json`: `RephraseStats`: the accounting (`requested == accepted + sum(rejected)`),
  tokens, speed, the cost estimate made before generating, and samples side by side with their source.

    stats = RephraseStats.read(run / "rephrase/stats.json")   # None when the stage has not run
    for doc, facts in rewrites(run / "rephrase"): ...         # nothing when it is off

This module imports only shared modules, so that any reader of the files can import it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cogcore.io import write_json_atomic
from cogcore.stage_files import check_fields, read_json_object

STAGE = "rephrase"
STATS_FILE = "stats.json"
DOCS_FILE = "docs.jsonl"
FACTS_FILE = "facts.jsonl"
REJECTED_FILE = "rejected.jsonl"
GROUP = "rephrased"  # the rewrites' `source`: their own group for the mixture


@dataclass(frozen=True)
class RephraseStats:
    enabled: bool
    documents_in: int = 0  # training documents
    documents_considered: int = 0  # those chosen for rewriting (rephrase.documents)
    requested: int = 0  # documents_considered x rewrites_per_doc
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # gate reason -> rewrites
    by_style: dict[str, dict[str, Any]] = field(default_factory=dict)  # style -> requested, accepted, rejected
    facts: int = 0  # detected in the accepted rewrites
    prompt_tokens: int = 0
    generated_tokens: int = 0
    accepted_tokens: int = 0  # generated tokens of the accepted rewrites
    seconds: float = 0.0  # generating and gating, every shard (resumed ones as first run)
    tokens_per_s: float = 0.0  # generated tokens per second of generation
    shards: int = 0
    shards_resumed: int = 0
    backend: str | None = None
    generator: str | None = None
    cost_estimate: dict[str, Any] = field(default_factory=dict)  # made before generating
    settings: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)  # accepted: {style, source_id, source, rewrite}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> RephraseStats:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    @classmethod
    def read(cls, path: Path) -> RephraseStats | None:
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, path)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


def rewrites(folder: Path) -> Iterator[tuple[dict, list[dict]]]:
    """(rewrite, its facts) of each accepted rewrite in `folder` (rephrase/), in file order; nothing
    when the stage was off or wrote none. Facts are written in document order, so this streams."""
    docs, facts = Path(folder) / DOCS_FILE, Path(folder) / FACTS_FILE
    if not docs.exists():
        return
    with open(docs, encoding="utf-8") as d, open(facts, encoding="utf-8") as f:
        pending = _next_fact(f)
        for line in d:
            if not line.strip():
                continue
            doc = json.loads(line)
            mine = []
            while pending is not None and pending["doc_id"] == doc["id"]:
                mine.append(pending)
                pending = _next_fact(f)
            yield doc, mine


def count_rewrites(folder: Path) -> int:
    path = Path(folder) / DOCS_FILE
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _next_fact(f) -> dict | None:
    for line in f:
        if line.strip():
            return json.loads(line)
    return None
