"""Continued-pretraining documents tokenized by shard: on every local core (or on Ray Data), each
shard committed to disk as it is done, so a killed run resumes from its last complete shard.

A shard is `shard_docs` consecutive documents of the training order. Each is encoded by
`cpt_data.encode_records` (the one encoder: masks, calls, results), in a pool of processes that
each hold the tokenizer (received once, when the process starts), and comes back as one Arrow IPC
file: a row per document (`ids`, `labels`, EOS included) and its counts in the schema's metadata.
The parent writes it as `<part>-<index>.arrow` by rename, in order; a shard already there is not
encoded again. Then the shards are read back in order, so the documents reach the packer exactly
as the single-process path yields them: the rows, and the cache made of them, are the same bytes
whatever the number of workers, the executor, or the kills in between.

    store = ShardStore(shard_folder(stage_folder, key))
    encoder = ShardedEncoder(store, LocalShardPool(tok, workers=0), settings, shard_docs=1000)
    counts = empty_counts(settings)
    rows = pack_rows(encoder.encode(records, "docs", counts, total=n_docs), seq_len, True, counts)

Throughput on 1 and N workers, with SmolLM2's tokenizer: `python benchmarks/cpt_tokenize.py`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa

from cogcore.io import write_bytes_atomic
from cogcore.train.cpt_data import EncodeSettings, Record, empty_counts, encode_records

_COUNTS_KEY = b"counts"
_IDS = pa.list_(pa.int32())
_READ_ROWS = 64  # documents turned back into Python lists at once (a list of ints costs ~9x its Arrow bytes)


def default_workers() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def encode_shard(tokenizer, records: list[Record], settings: EncodeSettings, controls=None) -> bytes:
    """A shard's documents encoded, as Arrow IPC bytes: (ids, labels) per document, counts (and the
    bytes of text read, for the throughput) in the metadata."""
    counts = empty_counts(settings)
    encoded = list(encode_records(tokenizer, records, settings, counts, controls))
    counts["text_bytes"] = sum(len(doc["text"].encode()) for doc, _, _ in records)
    table = pa.table(
        {"ids": pa.array([e[0] for e in encoded], _IDS), "labels": pa.array([e[1] for e in encoded], _IDS)}
    ).replace_schema_metadata({_COUNTS_KEY: json.dumps(counts, sort_keys=True).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_shard(path: Path) -> tuple[pa.Table, dict]:
    """(table of ids/labels per document, counts) of a committed shard."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return table, json.loads(table.schema.metadata[_COUNTS_KEY])


class ShardStore:
    """The committed shards of one cache key: `<part>-<index>.arrow`, each written by rename."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, part: str, index: int) -> Path:
        return self.folder / f"{part}-{index:06d}.arrow"

    def has(self, part: str, index: int) -> bool:
        return self.path(part, index).exists()

    def commit(self, part: str, index: int, payload: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path(part, index), payload)


class LocalShardPool:
    """Shards encoded in this process (`workers=1`) or in a pool of `workers` processes (0: one
    per core), in order, a bounded window of them in flight (memory does not grow with the corpus)."""

    name = "local"

    def __init__(self, tokenizer, workers: int = 0):
        self.tokenizer = tokenizer
        self.workers = workers or default_workers()

    def map(self, settings: EncodeSettings, shards: Iterable[tuple[int, list[Record]]]) -> Iterator[tuple[int, bytes]]:
        if self.workers == 1:
            for index, records in shards:
                yield index, encode_shard(self.tokenizer, records, settings)
            return
        # fork on Linux: the workers start at once with the tokenizer already in memory; elsewhere
        # each receives it pickled, once, as it starts.
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(self.workers, initializer=_start_worker, initargs=(self.tokenizer,)) as pool:
            window: deque = deque()
            for index, records in shards:
                window.append((index, pool.apply_async(_encode_in_worker, (records, settings))))
                if len(window) >= 2 * self.workers:
                    index, done = window.popleft()
                    yield index, done.get()
            while window:
                index, done = window.popleft()
                yield index, done.get()


_WORKER: dict = {}


def _start_worker(tokenizer) -> None:
    # The parent may have tokenized in Rust threads before forking; a forked child must not.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from cogcore.untrusted_text import control_strings

    _WORKER.update(tokenizer=tokenizer, controls=control_strings(tokenizer))


def _encode_in_worker(records: list[Record], settings: EncodeSettings) -> bytes:
    return encode_shard(_WORKER["tokenizer"], records, settings, _WORKER["controls"])


class ShardedEncoder:
    """Documents -> encoded documents, through committed shards (see the module docstring)."""

    def __init__(self, store: ShardStore, executor, settings: EncodeSettings, shard_docs: int = 1000):
        self.store, self.executor, self.settings, self.shard_docs = store, executor, settings, shard_docs
        self.meter = ThroughputMeter(executor.name, executor.workers)

    def encode(
        self, records: Iterable[Record], part: str, counts: dict, total: int | None = None, progress: bool = False
    ) -> Iterator[tuple[list[int], list[int]]]:
        """(ids, labels) of each record's document, in order; adds the shards' counts to `counts`
        and the throughput to `counts["tokenize_throughput"]`."""
        shards = self._commit_all(records, part, total, progress)
        counts["tokenize_throughput"] = self.meter.record()
        for index in range(shards):
            table, shard_counts = read_shard(self.store.path(part, index))
            _add_counts(counts, shard_counts)
            for start in range(0, table.num_rows, _READ_ROWS):  # Python lists of a few documents at a time
                piece = table.slice(start, _READ_ROWS)
                yield from zip(piece.column("ids").to_pylist(), piece.column("labels").to_pylist())

    def _commit_all(self, records: Iterable[Record], part: str, total: int | None, progress: bool) -> int:
        """Encode and commit every shard not yet committed; returns the number of shards."""
        from tqdm.auto import tqdm

        desc = f"tokenizing ({self.executor.name} x{self.executor.workers})"
        bar = tqdm(total=total, desc=desc, unit="doc", disable=not progress)
        seen = [0]

        def todo() -> Iterator[tuple[int, list[Record]]]:
            for index, records_ in enumerate(_batched(records, self.shard_docs)):
                seen[0] = index + 1
                if self.store.has(part, index):
                    self.meter.resumed += 1
                    bar.update(len(records_))
                else:
                    yield index, records_

        self.meter.start()
        for index, payload in self.executor.map(self.settings, todo()):
            self.store.commit(part, index, payload)
            shard = pa.ipc.open_file(pa.BufferReader(payload)).schema.metadata[_COUNTS_KEY]
            docs = self.meter.add(json.loads(shard))
            bar.update(docs)
            bar.set_postfix_str(self.meter.rates_text(), refresh=False)
        self.meter.stop()
        bar.close()
        return seen[0]


class ThroughputMeter:
    """Documents, tokens and text bytes encoded in this run (resumed shards not counted), over time."""

    def __init__(self, executor: str, workers: int):
        self.executor, self.workers = executor, workers
        self.docs = self.tokens = self.text_bytes = self.shards = self.resumed = 0
        self.seconds, self._t0 = 0.0, None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.seconds += time.perf_counter() - self._t0
        self._t0 = None

    def add(self, shard_counts: dict) -> int:
        self.shards += 1
        self.docs += shard_counts["docs"]
        self.tokens += shard_counts["tokens"]
        self.text_bytes += shard_counts["text_bytes"]
        return shard_counts["docs"]

    def _elapsed(self) -> float:
        return self.seconds + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def rates_text(self) -> str:
        s = max(self._elapsed(), 1e-9)
        return f"{self.tokens / s:,.0f} tok/s, {self.text_bytes / s / 1e6:.2f} MB/s"

    def record(self) -> dict:
        """What metrics.json keeps: where and how fast tokenization ran."""
        s = self._elapsed()
        rate = (lambda x: round(x / s, 2)) if s > 0 else (lambda x: None)
        return {
            "executor": self.executor,
            "workers": self.workers,
            "shards": self.shards,
            "shards_resumed": self.resumed,
            "docs": self.docs,
            "tokens": self.tokens,
            "seconds": round(s, 3),
            "docs_per_s": rate(self.docs),
            "tokens_per_s": rate(self.tokens),
            "mb_per_s": rate(self.text_bytes / 1e6),
        }


def _add_counts(counts: dict, shard: dict) -> None:
    for key, value in shard.items():
        if key == "strategy":
            counts[key] = value
        elif key != "text_bytes":
            counts[key] = counts.get(key, 0) + value


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch
