"""The Ray Data path on a real local Ray instance gives exactly the local path's output."""

import json

import pytest

from cogcore.curate.executors import LocalExecutor, RayExecutor
from cogcore.curate.pipeline import curate

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")


def test_ray_and_local_executors_agree(tmp_path, source, bare_plan):
    rows = [
        {"id": f"d{i}", "text": f"Record {i % 300} lists a fee of ${i % 300 % 97}.00 for {i % 300 % 13} items."}
        for i in range(1000)
    ]
    src = tmp_path / "x.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = bare_plan(min_chars=20, batch_size=100, kinds=("money", "number"))
    try:
        by_ray = curate([source("s", str(src), id_field="id")], tmp_path / "ray", plan, RayExecutor(workers=2))
    finally:
        ray.shutdown()
    local = curate([source("s", str(src), id_field="id")], tmp_path / "local", plan, LocalExecutor(1))
    for name in ("docs.jsonl", "facts.jsonl", "clusters.jsonl"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert by_ray.docs_out == local.docs_out == 300
    assert len(list((tmp_path / "ray" / "work" / "p2").glob("*.pkl"))) == 10
