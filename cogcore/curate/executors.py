"""Where curation's per-batch work runs: this process, a pool of local processes, or Ray Data.

Every executor has one method, `map(fn, items)`, yielding `fn(item)` for each item **in input
order** (the order is what makes a curation run reproducible and resumable), while keeping only a
bounded window of items in flight, so memory does not grow with the corpus.

- `LocalExecutor(workers=1)` runs in this process (tests, debugging).
- `LocalExecutor(workers=N)` uses N processes (all cores by default).
- `RayExecutor(address=None)` runs the same functions as a Ray Data job: on a local Ray instance
  by default, or on a cluster (`address="auto"` or `ray://...`). Needs the `ray` extra:
  `pip install "cogcore[ray]"`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from cogcore.ray_data import start_ray


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 0):
        self.workers = workers or default_workers()

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        if self.workers == 1:
            yield from map(fn, items)
            return
        # fork on Linux: workers inherit fn (and the step objects in it, which can be large, such
        # as a boilerplate line set) once, instead of receiving a pickled copy with every batch.
        fork = sys.platform.startswith("linux")
        ctx = mp.get_context("fork" if fork else "spawn")
        global _FORKED_FN
        _FORKED_FN = fn
        with ctx.Pool(self.workers) as pool:
            window: deque = deque()
            for item in items:
                window.append(pool.apply_async(_call_forked, (item,)) if fork else pool.apply_async(fn, (item,)))
                if len(window) >= self.workers * 2:
                    yield window.popleft().get()
            while window:
                yield window.popleft().get()


_FORKED_FN: Callable | None = None


def _call_forked(item):
    return _FORKED_FN(item)


class RayExecutor:
    """Runs batches as a Ray Data dataset, `window` batches at a time, order preserved."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 0, window: int = 16):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError("the Ray executor needs Ray Data: pip install 'cogcore[ray]'") from None
        self.address = address
        self.workers = workers or None
        self.window = window

    def map(self, fn: Callable, items: Iterable) -> Iterator:

        start_ray(self.address, self.workers)
        payload_fn = _PickledCall(fn)
        window: list = []
        for item in items:
            window.append(item)
            if len(window) == self.window:
                yield from self._run(payload_fn, window)
                window = []
        if window:
            yield from self._run(payload_fn, window)

    @staticmethod
    def _run(payload_fn, window: list) -> Iterator:
        import ray

        # Items travel pickled: curation records are nested dicts whose keys vary by source, which
        # an Arrow schema would force into one shape (and fill with nulls).
        ds = ray.data.from_items([{"i": i, "item": pickle.dumps(x)} for i, x in enumerate(window)])
        rows = sorted(ds.map(payload_fn).take_all(), key=lambda r: r["i"])
        for row in rows:
            yield pickle.loads(row["result"])


class _PickledCall:
    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, row: dict) -> dict:
        return {"i": row["i"], "result": pickle.dumps(self.fn(pickle.loads(row["item"])))}


def make_executor(kind: str, workers: int = 0, address: str | None = None):
    if kind == "ray":
        return RayExecutor(address=address, workers=workers)
    return LocalExecutor(workers)
