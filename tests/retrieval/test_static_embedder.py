"""Static (model2vec) embedders: distilled offline from a tiny sentence-transformer, cached by
fingerprint, recorded in index.json and loaded from it by a search, chosen in the recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cogcore.recipe import RecipeError, load_recipe
from cogcore.retrieval import SearchIndex, build_index
from cogcore.retrieval import static_embedder as static
from cogcore.retrieval.embedders import load_embedder, saved_embedder
from cogcore.retrieval.index_files import IndexInfo
from cogcore.retrieval.static_embedder import StaticEmbedder, distilled_folder
from tests.retrieval.test_index_settings import build_through_stage, write_recipe


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COGCORE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "static-embedders"


@pytest.fixture(scope="module")
def source(make_tiny_embedder, tiny_docs):
    return make_tiny_embedder(doc["text"] for doc in tiny_docs)


def test_distilled_offline_gives_unit_float32_rows(cache, source):
    embedder = StaticEmbedder.distilled(source, dims=32)
    vectors = embedder.encode(["The monthly fee is waived for students.", "Call 555-0100 to block a card."])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 32) and vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.encode([]).shape == (0, 32)
    assert (embedder.kind, embedder.source, embedder.max_seq_length) == ("static", str(source.resolve()), 0)
    assert embedder.count_truncated(["word " * 5000]) == 0  # a static table reads every token
    assert embedder.path.startswith(str(cache)) and embedder.fingerprint in embedder.path


def test_a_second_load_reuses_the_cached_table(cache, source, monkeypatch):
    first = distilled_folder(source, dims=32)
    monkeypatch.setattr(static, "_distill", lambda *a: pytest.fail("distilled again"))
    assert distilled_folder(source, dims=32) == first
    assert load_embedder(source, "static", static_dims=32).path == str(first)


def test_other_settings_or_weights_get_another_fingerprint(tmp_path, source):
    assert static.fingerprint(source, 32) == static.fingerprint(source, 32)
    assert static.fingerprint(source, 32) != static.fingerprint(source, 16)
    assert static.fingerprint(source, 32) != static.fingerprint(source, None)
    assert static.fingerprint(source, 32) != static.fingerprint(source, 32, vocabulary=["overdraft"])
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in source.rglob("*"):
        if path.is_file():
            target = changed / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert static.fingerprint(changed, 32) == static.fingerprint(source, 32)
    (changed / "config.json").write_text((changed / "config.json").read_text() + " ")
    assert static.fingerprint(changed, 32) != static.fingerprint(source, 32)


def test_dims_past_the_model_width_are_refused(cache, source):
    with pytest.raises(ValueError, match="between 1 and .* width 64, got 65"):
        distilled_folder(source, dims=65)


def test_an_index_built_with_it_is_searched_with_the_same_table(cache, source, tiny_docs, tmp_path):
    embedder = StaticEmbedder.distilled(source, dims=32)
    build_index(tiny_docs, tmp_path / "index", embedder, chunk_chars=120, overlap=30)
    info = IndexInfo.read(tmp_path / "index" / "index.json")
    assert (info.embedder_kind, info.embedder, info.dim) == ("static", embedder.path, 32)
    assert (info.embedder_source, info.embedder_fingerprint) == (str(source.resolve()), embedder.fingerprint)
    index = SearchIndex.load(tmp_path / "index")  # the embedder comes from index.json
    assert isinstance(index.embedder, StaticEmbedder) and index.embedder.path == embedder.path
    chunk = index.chunks[3]
    assert index.search(chunk["text"], k=1, mode="dense")[0].chunk_id == chunk["chunk_id"]
    assert index.search("Call 555-0100 at any hour to block a card", k=1)[0].doc_id == "cards"


def test_index_json_without_the_kind_loads_as_a_transformer(tiny_index_dir):
    data = json.loads((tiny_index_dir / "index.json").read_text())
    assert data["embedder_kind"] == "transformer"
    for field in ("embedder_kind", "embedder_source", "embedder_fingerprint"):
        del data[field]
    info = IndexInfo.from_json(data, where="old index.json")
    assert (info.embedder_kind, info.embedder_source, info.embedder_fingerprint) == ("transformer", None, None)
    assert saved_embedder(info.embedder, info.embedder_kind).kind == "transformer"


def test_the_recipe_chooses_a_static_embedder(cache, tmp_path, source, tiny_docs):
    stage, out = build_through_stage(
        tmp_path, str(source), tiny_docs, embedder_kind="static", static_dims=16, chunk_chars=120, chunk_overlap=30
    )
    assert (stage.config["index"]["embedder_kind"], stage.config["index"]["static_dims"]) == ("static", 16)
    index = SearchIndex.load(out)
    assert (index.info.embedder_kind, index.embedder.dim) == ("static", 16)
    assert index.search("new card arrives", k=3)


@pytest.mark.parametrize(
    "index, expected",
    [
        ({"embedder_kind": "onnx"}, "index.embedder_kind: 'onnx' is not allowed"),
        ({"embedder_kind": "static", "static_dims": 4}, "index.static_dims: "),
    ],
)
def test_bad_static_settings_name_the_field(tmp_path, index, expected):
    (tmp_path / "embedder").mkdir()
    with pytest.raises(RecipeError) as e:
        load_recipe(write_recipe(tmp_path, "embedder", **index))
    assert any(expected in p for p in e.value.problems), e.value.problems
