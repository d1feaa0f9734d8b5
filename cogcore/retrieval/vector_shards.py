"""Chunk vectors embedded shard by shard into files, so that a killed index build carries on.

A shard is `shard_chunks` consecutive chunks (the last one fewer), embedded and committed on its
own, in two atomic steps: its vectors (`vectors-00003.npy`, float32 rows in chunk order), then its
record (`vectors-00003.json`: the sha256 of the texts it embeds, the embedder that embedded them,
how many it truncated). The record is written last, so a shard counts as done only when both
files are there and the record names the texts the build would embed now and the same embedder;
any other shard is embedded again. A kill -9 therefore loses at most the shard being embedded,
and a resumed build uses vectors that are exactly those an uninterrupted one would compute (each
shard is embedded the same way, whether or not a run before it died).

    shards = embed_shards(texts, build / "vectors", embedder, shard_chunks=8192, total=n_chunks)
    for vectors in shards.batches():
        index.add(vectors)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count, islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cogcore.io import write_atomic, write_json_atomic

SHARD_CHUNKS = 8192  # 12 MB of 384-dim vectors: a kill loses a minute or two of CPU embedding at most
# Texts per embedder call inside a shard: what the progress bar advances by.
PIECE_BATCHES = 16


@dataclass
class VectorShards:
    """The shard files of one build, in chunk order, and what embedding them cost this run."""

    folder: Path
    shard_chunks: int
    dim: int
    n_chunks: int = 0
    truncated: int = 0
    embedded_chunks: int = 0  # by this run; the others came from shards a killed run committed
    embedded_bytes: int = 0
    text_bytes: int = 0  # of every chunk's text, UTF-8
    seconds: float = 0.0  # embedding this run's shards
    paths: list[Path] = field(default_factory=list)

    def batches(self) -> Iterator[np.ndarray]:
        """Each shard's vectors as a C-contiguous float32 array, one shard in memory at a time."""
        for path in self.paths:
            yield np.ascontiguousarray(np.load(path, mmap_mode="r"), dtype=np.float32)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of the given sorted chunk positions, read shard by shard."""
        shard_of = rows // self.shard_chunks
        parts = []
        for k in np.unique(shard_of):
            vectors = np.load(self.paths[k], mmap_mode="r")
            parts.append(vectors[rows[shard_of == k] - k * self.shard_chunks])
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def embed_shards(
    texts: Iterable[str],
    folder: Path,
    embedder,
    shard_chunks: int = SHARD_CHUNKS,
    total: int | None = None,
    progress: bool | None = None,
) -> VectorShards:
    """Embed texts into shard files under folder, keeping the shards a killed run committed for
    the same texts and embedder. total: how many texts, for the progress bar's ETA."""
    if shard_chunks < 1:
        raise ValueError(f"shard_chunks must be >= 1, got {shard_chunks}")
    folder.mkdir(parents=True, exist_ok=True)
    shards = VectorShards(folder, shard_chunks, embedder.dim)
    identity = embedder_identity(embedder)
    texts = iter(texts)
    bar = tqdm(total=total, desc="embedding", unit="chunk", unit_scale=True, disable=_hidden(progress))
    with bar:
        for k in count():
            shard_texts = list(islice(texts, shard_chunks))
            if not shard_texts:
                break
            _embed_shard(shards, k, shard_texts, embedder, identity, bar)
    return shards


def _embed_shard(shards: VectorShards, k: int, texts: list[str], embedder, identity: dict, bar) -> None:
    """Shard k: kept when a committed one holds these texts' vectors, else embedded and committed."""
    vectors_path, record_path = shards.folder / f"vectors-{k:05d}.npy", shards.folder / f"vectors-{k:05d}.json"
    encoded = [t.encode("utf-8") for t in texts]
    sizes = [len(b) for b in encoded]
    n_bytes = sum(sizes)
    record = {"texts_sha256": _texts_sha256(encoded), "n": len(texts), "embedder": identity}
    committed = _committed_record(record_path, vectors_path, record, embedder.dim)
    if committed is None:
        began = time.perf_counter()
        vectors, truncated = _encode_in_pieces(texts, sizes, embedder, bar, shards)
        committed = {**record, "truncated": truncated}
        write_atomic(vectors_path, lambda tmp: _save_npy(tmp, vectors))
        write_json_atomic(record_path, committed)  # last: the shard's commit
        shards.seconds += time.perf_counter() - began
        shards.embedded_chunks += len(texts)
        shards.embedded_bytes += n_bytes
    else:
        bar.update(len(texts))
    shards.paths.append(vectors_path)
    shards.n_chunks += len(texts)
    shards.text_bytes += n_bytes
    shards.truncated += committed["truncated"]


def _encode_in_pieces(
    texts: list[str], sizes: list[int], embedder, bar, shards: VectorShards
) -> tuple[np.ndarray, int]:
    """The shard's vectors and how many of its texts the embedder truncates, embedded a few batches
    at a time so that the bar shows rate, ETA and MB/s (sizes: each text's UTF-8 bytes)."""
    batch = getattr(embedder, "batch_size", 64)
    piece = batch * PIECE_BATCHES
    parts, began, done_bytes, truncated = [], time.perf_counter(), 0, 0
    for start in range(0, len(texts), piece):
        parts.append(embedder.encode(texts[start : start + piece]))
        # Counted a batch at a time: the untruncated token lists of a whole shard of long chunks
        # took hundreds of MB.
        for at in range(start, min(start + piece, len(texts)), batch):
            truncated += embedder.count_truncated(texts[at : min(at + batch, start + piece)])
        done_bytes += sum(sizes[start : start + piece])
        seconds = shards.seconds + time.perf_counter() - began
        bar.set_postfix_str(f"{(shards.embedded_bytes + done_bytes) / 1e6 / seconds:.2f} MB/s", refresh=False)
        bar.update(len(parts[-1]))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), truncated


def _committed_record(record_path: Path, vectors_path: Path, wanted: dict, dim: int) -> dict | None:
    """The shard's record when it commits vectors of exactly the wanted texts and embedder."""
    if not (record_path.exists() and vectors_path.exists()):
        return None
    try:
        record = json.loads(record_path.read_text())
        vectors = np.load(vectors_path, mmap_mode="r")
    except (OSError, ValueError):  # a torn file cannot be committed (both are renamed in whole), but be safe
        return None
    if not isinstance(record, dict) or any(record.get(key) != value for key, value in wanted.items()):
        return None
    if vectors.shape != (wanted["n"], dim) or vectors.dtype != np.float32:
        return None
    return record


def embedder_identity(embedder) -> dict:
    """What makes an embedder's vectors what they are: its folder, name, size and files' stamps."""
    path = Path(embedder.path)
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    return {
        "path": str(path),
        "name": embedder.name,
        "dim": embedder.dim,
        "max_seq_length": getattr(embedder, "max_seq_length", None),
        "fingerprint": getattr(embedder, "fingerprint", None),
        "files": [
            [str(p.relative_to(path)) if p != path else p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files
        ],
    }


def _texts_sha256(encoded: list[bytes]) -> str:
    h = hashlib.sha256()
    for b in encoded:
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _save_npy(path: Path, vectors: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to the temporary name
        np.save(f, vectors)


def _hidden(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides a bar where stderr is not a terminal."""
    return None if progress is None else not progress
