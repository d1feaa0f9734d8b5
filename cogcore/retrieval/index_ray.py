"""The index build's embedding on Ray Data (`index.executor: ray`): the vector shards a build has not
committed yet are embedded by `map_batches` on a pool of actors, on a local Ray instance by default
or on a cluster (`index.ray_address`). Needs the `ray` extra: `pip install "cogcore[ray]"`.

Each actor loads the embedder once (from its folder and kind, with the build's batch size: one GPU
each where Ray reports GPUs, else on CPU) and embeds whole shards, piece by piece as the local path
does (cogcore.retrieval.vector_shards), so that every embedder call sees the same texts in the same
order and a shard's vectors are the same float32 bytes on either path on CPU. The driver commits
each shard exactly as the local path does (the same `vectors-NNNNN.npy`, then the same record), a
window of shards per Ray job so that memory stays bounded; the local `embed_shards` then finds
every shard committed and lists them, so resume, checks and stats are the local path's.

    shards = embed_shards_on_ray(texts, build, embedder, shard_chunks=8192, total=n_chunks)
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import count, islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cogcore.io import write_atomic, write_json_atomic
from cogcore.ray_data import start_ray
from cogcore.retrieval.vector_shards import (
    PIECE_BATCHES,
    SHARD_CHUNKS,
    VectorShards,
    _committed_record,
    _save_npy,
    _texts_sha256,
    embed_shards,
    embedder_identity,
)

SMALL_POOL = 4  # CPU actors where Ray reports no CPUs (each holds a model: more would crowd memory)
WINDOW_PER_ACTOR = 2  # shards per Ray job per actor: enough to keep every actor busy, memory bounded


def embed_shards_on_ray(
    texts: Callable[[], Iterable[str]],
    folder: Path,
    embedder,
    shard_chunks: int = SHARD_CHUNKS,
    total: int | None = None,
    progress: bool | None = None,
    address: str | None = None,
    workers: int = 0,
    window: int = 0,
) -> VectorShards:
    """`embed_shards`, with the shards that are not committed yet embedded on Ray Data. texts: a
    fresh iterator of the texts at each call (they are read twice). workers: CPU actors, and the
    CPUs of a local Ray instance (0: one per CPU; where Ray reports GPUs, one actor per GPU instead);
    window: shards per Ray job (0: two per actor)."""
    if shard_chunks < 1:
        raise ValueError(f"shard_chunks must be >= 1, got {shard_chunks}")
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    bar = tqdm(total=total, desc="embedding (ray)", unit="chunk", unit_scale=True, disable=_hidden(progress))
    with bar:
        embedded_chunks, embedded_bytes = _embed_missing(
            _missing_shards(texts(), folder, embedder, shard_chunks, bar),
            folder,
            lambda: _ActorPool(embedder, address, workers, window),
            bar,
        )
    seconds = time.perf_counter() - began
    shards = embed_shards(texts(), folder, embedder, shard_chunks, total=total, progress=False)
    # That pass found every shard committed: what this run embedded, it embedded on Ray.
    shards.embedded_chunks += embedded_chunks
    shards.embedded_bytes += embedded_bytes
    shards.seconds += seconds
    return shards


def _embed_missing(missing: Iterator[tuple], folder: Path, start_pool: Callable, bar) -> tuple[int, int]:
    """Embed and commit the missing shards, a window per Ray job; returns the (chunks, UTF-8 bytes)
    embedded. Ray is started at the first missing shard only: a build with all committed needs none."""
    pool, todo, chunks, n_bytes = None, [], 0, 0
    for shard in missing:
        pool = pool or start_pool()
        todo.append(shard)
        if len(todo) == pool.window:
            chunks, n_bytes = _commit_window(pool, todo, folder, bar, chunks, n_bytes)
            todo = []
    if todo:
        chunks, n_bytes = _commit_window(pool, todo, folder, bar, chunks, n_bytes)
    return chunks, n_bytes


def _commit_window(pool, todo: list, folder: Path, bar, chunks: int, n_bytes: int) -> tuple[int, int]:
    """One Ray job over the window's shards, each committed as it comes back, in order."""
    for k, shard_texts, record, vectors, truncated in pool.embed(todo):
        _commit(folder, k, {**record, "truncated": truncated}, vectors)
        chunks += len(shard_texts)
        n_bytes += sum(len(t.encode("utf-8")) for t in shard_texts)
        bar.update(len(shard_texts))
    return chunks, n_bytes


def _missing_shards(texts: Iterable[str], folder: Path, embedder, shard_chunks: int, bar) -> Iterator[tuple]:
    """(shard number, texts, record) of each shard not committed for these texts and embedder."""
    identity, texts = embedder_identity(embedder), iter(texts)
    for k in count():
        shard_texts = list(islice(texts, shard_chunks))
        if not shard_texts:
            return
        record = {
            "texts_sha256": _texts_sha256([t.encode("utf-8") for t in shard_texts]),
            "n": len(shard_texts),
            "embedder": identity,
        }
        vectors_path, record_path = _shard_paths(folder, k)
        if _committed_record(record_path, vectors_path, record, embedder.dim) is None:
            yield k, shard_texts, record
        else:
            bar.update(len(shard_texts))


def _commit(folder: Path, k: int, record: dict, vectors: np.ndarray) -> None:
    """Shard k's vectors, then its record: the local path's two atomic steps, in its order."""
    vectors_path, record_path = _shard_paths(folder, k)
    write_atomic(vectors_path, lambda tmp: _save_npy(tmp, vectors))
    write_json_atomic(record_path, record)  # last: the shard's commit


def _shard_paths(folder: Path, k: int) -> tuple[Path, Path]:
    return folder / f"vectors-{k:05d}.npy", folder / f"vectors-{k:05d}.json"


class _ActorPool:
    """Ray started (or joined) once; each window of shards is one Ray Data job over `size` actors."""

    def __init__(self, embedder, address: str | None, workers: int, window: int):
        try:
            import ray
        except ImportError:
            raise ImportError("index.executor: ray needs Ray Data: pip install 'cogcore[ray]'") from None
        start_ray(address, workers)
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        # One GPU per actor where there are GPUs; else one CPU each.
        self.size = self.gpus or workers or int(resources.get("CPU", 0)) or SMALL_POOL
        self.window = window or WINDOW_PER_ACTOR * self.size
        self.dim = embedder.dim
        device = "cuda" if self.gpus else "cpu"
        self.loader = (embedder.path, embedder.kind, getattr(embedder, "batch_size", 64), device)

    def embed(self, todo: list) -> Iterator[tuple[int, list[str], dict, np.ndarray, int]]:
        """(shard, texts, record, vectors, truncated) for each shard of the window, in order."""
        import ray

        # Texts travel pickled: one Arrow row per shard, whatever its texts hold.
        ds = ray.data.from_items([{"shard": k, "texts": pickle.dumps(t)} for k, t, _ in todo])
        out = ds.map_batches(
            _EmbedActor,
            fn_constructor_args=self.loader,
            batch_size=1,
            batch_format="numpy",
            concurrency=min(self.size, len(todo)),
            num_gpus=1 if self.gpus else 0,
        )
        rows = {int(row["shard"]): row for row in out.take_all()}
        for k, shard_texts, record in todo:
            row = rows[k]
            vectors = np.frombuffer(bytes(row["vectors"]), dtype=np.float32).reshape(len(shard_texts), self.dim)
            yield k, shard_texts, record, vectors, int(row["truncated"])


class _EmbedActor:
    """A Ray actor: the embedder loaded once, then shards embedded one batch row at a time."""

    def __init__(self, path: str, kind: str, batch_size: int, device: str):
        self.embedder = actor_embedder(path, kind, batch_size, device)

    def __call__(self, batch: dict) -> dict:
        vectors, truncated = [], []
        for blob in batch["texts"]:
            shard_vectors, shard_truncated = encode_shard(pickle.loads(blob), self.embedder)
            vectors.append(shard_vectors.tobytes())
            truncated.append(shard_truncated)
        return {"shard": batch["shard"], "vectors": vectors, "truncated": np.array(truncated)}


def actor_embedder(path: str, kind: str, batch_size: int, device: str = "cpu"):
    """The build's embedder, loaded again from its folder (a static one's is the distilled table)."""
    if kind == "static":
        from cogcore.retrieval.static_embedder import StaticEmbedder

        return StaticEmbedder(path, batch_size=batch_size)
    if kind == "transformer":
        from cogcore.retrieval.embedder import Embedder

        return Embedder(path, batch_size=batch_size, device=device)
    raise ValueError(f"embedder kind must be 'transformer' or 'static', got {kind!r}")


def encode_shard(texts: list[str], embedder) -> tuple[np.ndarray, int]:
    """A shard's vectors and truncated count, with the embedder called on the same pieces as the
    local path (batch_size x PIECE_BATCHES texts from the shard's start): sentence-transformers
    sorts and pads within a call, so other pieces would give other float32 bytes."""
    batch = getattr(embedder, "batch_size", 64)
    piece = batch * PIECE_BATCHES
    parts, truncated = [], 0
    for start in range(0, len(texts), piece):
        parts.append(embedder.encode(texts[start : start + piece]))
        for at in range(start, min(start + piece, len(texts)), batch):
            truncated += embedder.count_truncated(texts[at : min(at + batch, start + piece)])
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), truncated


def _hidden(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides a bar where stderr is not a terminal."""
    return None if progress is None else not progress
