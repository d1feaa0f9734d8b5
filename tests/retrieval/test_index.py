"""Index build and load round trip: files, provenance in every mode, exact-text retrieval, index
choice by size, atomic and failed builds."""

import json

import faiss
import pytest

from cogcore.retrieval import Hit, IndexInfo, IndexStats, Searcher, SearchIndex, build_index, read_chunks
from cogcore.retrieval.chunking import searchable_text
from cogcore.stage_files import RunFileError


def test_build_writes_files_and_stats(tmp_path, tiny_docs, tiny_embedder):
    stats = build_index(tiny_docs, tmp_path / "idx", tiny_embedder, chunk_chars=120, overlap=30)
    assert stats.n_docs == 5 and stats.n_chunks > 10
    assert stats.dim == 64 and stats.index_type == "flat"
    assert stats.seconds >= stats.embed_seconds > 0
    assert stats.dense_seconds > 0 and stats.lexical_seconds > 0
    assert IndexStats.from_json(stats.to_json(), where="stats.json") == stats
    saved = json.loads((tmp_path / "idx" / "index.json").read_text())
    info = IndexInfo.read(tmp_path / "idx" / "index.json")
    assert info.to_json() == saved and list(saved)[:3] == ["embedder", "embedder_name", "dim"]  # in field order
    assert info.embedder == tiny_embedder.path and info.embedder_name == "tiny-st"
    assert (info.n_chunks, info.n_docs, info.dim) == (stats.n_chunks, 5, 64)
    assert (info.chunk_chars, info.overlap, info.index_type, info.faiss_params) == (120, 30, "flat", {})
    assert info.chunk_header is True
    assert info.truncated_chunks == stats.truncated_chunks == 0
    assert info.lexical.folder == "bm25" and info.lexical.library == "bm25s"
    assert info.lexical.tokenizer == "cogcore-lex-1" and info.lexical.vocab_size > 50
    assert saved["search"] == {
        "mode": "hybrid",
        "rrf_k": 60,
        "fusion_weights": [1.0, 1.0],
        "rerank_top": 20,
        "reranker": None,
    }
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "bm25",
        "chunks.jsonl",
        "index.faiss",
        "index.json",
        "products.json",
    ]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_load_round_trip_with_provenance(tiny_index_dir, tiny_docs, mode):
    index = SearchIndex.load(tiny_index_dir)  # embedder found through index.json
    assert isinstance(index, Searcher) and index.mode == "hybrid"
    assert index.lexical is not None and len(index.lexical) == len(index)
    texts = {doc["id"]: doc["text"] for doc in tiny_docs}
    chunks = read_chunks(tiny_index_dir / "chunks.jsonl")
    assert len(index) == len(chunks)
    for chunk in chunks:
        assert texts[chunk["doc_id"]][chunk["start"] : chunk["end"]] == chunk["text"]
    hits = index.search("A new card arrives within 5 working days.", k=3, mode=mode)
    hit = hits[0]
    assert isinstance(hit, Hit) and hit.mode == mode and len(hits) == 3
    assert texts[hit.doc_id][hit.start : hit.end] == hit.text
    assert (hit.doc_id, hit.source, hit.title) == ("cards", "handbook/cards.md", "Lost cards")
    assert hit.section == "Lost or stolen cards" and "5 working days" in hit.text
    assert (hit.dense_rank is not None) == (mode != "lexical")
    assert (hit.lexical_rank is not None) == (mode != "dense")


def test_bm25_after_load_finds_numbers_and_sections(tiny_index_dir, tiny_docs):
    index = SearchIndex.load(tiny_index_dir, mode="lexical")
    assert index.mode == "lexical"
    texts = {doc["id"]: doc["text"] for doc in tiny_docs}
    for query, doc_id, section in [
        ("555-0100", "cards", "Lost or stolen cards"),
        ("19.9 percent", "overdraft", "Overdrafts"),
        ("2,500", "overdraft", "Limits"),
        ("1 Harbour Street", "branches", ""),
    ]:
        hit = index.search(query, k=1)[0]
        assert (hit.doc_id, hit.section, hit.lexical_rank) == (doc_id, section, 1)
        assert texts[doc_id][hit.start : hit.end] == hit.text and hit.score > 0
    # Nothing shares a term with the query: BM25 returns nothing rather than arbitrary chunks.
    assert index.search("zebra quantum", k=3) == []


def test_exact_chunk_text_is_rank_one(tiny_index_dir, tiny_embedder):
    index = SearchIndex.load(tiny_index_dir, tiny_embedder, mode="dense")
    chunks = index.chunks
    results = index.search_many([searchable_text(c) for c in chunks], k=3)
    assert [hits[0].chunk_id for hits in results] == [c["chunk_id"] for c in chunks]
    assert all(hits[0].score == pytest.approx(1.0, abs=1e-4) for hits in results)
    assert all(len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score for hits in results)
    assert index.search_many([], k=3) == []
    assert len(index.search("fee", k=1000)) == len(chunks)
    assert len(index.search("fee", k=1000, mode="hybrid")) == len(chunks)
    with pytest.raises(ValueError, match="mode"):
        index.search("fee", mode="sparse")


@pytest.mark.parametrize(
    "limits, expected",
    [
        ({}, "flat"),  # ~30 chunks: exact search
        ({"flat_max_chunks": 5}, "hnsw"),
        ({"flat_max_chunks": 5, "hnsw_max_chunks": 10}, "ivfpq"),
        ({"index_type": "hnsw"}, "hnsw"),  # asked for, whatever the size
    ],
)
def test_index_type_is_chosen_by_size(tmp_path, tiny_docs, form_docs, tiny_embedder, limits, expected):
    stats = build_index(tiny_docs + form_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30, **limits)
    index = SearchIndex.load(tmp_path, tiny_embedder, mode="dense")
    assert stats.index_type == index.info.index_type == expected
    if expected == "hnsw":
        assert index.index.hnsw.efSearch == 64 and index.info.faiss_params["M"] == 32
        assert json.loads((tmp_path / "index.json").read_text())["hnsw"]["M"] == 32  # saved under its type
    if expected == "ivfpq":
        ivf = faiss.extract_index_ivf(index.index)
        assert ivf.nprobe == index.info.faiss_params["nprobe"] == min(32, ivf.nlist)
    chunk = index.chunks[4]
    hits = index.search(searchable_text(chunk), k=3)
    if expected == "ivfpq":  # compressed vectors: near the top, not exactly first
        assert chunk["chunk_id"] in [h.chunk_id for h in hits]
    else:
        assert hits[0].chunk_id == chunk["chunk_id"]
    with pytest.raises(ValueError, match="index_type"):
        build_index(tiny_docs, tmp_path, tiny_embedder, index_type="annoy")


def test_rebuild_replaces_every_part_atomically(tmp_path, tiny_docs, form_docs, tiny_embedder):
    build_index(form_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30)
    assert SearchIndex.load(tmp_path, tiny_embedder).search("QK-20417", k=1)[0].doc_id == "form-0"
    build_index(tiny_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30)
    index = SearchIndex.load(tmp_path, tiny_embedder)
    assert {c["doc_id"] for c in index.chunks} == {d["id"] for d in tiny_docs}
    assert index.search("QK-20417", k=3, mode="lexical") == []  # the old BM25 matrix is gone
    assert index.search("555-0100", k=1, mode="lexical")[0].doc_id == "cards"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bm25",
        "chunks.jsonl",
        "index.faiss",
        "index.json",
        "products.json",
    ]


def test_killed_build_leaves_no_valid_index(tmp_path, tiny_docs, tiny_embedder):
    build_index(tiny_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30)

    def docs_then_crash():
        yield from tiny_docs[:2]
        raise RuntimeError("killed while reading documents")

    with pytest.raises(RuntimeError):
        build_index(docs_then_crash(), tmp_path, tiny_embedder, chunk_chars=120, overlap=30)
    with pytest.raises(FileNotFoundError, match="did not finish"):
        SearchIndex.load(tmp_path, tiny_embedder)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name or ".old" in p.name]


def test_an_index_from_before_bm25_is_refused_naming_what_to_rebuild(tmp_path, tiny_docs, tiny_embedder):
    """index.json without "lexical" and "search" (an index built before BM25): one error that names the
    file, what it lacks and the stage to re-run; no quiet dense-only search."""
    build_index(tiny_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30)
    info = json.loads((tmp_path / "index.json").read_text())
    del info["lexical"], info["search"]
    (tmp_path / "index.json").write_text(json.dumps(info))
    with pytest.raises(RunFileError) as e:
        SearchIndex.load(tmp_path, tiny_embedder)
    for part in (str(tmp_path / "index.json"), "missing fields lexical, search", "--force index"):
        assert part in str(e.value), part
    (tmp_path / "index.json").write_text(json.dumps({**info, "lexical": {}, "search": {}}))
    with pytest.raises(RunFileError, match="missing fields folder"):
        SearchIndex.load(tmp_path, tiny_embedder)


def test_rejects_duplicate_ids_and_empty_corpus(tmp_path, tiny_docs, tiny_embedder):
    with pytest.raises(ValueError, match="duplicate"):
        build_index([tiny_docs[0], tiny_docs[0]], tmp_path, tiny_embedder)
    with pytest.raises(ValueError, match="no text"):
        build_index([{"id": "e", "text": " ", "source": "e"}], tmp_path, tiny_embedder)
