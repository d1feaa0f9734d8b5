"""Index build and load round trip: files, provenance, exact-text retrieval, failed builds."""

import json

import pytest

from cogcore.retrieval import Hit, SearchIndex, Searcher, build_index, read_chunks


def test_build_writes_files_and_stats(tmp_path, tiny_docs, tiny_embedder):
    stats = build_index(tiny_docs, tmp_path / "idx", tiny_embedder, chunk_chars=120, overlap=30)
    assert stats["n_docs"] == 5 and stats["n_chunks"] > 10
    assert stats["dim"] == 64 and stats["index_type"] == "flat"
    assert stats["seconds"] >= stats["embed_seconds"] > 0
    info = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert info["embedder"] == tiny_embedder.path and info["embedder_name"] == "tiny-st"
    assert (info["n_chunks"], info["n_docs"], info["dim"]) == (stats["n_chunks"], 5, 64)
    assert (info["chunk_chars"], info["overlap"], info["index_type"]) == (120, 30, "flat")
    assert info["truncated_chunks"] == stats["truncated_chunks"] == 0
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "chunks.jsonl", "index.faiss", "index.json"]


def test_load_round_trip_with_provenance(tiny_index_dir, tiny_docs):
    index = SearchIndex.load(tiny_index_dir)  # embedder found through index.json
    assert isinstance(index, Searcher)
    texts = {doc["id"]: doc["text"] for doc in tiny_docs}
    chunks = read_chunks(tiny_index_dir / "chunks.jsonl")
    assert len(index) == len(chunks)
    for chunk in chunks:
        assert texts[chunk["doc_id"]][chunk["start"]:chunk["end"]] == chunk["text"]
    hit = index.search("A new card arrives within 5 working days.", k=3)[0]
    assert isinstance(hit, Hit)
    assert texts[hit.doc_id][hit.start:hit.end] == hit.text
    assert (hit.source, hit.title) == ("handbook/cards.md", "Lost cards")


def test_exact_chunk_text_is_rank_one(tiny_index_dir, tiny_embedder):
    index = SearchIndex.load(tiny_index_dir, tiny_embedder)
    chunks = index.chunks
    results = index.search_many([c["text"] for c in chunks], k=3)
    assert [hits[0].chunk_id for hits in results] == [c["chunk_id"] for c in chunks]
    assert all(hits[0].score == pytest.approx(1.0, abs=1e-4) for hits in results)
    assert all(len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score
               for hits in results)
    assert index.search_many([], k=3) == []
    assert len(index.search("fee", k=1000)) == len(chunks)


def test_hnsw_index(tmp_path, tiny_docs, tiny_embedder):
    stats = build_index(tiny_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30,
                        index_type="hnsw")
    index = SearchIndex.load(tmp_path, tiny_embedder)
    assert stats["index_type"] == index.info["index_type"] == "hnsw"
    assert index.index.hnsw.efSearch == 64
    chunk = index.chunks[4]
    assert index.search(chunk["text"], k=2)[0].chunk_id == chunk["chunk_id"]


def test_killed_build_leaves_no_valid_index(tmp_path, tiny_docs, tiny_embedder):
    build_index(tiny_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30)

    def docs_then_crash():
        yield from tiny_docs[:2]
        raise RuntimeError("killed while reading documents")

    with pytest.raises(RuntimeError):
        build_index(docs_then_crash(), tmp_path, tiny_embedder, chunk_chars=120, overlap=30)
    with pytest.raises(FileNotFoundError, match="did not finish"):
        SearchIndex.load(tmp_path, tiny_embedder)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_rejects_duplicate_ids_and_empty_corpus(tmp_path, tiny_docs, tiny_embedder):
    with pytest.raises(ValueError, match="duplicate"):
        build_index([tiny_docs[0], tiny_docs[0]], tmp_path, tiny_embedder)
    with pytest.raises(ValueError, match="no text"):
        build_index([{"id": "e", "text": " ", "source": "e"}], tmp_path, tiny_embedder)
