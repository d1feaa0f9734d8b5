"""Optional second-stage reranking: rescore the first stage's top candidates with a costlier model.

A cross-encoder reads the query and a passage together, so it ranks better than either retriever
but costs a forward pass per (query, passage) pair: it is applied to the top `rerank_top`
candidates of the first stage only, and is off unless a model folder is given. No cross-encoder
ships with cogcore's offline dependencies, so there is no default model:

    index = SearchIndex.load("runs/demo/index", reranker=CrossEncoderReranker("/models/ms-marco-MiniLM-L6"))

Anything with a `score(query, texts) -> list[float]` method (higher is better) is a `Reranker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from cogcore.retrieval.embedder import model_name


@runtime_checkable
class Reranker(Protocol):
    """Scores passages for a query; higher is more relevant."""

    name: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder loaded from a local folder (never the hub)."""

    def __init__(self, path: str | Path, batch_size: int = 32, device: str = "cpu"):
        from sentence_transformers import CrossEncoder

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"reranker path {str(path)!r} is not a local folder; cogcore loads rerankers from disk only"
            )
        self.path = str(folder.resolve())
        self.name = model_name(folder)
        self.batch_size = batch_size
        self.model = CrossEncoder(self.path, device=device, local_files_only=True)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scores = self.model.predict(
            [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return [float(s) for s in scores.reshape(len(texts), -1)[:, -1]]

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(name={self.name!r}, path={self.path!r})"
