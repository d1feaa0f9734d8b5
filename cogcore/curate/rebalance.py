"""Rebalancing: no topic may crowd out the rest (the "10,000 summaries of Hamlet" problem).

Documents are clustered by embedding (faiss k-means). A cluster holding more than `max_share` of
the corpus keeps a reproducible sample of `max_share x N` documents (chosen by a seeded hash, so
the choice does not depend on input order) and drops the rest as `rebalance_cap`. Clusters
thinner than `upsample_below` of the corpus can be upsampled: their documents get
`meta["upsample"] = k`, and continued pretraining repeats them k times. The before/after sizes
of every cluster go into the curation stats and the report.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cogcore.curate.clusters import spherical_kmeans
from cogcore.curate.dedup import Decisions
from cogcore.curate.stats import RebalanceReport


@dataclass(frozen=True)
class RebalanceSettings:
    """k-means `clusters`; a cluster over `max_share` of the corpus is capped at that share; clusters
    under `upsample_below` of it are repeated up to `max_upsample` times in training."""

    clusters: int
    max_share: float
    upsample_below: float
    max_upsample: int


def kmeans_labels(embeddings: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Rebalancing's clusters: at most half as many as documents, so that a cluster is a group."""
    return spherical_kmeans(embeddings, max(1, min(n_clusters, len(embeddings) // 2 or 1)), seed)


def rebalance(
    ids: list[str],
    labels: np.ndarray,
    max_share: float,
    upsample_below: float = 0.0,
    max_upsample: int = 1,
    seed: int = 0,
) -> tuple[Decisions, dict[str, int], RebalanceReport]:
    """(drops, upsample factors by id, before/after report) for cluster labels in input order."""
    n = len(ids)
    cap = max(1, math.floor(max_share * n))
    members: dict[int, list[str]] = {}
    for doc_id, label in zip(ids, labels.tolist()):
        members.setdefault(int(label), []).append(doc_id)
    dropped: dict[str, str] = {}
    for label, docs in members.items():
        if len(docs) > cap:
            ranked = sorted(docs, key=lambda d: hashlib.sha1(f"{seed}:{d}".encode()).hexdigest())
            dropped.update({d: f"cluster_{label}" for d in ranked[cap:]})
    after = Counter(int(label) for doc_id, label in zip(ids, labels.tolist()) if doc_id not in dropped)
    kept_n = sum(after.values())
    upsample: dict[str, int] = {}
    if upsample_below > 0 and max_upsample > 1:
        for label, count in after.items():
            share = count / kept_n
            if share < upsample_below:
                factor = min(max_upsample, max(1, round(upsample_below / share)))
                if factor > 1:
                    upsample.update({d: factor for d in members[label] if d not in dropped})
    report = RebalanceReport(
        clusters=len(members),
        cap=cap,
        max_share=max_share,
        before={str(k): len(v) for k, v in sorted(members.items())},
        after={str(k): after.get(k, 0) for k in sorted(members)},
        upsampled_docs=len(upsample),
    )
    clusters = [
        {
            "kind": "rebalance",
            "cluster": label,
            "kept": [d for d in docs if d not in dropped][:5],
            "size_before": len(docs),
            "size_after": after.get(label, 0),
        }
        for label, docs in members.items()
    ]
    return Decisions("rebalance_cap", dropped, clusters), upsample, report


class RebalanceStep:
    """Apply rebalancing: drop what was capped, mark what is upsampled."""

    name = "rebalance"

    def __init__(self, decisions: Decisions, upsample: dict[str, int]):
        self.decisions = decisions
        self.upsample = upsample

    def run(self, docs):
        kept, dropped = [], []
        for doc in docs:
            if doc["id"] in self.decisions.dropped:
                doc["meta"]["rebalance_cluster"] = self.decisions.dropped[doc["id"]]
                dropped.append((doc, self.decisions.reason))
                continue
            if doc["id"] in self.upsample:
                doc["meta"]["upsample"] = self.upsample[doc["id"]]
            kept.append(doc)
        return kept, dropped
