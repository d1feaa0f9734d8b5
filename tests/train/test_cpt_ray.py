"""Tokenization on Ray Data (train.cpt.data_executor: ray), on a real local Ray instance, gives the
local path's shards byte for byte, and so its rows and counts."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from cogcore.train.cpt_data import EncodeSettings, build_cpt_rows, empty_counts, pack_rows
from cogcore.train.cpt_shards import LocalShardPool, ShardedEncoder, ShardStore

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")


def _doc(n: int) -> dict:
    text = f"Locker {n} at branch {n % 4} costs {n % 9 + 2} USD a month; call 555-{n:04d} to rent it."
    return {"id": f"d{n}", "text": text, "source": "s", "meta": {"title": f"Locker {n}"}}


DOCS = [_doc(n) for n in range(30)]
FACTS = [
    {"doc_id": d["id"], "start": (s := d["text"].index("555-")), "end": s + 8, "text": d["text"][s : s + 8]}
    for d in DOCS
]


@pytest.fixture(scope="module")
def tok(make_tiny_llm):
    return AutoTokenizer.from_pretrained(make_tiny_llm([d["text"] for d in DOCS]))


def test_ray_data_and_local_processes_agree(tok, tmp_path):
    from cogcore.train.cpt_ray import RayShardMap

    settings = EncodeSettings("toolcall")
    records = [(d, [f for f in FACTS if f["doc_id"] == d["id"]], None) for d in DOCS]
    out = {}
    try:
        for name, executor in (("ray", RayShardMap(tok, workers=2, window=2)), ("local", LocalShardPool(tok, 1))):
            encoder = ShardedEncoder(ShardStore(tmp_path / name), executor, settings, shard_docs=4)
            counts = empty_counts(settings)
            rows = list(pack_rows(encoder.encode(records, "docs", counts), 40, True, counts))
            out[name] = rows, counts
    finally:
        ray.shutdown()
    (ray_rows, ray_counts), (local_rows, local_counts) = out["ray"], out["local"]
    assert ray_counts.pop("tokenize_throughput")["executor"] == "ray"
    local_counts.pop("tokenize_throughput")
    expected, expected_counts = build_cpt_rows(tok, DOCS, FACTS, 40, "toolcall", packing=True)
    assert ray_rows == local_rows == expected and ray_counts == local_counts == expected_counts
    shards = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert len(shards) == 8  # 30 documents, 4 a shard, in windows of 2 shards
    for name in shards:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
