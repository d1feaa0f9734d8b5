"""Rewrites by shard: each shard of documents is rewritten in its styles, every rewrite gated
(cogcore.rephrase.gate) and the accepted ones' facts detected, then the shard is committed to
`work/shard-NNNNN.json` by rename. A killed run finds its committed shards and does only the rest;
the model is not even loaded when none is left. Then `write_outputs` reads the shards back, in order,
into docs.jsonl, facts.jsonl, rejected.jsonl and the counts of stats.json.

Rewrite j of the document at position i is in style `styles[(i + j) % len(styles)]`: with as many
rewrites per document as styles, each document gets every style; with one, the styles take turns.

    plan = RewritePlan(prompts={"qa": "... {passage}"}, rewrites_per_doc=1)
    rewriter = ShardedRewriter(work, plan, detector, make_generator, shard_docs=64)
    shards = rewriter.run(docs, total=n)
    totals = write_outputs(work, folder, shards, rejected_samples=200)   # asked = kept + rejected
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from cogcore.io import write_json_atomic
from cogcore.rephrase.files import DOCS_FILE, FACTS_FILE, GROUP, REJECTED_FILE
from cogcore.rephrase.gate import REASONS, GateSettings, check_rewrite
from cogcore.rephrase.styles import build_prompt

SOURCE_SHOWN = 600  # characters of a source (and of a rewrite) kept with a sample
SAMPLES_PER_STYLE = 3  # accepted rewrites shown side by side with their source in stats.json


@dataclass(frozen=True)
class RewritePlan:
    prompts: dict[str, str]  # style -> prompt template, in the order styles take turns
    rewrites_per_doc: int = 1
    gate: GateSettings = field(default_factory=GateSettings)
    seed: int = 0

    def requests(self, position: int) -> list[tuple[int, str]]:
        """(rewrite number, style) of each rewrite of the document at `position`."""
        styles = list(self.prompts)
        return [(j, styles[(position + j) % len(styles)]) for j in range(self.rewrites_per_doc)]


class ShardedRewriter:
    """Documents -> committed shards of gated rewrites (see the module docstring)."""

    def __init__(self, work: Path, plan: RewritePlan, detector, make_generator: Callable, shard_docs: int = 64):
        self.work, self.plan, self.detector = Path(work), plan, detector
        self.make_generator, self.shard_docs = make_generator, shard_docs
        self.generator = None  # loaded at the first shard that needs it
        self.resumed = 0

    def path(self, index: int) -> Path:
        return self.work / f"shard-{index:05d}.json"

    def run(self, docs: Iterable[dict], total: int | None = None, progress: bool = True) -> int:
        """Rewrite every shard not yet committed; returns the number of shards."""
        from tqdm.auto import tqdm

        self.work.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=total and total * self.plan.rewrites_per_doc, desc="rephrasing", unit="rewrite", disable=not progress
        )
        meter = _Meter(bar)
        shards = 0
        for index, batch in enumerate(_batched(docs, self.shard_docs)):
            shards = index + 1
            if self.path(index).exists():
                self.resumed += 1
                bar.update(len(batch) * self.plan.rewrites_per_doc)
                continue
            write_json_atomic(self.path(index), self.rewrite_shard(index, batch, meter))
        bar.close()
        return shards

    def rewrite_shard(self, index: int, docs: list[dict], meter: _Meter) -> dict:
        """{documents, seconds, rewrites: [...]}: every rewrite of `docs` with the gate's verdict,
        the accepted ones with their facts."""
        if self.generator is None:
            self.generator = self.make_generator()
        t0 = time.perf_counter()
        position = index * self.shard_docs
        asks = [(d, j, style) for i, d in enumerate(docs) for j, style in self.plan.requests(position + i)]
        prompts = [build_prompt(self.plan.prompts[style], d["text"]) for d, _, style in asks]
        made = self.generator.generate(prompts, seed=self.plan.seed * 1_000_003 + index, progress=meter.add)
        rewrites = [self._gated(d, j, style, prompt, gen) for (d, j, style), prompt, gen in zip(asks, prompts, made)]
        return {"documents": len(docs), "seconds": round(time.perf_counter() - t0, 3), "rewrites": rewrites}

    def _gated(self, doc: dict, j: int, style: str, prompt: str, gen) -> dict:
        result = check_rewrite(doc["text"], gen.text, self.detector, prompt_text=prompt, settings=self.plan.gate)
        rewrite_id = f"{doc['id']}~{style}{j}"
        record = {
            "id": rewrite_id,
            "source_id": doc["id"],
            "style": style,
            "text": gen.text,
            "prompt_tokens": gen.prompt_tokens,
            "new_tokens": gen.new_tokens,
            "gate": result.to_json(),
            "source": doc["text"][:SOURCE_SHOWN],
            "title": doc.get("meta", {}).get("title", ""),
        }
        if result.accepted:
            record["facts"] = self.detector.detect({"id": rewrite_id, "text": gen.text})
        return record


class _Meter:
    """Generated tokens per second on the progress bar (tqdm gives the ETA)."""

    def __init__(self, bar):
        self.bar, self.tokens, self.t0 = bar, 0, time.perf_counter()

    def add(self, generations: list) -> None:
        self.tokens += sum(g.new_tokens for g in generations)
        self.bar.update(len(generations))
        self.bar.set_postfix_str(f"{self.tokens / max(time.perf_counter() - self.t0, 1e-9):,.1f} tok/s", refresh=False)


@dataclass
class Totals:
    """What the shards add up to (stats.json's counts)."""

    requested: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    by_style: dict = field(default_factory=dict)
    facts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    accepted_tokens: int = 0
    seconds: float = 0.0
    samples: list = field(default_factory=list)

    def add(self, r: dict) -> None:
        style = self.by_style.setdefault(r["style"], {"requested": 0, "accepted": 0, "rejected": {}})
        self.requested += 1
        style["requested"] += 1
        self.prompt_tokens += r["prompt_tokens"]
        self.generated_tokens += r["new_tokens"]
        reason = r["gate"]["reason"]
        if reason is None:
            self.accepted += 1
            style["accepted"] += 1
            self.accepted_tokens += r["new_tokens"]
            self.facts += len(r["facts"])
            if sum(s["style"] == r["style"] for s in self.samples) < SAMPLES_PER_STYLE:
                self.samples.append(_sample(r))
        else:
            self.rejected[reason] += 1
            style["rejected"][reason] = style["rejected"].get(reason, 0) + 1


def write_outputs(work: Path, folder: Path, shards: int, rejected_samples: int | None) -> Totals:
    """docs.jsonl, facts.jsonl and rejected.jsonl from the committed shards, in order; their totals.
    `rejected_samples`: rejected rewrites kept per reason (None: all)."""
    totals = Totals()
    kept = Counter()
    with (
        open(folder / DOCS_FILE, "w", encoding="utf-8") as docs,
        open(folder / FACTS_FILE, "w", encoding="utf-8") as facts,
        open(folder / REJECTED_FILE, "w", encoding="utf-8") as rejected,
    ):
        for shard in _read_shards(work, shards):
            totals.seconds += shard["seconds"]
            for r in shard["rewrites"]:
                totals.add(r)
                reason = r["gate"]["reason"]
                if reason is None:
                    docs.write(_line(as_document(r)))
                    facts.writelines(_line(f) for f in r["facts"])
                elif rejected_samples is None or kept[reason] < rejected_samples:
                    kept[reason] += 1
                    rejected.write(_line({k: v for k, v in r.items() if k != "facts"} | {"reason": reason}))
    totals.rejected = Counter({reason: totals.rejected[reason] for reason in REASONS if totals.rejected[reason]})
    return totals


def as_document(r: dict) -> dict:
    """An accepted rewrite as a curated training document of the `rephrased` group."""
    meta = {"split": "train", "rephrased_from": r["source_id"], "style": r["style"], "title": r["title"]}
    return {"id": r["id"], "text": r["text"], "source": GROUP, "meta": meta}


def _sample(r: dict) -> dict:
    return {
        "style": r["style"],
        "source_id": r["source_id"],
        "source": r["source"],
        "rewrite": r["text"][:SOURCE_SHOWN],
    }


def _read_shards(work: Path, shards: int) -> Iterator[dict]:
    for index in range(shards):
        yield json.loads((work / f"shard-{index:05d}.json").read_text(encoding="utf-8"))


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch
