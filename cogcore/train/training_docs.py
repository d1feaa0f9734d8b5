"""The training documents train.cpt changed, as trained: train/cpt/training_docs.jsonl, one
`TrainingDoc` a line, which `cogcore inspect RUN --doc ID` shows instead of curate's document.

A document changes when canaries are planted in it, or, under `facts.strategy: toolcall` with the
Toolformer filter, when the filter chose its calls (then every training document is written, each
with the calls it kept).

    write_training_docs(folder / TRAINING_DOCS_FILE, docs, facts, calls)
    doc = find_training_doc(run / "train/cpt" / TRAINING_DOCS_FILE, "doc-7")   # None: trained as curated
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cogcore.io import iter_jsonl, write_jsonl_atomic
from cogcore.stage_files import check_fields
from cogcore.train.cpt_data import PlannedCall

TRAINING_DOCS_FILE = "training_docs.jsonl"


@dataclass(frozen=True)
class TrainingDoc:
    """One document as continued pretraining trained on it."""

    id: str
    text: str
    meta: dict
    facts: list[dict]  # its facts, at their offsets in `text`
    calls: list[PlannedCall] | None  # the calls the Toolformer filter kept; None: calls are planned when encoding

    def document(self) -> dict:
        """The document as a curated record {id, text, meta}."""
        return {"id": self.id, "text": self.text, "meta": self.meta}

    def to_json(self) -> dict:
        calls = None if self.calls is None else [c.to_dict() for c in self.calls]
        return {"id": self.id, "text": self.text, "meta": self.meta, "facts": self.facts, "calls": calls}

    @classmethod
    def from_json(cls, data: dict, where: str | Path = TRAINING_DOCS_FILE) -> TrainingDoc:
        check_fields(cls, data, where=where, stage="train.cpt")
        calls = None if data["calls"] is None else [PlannedCall.from_dict(c) for c in data["calls"]]
        return cls(**{**data, "calls": calls})


def write_training_docs(path: Path, docs: list[dict], facts: list[dict], calls: dict[str, list] | None) -> None:
    """The documents training changed (all of them when the Toolformer filter chose `calls`, by
    document id; else those holding canaries), with their facts and calls."""
    changed = {d["id"] for d in docs if d["meta"].get("canaries")} if calls is None else {d["id"] for d in docs}
    facts_of: dict[str, list[dict]] = {}
    for f in facts:
        facts_of.setdefault(f["doc_id"], []).append(f)
    rows = (
        TrainingDoc(
            id=d["id"],
            text=d["text"],
            meta=d["meta"],
            facts=facts_of.get(d["id"], []),
            calls=None if calls is None else calls.get(d["id"], []),
        )
        for d in docs
        if d["id"] in changed
    )
    write_jsonl_atomic(path, (row.to_json() for row in rows))


def find_training_doc(path: Path, doc_id: str) -> TrainingDoc | None:
    """Document `doc_id` as trained; None when training kept it as curated (or changed none)."""
    if not Path(path).exists():
        return None
    for n, row in enumerate(iter_jsonl(path), start=1):
        if row.get("id") == doc_id:
            return TrainingDoc.from_json(row, where=f"{path} (record {n})")
    return None
