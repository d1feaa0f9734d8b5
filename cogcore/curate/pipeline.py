"""The curation pipeline: sources -> steps -> curated documents, facts and stats.

Every step counts its work, and `docs_in == kept + sum(dropped[reason])` holds for each step and
for the run as a whole; a sample of each drop reason is written to `drops/<reason>.jsonl`. Files
that could not be read are listed with their reason. Called by `cogcore curate` through
`cogcore.stages`; usable on its own:

    stats = curate(sources=[SourceSpec(...)], out_dir=Path("runs/x/curate"), min_chars=100,
                   heldout_fraction=0.1, fact_kinds=["money", "date"])
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from cogcore.curate.facts import FactDetector
from cogcore.curate.readers import Unreadable, read_source
from cogcore.curate.steps import DuplicateIdFilter, ExactDedup, LengthFilter, Normalize, Step
from cogcore.runner import write_json_atomic

BATCH = 256
DROP_SAMPLES = 20


@dataclass(frozen=True)
class SourceSpec:
    name: str
    path: str
    format: str = "auto"
    text_field: str = "text"
    id_field: str | None = None
    title_field: str | None = None
    meta_fields: tuple[str, ...] = ()


@dataclass
class StepStats:
    step: str
    docs_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"step": self.step, "docs_in": self.docs_in, "kept": self.kept, "dropped": dict(self.dropped)}


def curate(sources: list[SourceSpec], out_dir: Path, min_chars: int, heldout_fraction: float,
           fact_kinds: list[str], seed: int = 0) -> dict:
    steps: list[Step] = [Normalize(), LengthFilter(min_chars), DuplicateIdFilter(), ExactDedup()]
    stats = [StepStats(s.name) for s in steps]
    detector = FactDetector(fact_kinds)
    unreadable: list[dict] = []
    samples: dict[str, list] = {}
    fact_counts: Counter = Counter()
    splits: Counter = Counter()
    docs_in = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "docs.jsonl.tmp", "w") as docs_f, open(out_dir / "facts.jsonl.tmp", "w") as facts_f:
        bar = tqdm(desc="curate", unit="doc")
        for batch in _batches(_read_all(sources, unreadable)):
            docs_in += len(batch)
            for step, st in zip(steps, stats):
                st.docs_in += len(batch)
                batch, dropped = step.run(batch)
                st.kept += len(batch)
                for doc, reason in dropped:
                    st.dropped[reason] += 1
                    _sample(samples, reason, doc, step.name)
            for doc in batch:
                doc["meta"]["split"] = _split(doc["id"], heldout_fraction, seed)
                splits[doc["meta"]["split"]] += 1
                docs_f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                for fact in detector.detect(doc):
                    fact_counts[fact["kind"]] += 1
                    facts_f.write(json.dumps(fact, ensure_ascii=False) + "\n")
            bar.update(len(batch))
            bar.set_postfix(kept=stats[-1].kept, dropped=docs_in - stats[-1].kept)
        bar.close()
    for name in ("docs.jsonl", "facts.jsonl"):
        (out_dir / f"{name}.tmp").replace(out_dir / name)
    _write_samples(out_dir / "drops", samples)
    result = {"docs_in": docs_in, "docs_out": stats[-1].kept if stats else docs_in,
              "steps": [s.as_dict() for s in stats], "facts": dict(fact_counts), "splits": dict(splits),
              "unreadable": unreadable}
    check_accounting(result)
    write_json_atomic(out_dir / "stats.json", result)
    return result


def check_accounting(stats: dict) -> None:
    """Every document is accounted for, at every step; a violation is a bug, so it fails loudly."""
    n = stats["docs_in"]
    for st in stats["steps"]:
        if st["docs_in"] != n or st["docs_in"] != st["kept"] + sum(st["dropped"].values()):
            raise AssertionError(f"accounting broken at step {st['step']}: {st}")
        n = st["kept"]
    if n != stats["docs_out"]:
        raise AssertionError(f"accounting broken: last step kept {n}, docs_out {stats['docs_out']}")


def _read_all(sources: list[SourceSpec], unreadable: list[dict]) -> Iterator[dict]:
    for src in sources:
        for item in read_source(src.path, src.name, src.format, src.text_field, src.id_field,
                                src.title_field, src.meta_fields):
            if isinstance(item, Unreadable):
                unreadable.append({"path": item.path, "reason": item.reason, "source": src.name})
            else:
                yield item


def _batches(docs: Iterator[dict]) -> Iterator[list[dict]]:
    batch = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _split(doc_id: str, heldout_fraction: float, seed: int) -> str:
    # A hash, not a random draw: a document stays on its side when others are added or removed.
    h = int(hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout_fraction else "train"


def _sample(samples: dict, reason: str, doc: dict, step: str) -> None:
    bucket = samples.setdefault(reason, [])
    if len(bucket) < DROP_SAMPLES:
        bucket.append({"id": doc["id"], "source": doc["source"], "step": step,
                       "text": doc["text"][:500], "meta": doc["meta"]})


def _write_samples(folder: Path, samples: dict) -> None:
    folder.mkdir(exist_ok=True)
    for reason, rows in samples.items():
        with open(folder / f"{reason}.jsonl", "w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
