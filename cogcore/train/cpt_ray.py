"""Continued-pretraining tokenization on Ray Data (`train.cpt.data_executor: ray`): the shards of
`cpt_shards` encoded by `map_batches` on a pool of actors, on a local Ray instance by default or on
a cluster (`train.cpt.data_ray_address`). Each actor receives the tokenizer once (from Ray's object
store) and encodes whole shards with the same `encode_shard` as a local process, so a shard's bytes
are the same on either path; the parent commits them in order. Needs the `ray` extra:
`pip install "cogcore[ray]"`.

    executor = RayShardMap(tokenizer, workers=4)
    for index, payload in executor.map(settings, enumerate(shards)): ...
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator

from cogcore.ray_data import start_ray
from cogcore.train.cpt_data import EncodeSettings, Record
from cogcore.train.cpt_shards import default_workers, encode_shard


class RayShardMap:
    """Shards encoded as Ray Data datasets of `window` shards each, order preserved. Each window's
    dataset starts its own actor pool, so the window keeps memory bounded and the tokenizer's load
    is paid once per actor per window (a shard holds ~1000 documents: far more work than a load)."""

    name = "ray"

    def __init__(self, tokenizer, workers: int = 0, address: str | None = None, window: int = 0):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError("train.cpt.data_executor: ray needs Ray Data: pip install 'cogcore[ray]'") from None
        self.tokenizer, self.address = tokenizer, address
        self.workers = workers or default_workers()
        self.window = window or 4 * self.workers

    def map(self, settings: EncodeSettings, shards: Iterable[tuple[int, list[Record]]]) -> Iterator[tuple[int, bytes]]:
        import ray

        start_ray(self.address, self.workers)
        tokenizer = ray.put(pickle.dumps(self.tokenizer))
        window: list = []
        for item in shards:
            window.append(item)
            if len(window) == self.window:
                yield from self._run(tokenizer, settings, window)
                window = []
        if window:
            yield from self._run(tokenizer, settings, window)

    def _run(self, tokenizer, settings: EncodeSettings, window: list) -> Iterator[tuple[int, bytes]]:
        import ray

        # Records travel pickled: documents' meta vary by source, which one Arrow schema would not hold.
        ds = ray.data.from_items([{"index": i, "records": pickle.dumps(r)} for i, r in window])
        out = ds.map_batches(
            _EncodeActor,
            fn_constructor_args=(tokenizer, settings),
            batch_size=1,
            batch_format="numpy",
            concurrency=min(self.workers, len(window)),
        )
        for row in sorted(out.take_all(), key=lambda r: r["index"]):
            yield int(row["index"]), bytes(row["shard"])


class _EncodeActor:
    """A Ray actor: the tokenizer loaded once, then shards encoded one batch row at a time."""

    def __init__(self, tokenizer_ref, settings: EncodeSettings):
        import ray

        from cogcore.untrusted_text import control_strings

        blob = ray.get(tokenizer_ref) if isinstance(tokenizer_ref, ray.ObjectRef) else tokenizer_ref
        self.tokenizer = pickle.loads(blob)
        self.controls = control_strings(self.tokenizer)
        self.settings = settings

    def __call__(self, batch: dict) -> dict:
        shards = [
            encode_shard(self.tokenizer, pickle.loads(blob), self.settings, self.controls) for blob in batch["records"]
        ]
        return {"index": batch["index"], "shard": shards}
