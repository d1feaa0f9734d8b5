"""The index build's embedding on Ray Data (index.executor: ray), on a real local Ray instance, gives
the local build's files byte for byte, and carries on from the shards a local build committed."""

from __future__ import annotations

import pytest

from cogcore.retrieval import Embedder, build_index
from cogcore.retrieval.index import BUILD_FOLDER

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")

# Batches of 2 texts: pieces of 32 per embedder call, so a 36-chunk shard is two calls whose
# sorting and padding the Ray path must repeat exactly.
SETTINGS = {"chunk_chars": 120, "overlap": 30, "shard_chunks": 36, "progress": False}
OUTPUTS = ["chunks.jsonl", "index.faiss", "index.json", "products.json", "bm25"]


def _docs(tiny_docs: list[dict], form_docs: list[dict]) -> list[dict]:
    extra = [
        {
            "id": f"locker-{n}",
            "source": f"lockers/{n}.md",
            "meta": {"title": f"Locker {n}"},
            "text": f"# Locker {n}\n\nLocker {n} at branch {n % 4} costs {n % 9 + 2} USD per month. "
            f"Customers under 25 pay {n % 5 + 1} USD; the fee is waived for premium accounts.",
        }
        for n in range(40)
    ]
    return tiny_docs + form_docs + extra


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def embedder(tiny_embedder) -> Embedder:
    return Embedder(tiny_embedder.path, batch_size=2)


def assert_same_files(a, b) -> None:
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in OUTPUTS:
        for file in sorted((a / name).rglob("*")) if (a / name).is_dir() else [a / name]:
            assert file.read_bytes() == (b / file.relative_to(a)).read_bytes(), file.relative_to(a)


class FailingAfterOneShard(Embedder):
    """Embeds the first shard (two calls: pieces of 32 and 4 texts), then fails: a build that died
    with one shard committed."""

    calls = 0

    def encode(self, texts, show_progress=False):
        FailingAfterOneShard.calls += 1
        if FailingAfterOneShard.calls > 2:
            raise RuntimeError("killed")
        return super().encode(texts, show_progress)


def test_ray_embedding_gives_the_local_files(local_ray, tmp_path, tiny_docs, form_docs, embedder):
    docs = _docs(tiny_docs, form_docs)
    local = build_index(docs, tmp_path / "local", embedder, **SETTINGS)
    on_ray = build_index(docs, tmp_path / "ray", embedder, executor="ray", **SETTINGS)
    assert local.n_chunks > 2 * SETTINGS["shard_chunks"]  # three shards at least, in one Ray job
    assert on_ray.n_chunks == on_ray.embedded_chunks == local.n_chunks
    assert on_ray.truncated_chunks == local.truncated_chunks
    assert_same_files(tmp_path / "local", tmp_path / "ray")

    # One shard committed by a local build that died, the rest embedded on Ray: the same files.
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="killed"):
        build_index(docs, out, FailingAfterOneShard(embedder.path, batch_size=2), **SETTINGS)
    assert [p.name for p in sorted((out / BUILD_FOLDER).glob("vectors-*.json"))] == ["vectors-00000.json"]
    resumed = build_index(docs, out, embedder, executor="ray", **SETTINGS)
    assert resumed.embedded_chunks == resumed.n_chunks - SETTINGS["shard_chunks"]
    assert_same_files(tmp_path / "local", out)
    assert not (out / BUILD_FOLDER).exists()


def test_an_unknown_executor_is_refused_by_its_field(tmp_path, tiny_docs, embedder):
    with pytest.raises(ValueError, match="index.executor"):
        build_index(tiny_docs, tmp_path, embedder, executor="dask", **SETTINGS)


def test_where_the_index_embeds_is_not_part_of_its_fingerprint():
    from cogcore.recipe import load_recipe
    from cogcore.stages import index_inputs

    local = load_recipe("recipes/demo.yaml", check_paths=False)
    on_ray = load_recipe("recipes/demo.yaml", ["index.executor=ray", "index.ray_address=ray://head:10001"], False)
    assert on_ray.index.executor == "ray" and index_inputs(on_ray) == index_inputs(local)
    changed = load_recipe("recipes/demo.yaml", ["index.batch_size=8"], False)
    assert index_inputs(changed) != index_inputs(local)
