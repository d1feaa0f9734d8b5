"""The index stage: curate/docs.jsonl -> index/ (faiss vectors, BM25, chunks with provenance,
index.json with the search settings every later stage searches with, stats.json with the build's cost).

    cogcore index recipes/demo.yaml

The documents are read line by line, never all at once, and the build commits its vectors shard
by shard (cogcore.retrieval.index): run again after a kill, the stage carries on from the last
committed shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from cogcore.curate.names import NAMES_FILE, learn_names
from cogcore.io import iter_jsonl
from cogcore.recipe import Recipe
from cogcore.retrieval.embedder import Embedder
from cogcore.retrieval.embedders import load_embedder
from cogcore.retrieval.index import build_index
from cogcore.retrieval.index_files import STATS_FILE
from cogcore.stages.inputs import require_documents


def run(recipe: Recipe, run_dir: Path, folder: Path) -> None:
    docs = JsonlDocs(run_dir / "curate" / "docs.jsonl")  # every document, held out or not: facts stay findable
    require_documents("index", len(docs))
    stats = build_recipe_index(recipe, run_dir, docs, folder)
    stats.write(folder / STATS_FILE)


class JsonlDocs:
    """The documents of a JSON-lines file, read one line at a time whenever they are iterated (a
    list of them can be larger than memory); len() counts them without parsing, for progress bars."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._n: int | None = None

    def __iter__(self) -> Iterator[dict]:
        return iter_jsonl(self.path)

    def __len__(self) -> int:
        if self._n is None:
            with open(self.path, "rb") as f:
                self._n = sum(1 for line in f if line.strip())
        return self._n


def build_recipe_index(
    recipe: Recipe, run_dir: Path, docs: Iterable[dict], folder: Path, embedder: Embedder | None = None
):
    """An index of `docs` (a list, or JsonlDocs: iterated once to learn product names where curation
    left none, once to index) as the recipe's `index` section says (eval builds one over changed
    facts too)."""
    cfg = recipe.index
    return build_index(
        docs,
        folder,
        embedder
        or load_embedder(cfg.embedder, cfg.embedder_kind, batch_size=cfg.batch_size, static_dims=cfg.static_dims),
        chunk_chars=cfg.chunk_chars,
        overlap=cfg.chunk_overlap,
        index_type=cfg.type,
        header=cfg.chunk_header,
        mode=cfg.search_mode,
        rrf_k=cfg.rrf_k,
        fusion_weights=(cfg.weights.dense, cfg.weights.bm25),
        reranker=cfg.reranker,
        rerank_top=cfg.rerank_top,
        names=product_names(run_dir, docs) if cfg.by_product else (),
        executor=cfg.executor,
        ray_address=cfg.ray_address,
    )


def product_names(run_dir: Path, docs: Iterable[dict]) -> list[str]:
    """The names curation learned (curate/names.json), else learned from the documents here."""
    path = run_dir / "curate" / NAMES_FILE
    if path.exists():
        return [n["text"] for n in json.loads(path.read_text())["names"]]
    return [n.text for n in learn_names(d["text"] for d in docs)]
