"""The per-batch work of curation: pure functions that executors run on workers.

A pass takes a batch of documents, runs a list of steps over it with exact accounting, and
returns the documents it keeps, the step stats, samples of what it dropped, and small
per-document signatures for the global steps that come after (line hashes for boilerplate
removal; an exact-content hash and MinHash signature for deduplication). Nothing here touches
the file system: the pipeline writes what a pass returns.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from cogcore.curate.accounting import StepStats, add_sample, size


@dataclass
class PassResult:
    docs: list[dict]
    stats: list[StepStats]
    samples: dict[str, list] = field(default_factory=dict)
    line_hashes: list[np.ndarray] | None = None
    exact: np.ndarray | None = None
    minhash: np.ndarray | None = None


def run_steps(docs: list[dict], steps: list, stats: list[StepStats], samples: dict) -> list[dict]:
    """Run steps in order over a batch, recording every document's fate in `stats`."""
    for step, st in zip(steps, stats):
        t0 = time.perf_counter()
        before = [size(d) for d in docs]
        position = {id(d): i for i, d in enumerate(docs)}
        kept, dropped = step.run(docs)
        st.record(before, [position[id(d)] for d in kept], [(position[id(d)], r) for d, r in dropped],
                  [size(d) for d in kept])
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
        lines = None
        if self.hash_lines:
            from cogcore.curate.boilerplate import line_hashes

            lines = [line_hashes(d) for d in docs]
        return PassResult(docs, stats, samples, line_hashes=lines)


@dataclass
class SecondPass:
    """Boilerplate removal, filters and redaction; then signatures for the dedup steps."""

    steps: list
    minhash_config: object | None = None

    def __call__(self, docs: list[dict]) -> PassResult:
        stats = [StepStats(s.name) for s in self.steps]
        samples: dict = {}
        docs = run_steps(docs, self.steps, stats, samples)
        exact = np.array([exact_key(d["text"]) for d in docs], dtype=np.uint64)
        sigs = None
        if self.minhash_config is not None:
            from cogcore.curate.minhash import signatures

            sigs = signatures([d["text"] for d in docs], self.minhash_config)
        return PassResult(docs, stats, samples, exact=exact, minhash=sigs)
