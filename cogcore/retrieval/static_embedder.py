"""Static text embeddings: a model2vec table distilled once from a local sentence-transformers folder.

model2vec runs the sentence-transformer once over every token of its vocabulary, reduces those
token vectors with PCA and weights them by token rarity (SIF); a text's vector is then the mean of
its tokens' rows. No transformer runs at embedding time, so embedding is a table lookup:

    embedder = StaticEmbedder.distilled(get_model_path(), dims=256)   # distils once, then cached
    vecs = embedder.encode(["What is the monthly fee?"])              # float32, (1, 256), unit rows

Distilling MiniLM takes ~10 s on 2 cores. The result is cached under
`$COGCORE_CACHE/static-embedders/<name>-<fingerprint>` (default `~/.cache/cogcore`), where the
fingerprint hashes every file of the source folder, the model2vec version and the settings, so a
changed model or setting never meets a stale table. Everything is read from disk: no hub access.

The recipe chooses it with `index.embedder_kind: static` (cogcore.retrieval.embedders.load_embedder);
index.json records the distilled folder, its source and fingerprint, so a search embeds queries
with the same table. Speed and recall against MiniLM itself: benchmarks/README.md, retrieval.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cogcore.io import file_sha256
from cogcore.retrieval.embedder import model_name

SOURCE_FILE = "cogcore_source.json"  # in a distilled folder: what it was distilled from, and how
DEFAULT_DIMS = None  # no PCA: the source model's width (256 dims cost 0.05 of hybrid recall@5)


def cache_root() -> Path:
    return Path(os.environ.get("COGCORE_CACHE", Path.home() / ".cache" / "cogcore")) / "static-embedders"


def fingerprint(source: Path, dims: int | None, vocabulary: Sequence[str] | None = None) -> str:
    """A hash of what a distilled table depends on: every file of the source folder (path and
    content), the model2vec version, the PCA dims and the added vocabulary."""
    import model2vec

    files = sorted(p for p in source.rglob("*") if p.is_file())
    parts = {
        "files": {str(p.relative_to(source)): file_sha256(p) for p in files},
        "model2vec": model2vec.__version__,
        "dims": dims,
        "vocabulary": hashlib.sha256("\n".join(sorted(set(vocabulary or ()))).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def distilled_folder(
    source: str | Path, dims: int | None = DEFAULT_DIMS, vocabulary: Sequence[str] | None = None
) -> Path:
    """The folder of the static model distilled from the sentence-transformers folder `source`:
    the cached one for this fingerprint, or distilled now and cached. dims: PCA components
    (None: the model's own width, no PCA); vocabulary: words added as whole tokens."""
    source = _local_folder(source)
    key = fingerprint(source, dims, vocabulary)
    target = cache_root() / f"{model_name(source)}-{key}"
    if (target / SOURCE_FILE).exists():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _distill(source, dims, vocabulary).save_pretrained(str(tmp))
    record = {"source": str(source), "fingerprint": key, "dims": dims, "vocabulary_words": len(set(vocabulary or ()))}
    (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)  # a half-written folder from a killed run
    os.replace(tmp, target)  # SOURCE_FILE is in it: its presence means the folder is complete
    return target


def _local_folder(path: str | Path) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"embedder path {str(path)!r} is not a local folder; cogcore distils static embedders "
            "from a sentence-transformers folder on disk only"
        )
    return folder.resolve()


def _transformer_folder(source: Path) -> Path:
    """Where the sentence-transformer's transformer lives: the folder itself (MiniLM), or the
    subfolder modules.json names for its Transformer module."""
    modules = source / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith(".Transformer"):
                return source / module.get("path", "")
    return source


def _distill(source: Path, dims: int | None, vocabulary: Sequence[str] | None):
    """model2vec's distillation, on weights and tokenizer loaded from disk (model2vec's own
    `distill` takes a name and would ask the hub about it)."""
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    folder = _transformer_folder(source)
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, use_fast=True)
    width = int(model.config.hidden_size)
    if dims is not None and not 1 <= dims <= width:
        raise ValueError(f"static embedder dims must be between 1 and {model_name(source)}'s width {width}, got {dims}")
    return distill_from_model(
        model=model,
        tokenizer=tokenizer,
        vocabulary=sorted(set(vocabulary)) if vocabulary else None,
        device="cpu",
        pca_dims=dims,
        quantize_to="float32",
    )


class StaticEmbedder:
    """A distilled model2vec folder loaded for embedding; the same interface as `Embedder`."""

    kind = "static"

    def __init__(self, path: str | Path, batch_size: int = 1024):
        from model2vec import StaticModel

        folder = Path(path).expanduser()
        record_path = folder / SOURCE_FILE
        if not record_path.exists():
            raise FileNotFoundError(
                f"{folder} is not a static embedder distilled by cogcore (no {SOURCE_FILE}); "
                "a cache folder removed since the index was built is distilled again by rebuilding it"
            )
        record = json.loads(record_path.read_text())
        self.path = str(folder.resolve())
        self.source, self.fingerprint = record["source"], record["fingerprint"]
        self.name = f"{model_name(Path(self.source))}-static{record['dims'] or ''}"
        self.batch_size = batch_size
        self.model = StaticModel.from_pretrained(self.path, normalize=True, force_download=False)
        self.dim = int(self.model.dim)
        self.max_seq_length = 0  # no limit: nothing is cut off

    @classmethod
    def distilled(
        cls,
        source: str | Path,
        dims: int | None = DEFAULT_DIMS,
        vocabulary: Sequence[str] | None = None,
        batch_size: int = 1024,
    ) -> StaticEmbedder:
        """The static embedder distilled from the sentence-transformers folder `source` (cached)."""
        return cls(distilled_folder(source, dims, vocabulary), batch_size=batch_size)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embed texts as an (n, dim) C-contiguous float32 array of unit-length rows (a text with
        no known token is a zero row)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # max_length None: every token counts (a mean of table rows costs little per token). One
        # thread: model2vec's worker threads only pay off past 10k texts, and the cores are shared.
        vectors = self.model.encode(
            list(texts),
            max_length=None,
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            use_multiprocessing=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """Always 0: a static embedder reads every token."""
        return 0

    def __repr__(self) -> str:
        return f"StaticEmbedder(name={self.name!r}, dim={self.dim}, path={self.path!r})"
