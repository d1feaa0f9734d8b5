"""The recipe's `index:` settings reach the built index, and every later load searches with them."""

import json
from pathlib import Path

import faiss
import pytest
import yaml

from cogcore.recipe import IndexConfig, RecipeError, load_recipe
from cogcore.retrieval import K_RRF, IndexInfo, IndexStats, SearchIndex, SearchSettings, build_index
from cogcore.retrieval.rerank import CrossEncoderReranker
from cogcore.stages import build_stages


def write_recipe(folder: Path, embedder: str, **index) -> Path:
    (folder / "docs.jsonl").write_text('{"text": "hello"}\n')
    (folder / "model").mkdir(exist_ok=True)
    data = {
        "name": "tiny",
        "run_dir": str(folder / "runs"),
        "sources": [{"name": "docs", "path": "docs.jsonl"}],
        "base_model": {"path": "model"},
        "index": {"embedder": embedder, **index},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build_through_stage(folder: Path, embedder: str, docs: list[dict], **index):
    """Run the index stage as `cogcore run` does, over docs as curated; returns (stage, folder)."""
    path = write_recipe(folder, embedder, **index)
    recipe = load_recipe(path)
    run = recipe.run_path()
    (run / "curate").mkdir(parents=True)
    (run / "curate" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (stage,) = [s for s in build_stages(recipe.resolved(folder)) if s.name == "index"]
    out = run / stage.folder
    out.mkdir()
    stage.run(out)
    return stage, out


def test_defaults_keep_todays_behaviour():
    cfg = IndexConfig(embedder="e")
    assert (cfg.type, cfg.chunk_header, cfg.search_mode, cfg.reranker) == ("auto", True, "hybrid", None)
    assert (cfg.rrf_k, cfg.weights.dense, cfg.weights.bm25, cfg.rerank_top) == (K_RRF, 1.0, 1.0, 20)


def test_recipe_settings_reach_index_json_and_load(tmp_path, tiny_docs, form_docs, tiny_embedder):
    stage, out = build_through_stage(
        tmp_path,
        tiny_embedder.path,
        tiny_docs + form_docs,
        type="hnsw",
        chunk_header=False,
        search_mode="bm25",
        rrf_k=10,
        weights={"dense": 0.5, "bm25": 2.0},
        rerank_top=7,
        chunk_chars=200,
        chunk_overlap=40,
    )
    info = IndexInfo.read(out / "index.json")
    assert info.index_type == "hnsw" and info.chunk_header is False
    assert info.search == SearchSettings(
        mode="lexical", rrf_k=10, fusion_weights=[0.5, 2.0], rerank_top=7, reranker=None
    )
    assert isinstance(faiss.read_index(str(out / "index.faiss")), faiss.IndexHNSWFlat)
    assert IndexStats.read(out / "stats.json").index_type == "hnsw"
    # Every later stage loads the folder with no arguments: it searches as the recipe said.
    index = SearchIndex.load(out)
    assert (index.mode, index.rrf_k, index.fusion_weights, index.rerank_top) == ("lexical", 10, (0.5, 2.0), 7)
    hits = index.search("QK-20417", k=3)
    assert hits[0].doc_id == "form-0" and {h.mode for h in hits} == {"lexical"}
    assert stage.config["index"]["search_mode"] == "bm25" and "reranker" not in stage.config


def test_search_settings_are_in_the_fingerprint(tmp_path, tiny_embedder):
    configs = []
    for i, index in enumerate(
        [
            {},
            {"search_mode": "dense"},
            {"rrf_k": 30},
            {"type": "flat"},
            {"weights": {"bm25": 2}},
            {"chunk_header": False},
        ]
    ):
        folder = tmp_path / str(i)
        folder.mkdir()
        recipe = load_recipe(write_recipe(folder, tiny_embedder.path, **index))
        config = next(s for s in build_stages(recipe.resolved(folder)) if s.name == "index").config
        configs.append(json.dumps(config, sort_keys=True))
    assert len(set(configs)) == len(configs)


def test_bm25_mode_finds_identifiers_that_dense_cannot(tmp_path, tiny_docs, form_docs, form_codes, tiny_embedder):
    _, out = build_through_stage(
        tmp_path, tiny_embedder.path, tiny_docs + form_docs, search_mode="bm25", chunk_chars=200, chunk_overlap=40
    )
    bm25 = SearchIndex.load(out, tiny_embedder)
    found = [bm25.search(code, k=1)[0].doc_id for code in form_codes]
    assert found == [f"form-{i}" for i in range(len(form_codes))]
    dense = [bm25.search(code, k=1, mode="dense")[0].doc_id for code in form_codes]
    assert dense != found  # the random embedder never saw the codes: near-identical forms blur
    assert SearchIndex.load(out, tiny_embedder, mode="dense").mode == "dense"
    assert SearchIndex.load(out, tiny_embedder, mode="bm25").mode == "lexical"


@pytest.mark.parametrize("header", [True, False])
def test_chunk_header_decides_whether_titles_are_searchable(tmp_path, tiny_embedder, header):
    docs = [
        {
            "id": "a",
            "source": "a.md",
            "meta": {"title": "Zanzibar handbook"},
            "text": "The branch opens at nine on weekdays.",
        },
        {"id": "b", "source": "b.md", "meta": {"title": "Fees"}, "text": "The branch charges five dollars a month."},
    ]
    build_index(docs, tmp_path, tiny_embedder, header=header, mode="bm25")
    hits = SearchIndex.load(tmp_path, tiny_embedder).search("zanzibar", k=2)
    assert [h.doc_id for h in hits] == (["a"] if header else [])
    assert all(h.text == docs[0]["text"] for h in hits)  # the hit's text is the bare chunk


def test_reranker_from_the_recipe(tmp_path, tiny_docs, tiny_embedder, tiny_cross_encoder):
    stage, out = build_through_stage(
        tmp_path,
        tiny_embedder.path,
        tiny_docs,
        reranker=str(tiny_cross_encoder),
        rerank_top=4,
        chunk_chars=120,
        chunk_overlap=30,
    )
    assert stage.config["reranker"]["path"] == str(tiny_cross_encoder.resolve())
    index = SearchIndex.load(out)
    assert isinstance(index.reranker, CrossEncoderReranker) and index.rerank_top == 4
    hits = index.search("new card", k=3)
    assert len(hits) == 3 and {h.mode for h in hits} == {"rerank"}


@pytest.mark.parametrize(
    "index, expected",
    [
        ({"type": "hnsW"}, "index.type: 'hnsW' is not allowed"),
        ({"search_mode": "sparse"}, "index.search_mode: 'sparse' is not allowed"),
        ({"rrf_k": -1}, "index.rrf_k: "),
        ({"rerank_top": 0}, "index.rerank_top: "),
        ({"weights": {"dense": -1}}, "index.weights.dense: "),
        ({"weights": {"dense": 0, "bm25": 0}}, "weights.dense and weights.bm25 are both 0"),
        ({"weights": {"sparse": 1}}, "index.weights.sparse: unknown field"),
        ({"chunk_header": "maybe"}, "index.chunk_header: "),
        ({"reranker": "no/such/folder"}, "index.reranker: 'no/such/folder' does not exist"),
    ],
)
def test_bad_index_settings_name_the_field(tmp_path, index, expected):
    (tmp_path / "embedder").mkdir()
    with pytest.raises(RecipeError) as e:
        load_recipe(write_recipe(tmp_path, "embedder", **index))
    assert any(expected in p for p in e.value.problems), e.value.problems
