"""Which embedder: the recipe's (`index.embedder`, `index.embedder_kind`) or the one an index.json names.

    emb = load_embedder(get_model_path(), "static", static_dims=256)   # distilled once, then cached
    emb = saved_embedder(info.embedder, info.embedder_kind)            # what an index was built with

"transformer" runs the sentence-transformer on every text (cogcore.retrieval.embedder); "static"
is a model2vec table distilled from the same folder, a lookup per token
(cogcore.retrieval.static_embedder: 300-700x faster on MiniLM, lower recall).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cogcore.retrieval.embedder import Embedder

EMBEDDER_KINDS = ("transformer", "static")


def load_embedder(
    path: str | Path,
    kind: str = "transformer",
    batch_size: int = 64,
    static_dims: int | None = None,
    vocabulary: Sequence[str] | None = None,
):
    """The recipe's embedder (`index.embedder`, `index.embedder_kind`): the sentence-transformers
    folder itself, or ("static") a model2vec table distilled from it once and cached, with
    static_dims PCA components and the vocabulary's words added as whole tokens."""
    if kind == "transformer":
        return Embedder(path, batch_size=batch_size)
    if kind == "static":
        from cogcore.retrieval.static_embedder import StaticEmbedder

        return StaticEmbedder.distilled(path, dims=static_dims, vocabulary=vocabulary, batch_size=batch_size)
    raise ValueError(f"embedder kind must be one of {EMBEDDER_KINDS}, got {kind!r}")


def saved_embedder(path: str | Path, kind: str = "transformer"):
    """The embedder an index was built with, from index.json's `embedder` folder and `embedder_kind`
    (a static one is its distilled folder, loaded as it is)."""
    if kind == "static":
        from cogcore.retrieval.static_embedder import StaticEmbedder

        return StaticEmbedder(path)
    if kind == "transformer":
        return Embedder(path)
    raise ValueError(f"embedder kind must be one of {EMBEDDER_KINDS}, got {kind!r}")
