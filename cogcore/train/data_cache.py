"""Tokenized training rows, written once as a datasets Arrow folder and loaded on every later run.

Tokenizing a big corpus takes long, and a training stage that resumes after a kill (or a launch
that starts one process per GPU) must not do it again. `cached_rows` streams the rows a builder
yields into an Arrow file in batches (memory stays bounded by one batch, not the corpus), saves
them with `Dataset.save_to_disk` under `<folder>/tokens-<key>`, and writes `counts.json` last, so
its presence means the folder is complete. The key is a hash of everything the rows depend on
(documents, facts, tokenizer, settings), so a changed input never meets a stale cache.

A builder that tokenizes by shard (cogcore.train.cpt_shards) keeps its committed shards in
`shard_folder(folder, key)`, `tokens-<key>.shards`: a build killed half-way leaves them there, the
next one (same key, same inputs) encodes only the shards that are missing, and the folder is
removed once the rows are saved.

    rows, counts = cached_rows(stage_folder, {"docs": docs_sha, "seq_len": 512, ...},
                               lambda counts: pack_rows(encode_documents(...), 512, True, counts))
    train(model, tok, rows, stage_folder, settings, label="train.cpt")  # rows: a memory-mapped Dataset
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, load_from_disk
from datasets.table import MemoryMappedTable

COUNTS_FILE = "counts.json"
WRITE_BATCH = 1024  # rows per Arrow record batch
COLUMNS = ("input_ids", "labels", "position_ids")


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shard_folder(folder: Path, key_parts: dict) -> Path:
    """Where a sharded builder keeps its committed shards until the rows of `key_parts` are saved."""
    return Path(folder) / f"tokens-{cache_key(key_parts)}.shards"


def cached_rows(folder: Path, key_parts: dict, build: Callable[[dict], Iterable[dict]]) -> tuple[Dataset, dict]:
    """The rows for `key_parts`: loaded from the cache, or built (`build(counts)` yields rows and
    fills counts), saved and loaded. Returns (memory-mapped Dataset, counts); counts say whether
    the cache was used (`tokens_cached`) and how long building took."""
    target = Path(folder) / f"tokens-{cache_key(key_parts)}"
    if (target / COUNTS_FILE).exists():
        counts = json.loads((target / COUNTS_FILE).read_text())
        return load_from_disk(str(target)), {**counts, "tokens_cached": True}
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.time()
    counts: dict = {}
    stream = tmp / "stream.arrow"
    n = _write_stream(build(counts), stream)
    if n == 0:
        shutil.rmtree(tmp)
        shutil.rmtree(shard_folder(folder, key_parts), ignore_errors=True)
        return Dataset.from_list([]), {**counts, "tokens_cached": False}
    saved = tmp / "dataset"
    # The fingerprint is the key (datasets would draw one from the file's path and time): the same
    # inputs save the same bytes, whether the build ran whole or resumed after a kill.
    Dataset(MemoryMappedTable.from_file(str(stream)), fingerprint=cache_key(key_parts)).save_to_disk(str(saved))
    counts["tokenize_seconds"] = round(time.time() - t0, 2)
    (saved / COUNTS_FILE).write_text(json.dumps(counts, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)  # a half-written folder from a killed run
    os.replace(saved, target)
    shutil.rmtree(tmp)
    shutil.rmtree(shard_folder(folder, key_parts), ignore_errors=True)  # the rows hold all they did
    return load_from_disk(str(target)), {**counts, "tokens_cached": False}


def _write_stream(rows: Iterable[dict], path: Path) -> int:
    """Write rows as an Arrow IPC stream in batches; the columns are those of the first row."""
    writer, batch, n = None, [], 0
    try:
        for row in rows:
            batch.append(row)
            if len(batch) == WRITE_BATCH:
                writer = _flush(batch, path, writer)
                n += len(batch)
                batch = []
        if batch:
            writer = _flush(batch, path, writer)
            n += len(batch)
    finally:
        if writer is not None:
            writer.close()
    return n


def _flush(batch: list[dict], path: Path, writer):
    names = [c for c in COLUMNS if c in batch[0]]
    columns = {c: pa.array([r[c] for r in batch], type=pa.list_(pa.int32())) for c in names}
    if "group" in batch[0]:  # the source a row packs (the online mixture draws by it)
        columns["group"] = pa.array([r["group"] for r in batch], type=pa.string())
    table = pa.table(columns)
    if writer is None:
        writer = pa.ipc.new_stream(str(path), table.schema)
    writer.write_table(table)
    return writer
