"""`cogcore ablate RECIPE --by source|cluster|filter`: each source (or embedding cluster) left out of a
proxy's training in turn, and what that does to the held-out target loss; writes
RUN_DIR/ablate/<by>.json. Runs after curation, with
the recipe's `select.target` and `select.proxy` (a proxy per group plus one on everything).

`--by filter` asks whether each curation filter pays: the curated training documents are always in;
what each filter (and the length and boilerplate steps) dropped is added back, all of it for the
"(all)" row, all but one filter's for that filter's row. A negative contribution means the documents
the filter drops hurt the target: the filter earns its place.

    cogcore ablate recipes/valuation.yaml --by source
"""

from __future__ import annotations

from pathlib import Path

from cogcore.curate import pipeline
from cogcore.curate.global_steps import EMBED_CHARS
from cogcore.curate.plan import CuratePlan, SourceSpec
from cogcore.curate.rebalance import kmeans_labels
from cogcore.io import write_json_atomic
from cogcore.recipe import Recipe
from cogcore.retrieval.embedder import Embedder
from cogcore.runner import claim_folder
from cogcore.stages.corpus import TRAIN, load_corpus
from cogcore.stages.select import target_texts
from cogcore.valuation.ablation import ablate
from cogcore.valuation.scoring import ProxySettings

GROUPINGS = ("source", "cluster", "filter")
CURATED = "(curated)"


def run_ablation(recipe: Recipe, run_dir: Path, by: str) -> tuple[list[dict], Path]:
    if by not in GROUPINGS:
        raise ValueError(f"--by {by!r}: allowed: {', '.join(GROUPINGS)}")
    corpus = load_corpus(run_dir)
    docs = corpus.split(TRAIN)
    groups: dict[str, list[str]] = {}
    if by == "filter":
        groups[CURATED] = [d["text"] for d in docs]
        for step, dropped in sorted(filter_drops(recipe).items()):
            groups[f"filter:{step}"] = [d["text"] for d in dropped]
    else:
        labels = [d["source"] for d in docs] if by == "source" else cluster_labels(recipe, docs)
        for d, label in zip(docs, labels):
            groups.setdefault(label, []).append(d["text"])
    folder = run_dir / "ablate"
    claim_folder(folder)
    rows = ablate(
        groups,
        target_texts(recipe, corpus),
        ProxySettings.from_section(recipe.select.proxy),
        folder,
        recipe.seed,
        always=(CURATED,) if by == "filter" else (),
    )
    path = folder / f"{by}.json"
    write_json_atomic(
        path, {"by": by, "target": recipe.select.target, "proxy": recipe.select.proxy.model_dump(), "rows": rows}
    )
    return rows, path


def filter_drops(recipe: Recipe) -> dict[str, list[dict]]:
    """What each per-document curation step dropped, replayed from the recipe's sources."""
    sources = [SourceSpec.from_section(source, recipe.curate.limits) for source in recipe.sources]
    plan = CuratePlan.from_sections(
        curate=recipe.curate, facts=recipe.facts, seed=recipe.seed, embedder=recipe.index.embedder
    )
    dropped = pipeline.filter_drops(sources, plan)
    if not dropped:
        raise ValueError("no curation filter dropped a document: there is nothing to ablate by filter")
    return dropped


def cluster_labels(recipe: Recipe, docs: list[dict]) -> list[str]:
    """Each document's cluster: spherical k-means (curate.rebalance.clusters of them) over the
    recipe's embedder's vectors, as rebalancing clusters them."""
    embedder = Embedder(recipe.index.embedder, batch_size=recipe.index.batch_size)
    vectors = embedder.encode([d["text"][:EMBED_CHARS] for d in docs], show_progress=True)
    labels = kmeans_labels(vectors, recipe.curate.rebalance.clusters, recipe.seed)
    return [f"cluster-{int(label)}" for label in labels]
