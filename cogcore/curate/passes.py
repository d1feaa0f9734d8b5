"""The per-batch work of curation: pure functions that executors run on workers.

A pass takes a batch of documents, runs a list of steps over it with exact accounting, and
returns the documents it keeps, the step stats, samples of what it dropped, and small
per-document signatures for the global steps that come after (line hashes for boilerplate
removal; an exact-content hash and MinHash signature for deduplication). The last pass applies
the global decisions and returns the batch's lines of docs.jsonl and facts.jsonl (`LastPass`).
Nothing here touches the file system: the pipeline writes what a pass returns, and adds the
batches' results up into one `PassTotals` per pass.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from cogcore.curate.accounting import add_sample, merge_samples, size
from cogcore.curate.boilerplate import LineCounter, line_hashes
from cogcore.curate.facts import FactDetector
from cogcore.curate.minhash import MinHashConfig, signatures
from cogcore.curate.stats import StepStats


@dataclass
class PassResult:
    """One batch through a pass: the documents kept, and what the pass counted and computed."""

    docs: list[dict]
    stats: list[StepStats]  # one per step, in order
    samples: dict[str, list] = field(default_factory=dict)
    line_hashes: list[np.ndarray] | None = None  # pass 1, boilerplate removal on: per kept document
    exact: np.ndarray | None = None  # pass 2: a content hash per kept document
    minhash: np.ndarray | None = None  # pass 2, near dedup on: a signature per kept document


@dataclass
class PassTotals:
    """Every batch of a pass, added up in batch order: what the global steps and the outputs need."""

    shards: int = 0  # batches, each written as one shard file
    stats: list[StepStats] = field(default_factory=list)  # one per step; none when no batch reached the pass
    samples: dict[str, list] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # the documents kept, in order
    line_counter: LineCounter | None = None  # pass 1, boilerplate removal on
    exact: list[np.ndarray] = field(default_factory=list)  # pass 2: content hashes, per batch
    minhash: list[np.ndarray] = field(default_factory=list)  # pass 2, near dedup on: signatures, per batch

    def add(self, result: PassResult) -> None:
        self.stats = [a + b for a, b in zip(self.stats, result.stats)] if self.shards else list(result.stats)
        self.shards += 1
        merge_samples(self.samples, result.samples)
        self.ids.extend(d["id"] for d in result.docs)
        if result.line_hashes is not None:  # counted as batches arrive: no per-document arrays are kept
            self.line_counter = self.line_counter or LineCounter()
            for hashes in result.line_hashes:
                self.line_counter.add(hashes)
        if result.exact is not None:
            self.exact.append(result.exact)
        if result.minhash is not None:
            self.minhash.append(result.minhash)

    def exact_keys(self) -> np.ndarray:
        """One content hash per kept document, in order."""
        return np.concatenate(self.exact) if self.exact else np.zeros(0, dtype=np.uint64)

    def signatures(self) -> np.ndarray:
        """One MinHash signature (a row) per kept document, in order."""
        return np.concatenate(self.minhash) if self.minhash else np.zeros((0, 1), dtype=np.uint64)


def run_steps(docs: list[dict], steps: list, stats: list[StepStats], samples: dict) -> list[dict]:
    """Run steps in order over a batch, recording every document's fate in `stats`."""
    for step, st in zip(steps, stats):
        t0 = time.perf_counter()
        before = [size(d) for d in docs]
        position = {id(d): i for i, d in enumerate(docs)}
        kept, dropped = step.run(docs)
        st.record(
            before, [position[id(d)] for d in kept], [(position[id(d)], r) for d, r in dropped], [size(d) for d in kept]
        )
        for doc, reason in dropped:
            add_sample(samples, reason, doc, step.name)
        st.seconds += time.perf_counter() - t0
        docs = kept
    return docs


def exact_key(text: str) -> int:
    """Content hash over lower-cased, whitespace-collapsed text: copies differing only so are one."""
    digest = hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass
class FirstPass:
    """Normalize (and anything else that needs no global view), and hash lines for boilerplate."""

    steps: list
    hash_lines: bool

    def __call__(self, docs: list[dict]) -> PassResult:
        stats = [StepStats(s.name) for s in self.steps]
        samples: dict = {}
        docs = run_steps(docs, self.steps, stats, samples)
        lines = [line_hashes(d) for d in docs] if self.hash_lines else None
        return PassResult(docs, stats, samples, line_hashes=lines)


@dataclass
class SecondPass:
    """Boilerplate removal, filters and redaction; then signatures for the dedup steps."""

    steps: list
    minhash_config: MinHashConfig | None

    def __call__(self, docs: list[dict]) -> PassResult:
        stats = [StepStats(s.name) for s in self.steps]
        samples: dict = {}
        docs = run_steps(docs, self.steps, stats, samples)
        exact = np.array([exact_key(d["text"]) for d in docs], dtype=np.uint64)
        sigs = None if self.minhash_config is None else signatures([d["text"] for d in docs], self.minhash_config)
        return PassResult(docs, stats, samples, exact=exact, minhash=sigs)


@dataclass
class WrittenShard:
    """One batch through the last pass: its lines of docs.jsonl and facts.jsonl, and what it counted."""

    docs_jsonl: str
    facts_jsonl: str
    stats: list[StepStats]  # one per global step, in order
    samples: dict[str, list]
    docs_in: int
    docs_out: int = 0
    splits: Counter = field(default_factory=Counter)
    facts: Counter = field(default_factory=Counter)  # facts found, by kind
    pii: Counter = field(default_factory=Counter)  # in every document of the batch, those dropped here too


@dataclass
class LastPass:
    """The global decisions (duplicates, rebalancing) applied; each kept document's split and facts."""

    steps: list
    detector: FactDetector
    heldout_fraction: float
    seed: int

    def __call__(self, docs: list[dict]) -> WrittenShard:
        stats = [StepStats(s.name) for s in self.steps]
        shard = WrittenShard("", "", stats, {}, docs_in=len(docs))
        for doc in docs:
            shard.pii.update(doc["meta"].get("pii", {}))
        doc_lines, fact_lines = [], []
        for doc in run_steps(docs, self.steps, stats, shard.samples):
            doc["meta"]["split"] = split_of(doc["id"], self.heldout_fraction, self.seed)
            shard.splits[doc["meta"]["split"]] += 1
            doc_lines.append(json.dumps(doc, ensure_ascii=False) + "\n")
            for fact in self.detector.detect(doc):
                shard.facts[fact["kind"]] += 1
                fact_lines.append(json.dumps(fact, ensure_ascii=False) + "\n")
        shard.docs_out = len(doc_lines)
        shard.docs_jsonl, shard.facts_jsonl = "".join(doc_lines), "".join(fact_lines)
        return shard


def split_of(doc_id: str, heldout_fraction: float, seed: int) -> str:
    # A hash, not a random draw: a document stays on its side when others are added or removed.
    h = int(hashlib.sha1(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout_fraction else "train"
