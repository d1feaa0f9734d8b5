"""Global curation steps, decided once over the whole corpus after the parallel passes.

Exact duplicates (content hash), near duplicates (MinHash LSH), semantic duplicates (SemDeDup
over document embeddings) and rebalancing (embedding clusters capped in share), each over the
survivors of the one before. Each returns a step that the last pass applies with the usual
accounting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cogcore.curate.dedup import DecisionStep, exact_decisions
from cogcore.curate.minhash import near_duplicate_decisions
from cogcore.curate.passes import PassTotals
from cogcore.curate.plan import CuratePlan
from cogcore.curate.rebalance import RebalanceReport, RebalanceStep, kmeans_labels, rebalance
from cogcore.curate.semdedup import semantic_duplicate_decisions
from cogcore.retrieval.embedder import Embedder  # the shared search stack; loads its model only when called

EMBED_CHARS = 1000  # what a 256-token embedder reads of a document anyway

Batches = Callable[[], Iterator[list[dict]]]  # pass 2's documents again, batch by batch


def global_steps(p2: PassTotals, plan: CuratePlan, batches: Batches, work: Path) -> tuple[list, RebalanceReport | None]:
    """Exact, near and semantic duplicates, then rebalancing, each over the survivors of the last."""
    ids = p2.ids
    steps = []
    alive = list(range(len(ids)))
    if plan.exact_dedup:
        steps.append(DecisionStep("exact_dedup", exact_decisions(ids, p2.exact_keys())))
        alive = [i for i in alive if ids[i] not in steps[-1].decisions.dropped]
    if plan.minhash is not None:
        decisions = near_duplicate_decisions([ids[i] for i in alive], p2.signatures()[alive], plan.minhash)
        steps.append(DecisionStep("near_dedup", decisions))
        alive = [i for i in alive if ids[i] not in decisions.dropped]
    if plan.semantic is None and plan.rebalance is None:
        return steps, None
    vectors = _embeddings(work, batches, plan.embedder)
    if plan.semantic is not None:
        decisions = semantic_duplicate_decisions(
            [ids[i] for i in alive],
            vectors[alive],
            threshold=plan.semantic.threshold,
            n_clusters=plan.semantic.clusters,
            seed=plan.seed,
        )
        steps.append(DecisionStep("semantic_dedup", decisions))
        alive = [i for i in alive if ids[i] not in decisions.dropped]
    report = None
    if plan.rebalance is not None:
        settings = plan.rebalance
        labels = kmeans_labels(vectors[alive], settings.clusters, plan.seed)
        decisions, upsample, report = rebalance(
            [ids[i] for i in alive],
            labels,
            max_share=settings.max_share,
            upsample_below=settings.upsample_below,
            max_upsample=settings.max_upsample,
            seed=plan.seed,
        )
        steps.append(RebalanceStep(decisions, upsample))
    return steps, report


def _embeddings(work: Path, batches: Batches, embedder_path: str) -> np.ndarray:
    """One vector per pass-2 document, in order; cached, so a resumed run does not embed again."""
    cache = work / "embeddings.npy"
    if cache.exists():
        return np.load(cache)
    embedder = Embedder(embedder_path)
    texts = [d["text"][:EMBED_CHARS] for batch in batches() for d in batch]
    vectors = embedder.encode(texts, show_progress=True) if texts else np.zeros((0, embedder.dim), np.float32)
    tmp = work / "embeddings.tmp.npy"
    np.save(tmp, vectors)
    tmp.replace(cache)
    return vectors
