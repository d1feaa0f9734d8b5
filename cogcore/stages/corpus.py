"""The curated corpus as the later stages read it: curate/docs.jsonl and facts.jsonl, by split.

One loader for index, both training stages and eval, so that "the training documents" and "the
facts of held-out documents" mean the same thing everywhere.

    corpus = load_corpus(run)
    corpus.split("heldout"), corpus.facts_in("train"), corpus.titles()
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cogcore.io import read_jsonl

TRAIN, HELDOUT = "train", "heldout"


@dataclass(frozen=True)
class Corpus:
    docs: list[dict]  # {id, text, source, meta: {split, title, ...}}
    facts: list[dict]  # {id, doc_id, start, end, text, kind, value, context}

    @cached_property
    def split_of(self) -> dict[str, str]:
        return {d["id"]: d["meta"]["split"] for d in self.docs}

    def split(self, name: str) -> list[dict]:
        return [d for d in self.docs if d["meta"]["split"] == name]

    def facts_in(self, split: str) -> list[dict]:
        return [f for f in self.facts if self.split_of.get(f["doc_id"]) == split]

    def titles(self) -> dict[str, str]:
        return {d["id"]: d["meta"].get("title", "") for d in self.docs}


def load_corpus(run: Path) -> Corpus:
    curate = Path(run) / "curate"
    return Corpus(read_jsonl(curate / "docs.jsonl"), read_jsonl(curate / "facts.jsonl"))
