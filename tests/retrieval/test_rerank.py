"""Reranking: any Reranker reorders the first stage's candidates; a local cross-encoder is one."""

import json

import pytest

from cogcore.retrieval import CrossEncoderReranker, Reranker, SearchIndex, build_index
from cogcore.retrieval.chunking import searchable_text


class WordOverlapReranker:
    """A real (if simple) reranker: the share of the query's words found in the passage."""

    name = "word-overlap"

    def __init__(self):
        self.calls = []

    def score(self, query, texts):
        self.calls.append(len(texts))
        words = set(query.lower().split())
        return [len(words & set(t.lower().split())) / len(words) for t in texts]


def test_reranker_reorders_first_stage_candidates(tiny_index_dir, tiny_embedder):
    reranker = WordOverlapReranker()
    assert isinstance(reranker, Reranker)
    index = SearchIndex.load(tiny_index_dir, tiny_embedder, reranker=reranker)
    query = "declined at the till"
    hits = index.search(query, k=3)
    assert reranker.calls == [min(20, len(index))]  # rerank_top candidates, k of them kept
    assert [h.mode for h in hits] == ["rerank"] * 3
    assert hits[0].doc_id == "overdraft" and "declined at the till" in hits[0].text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Scores are the reranker's (on the chunk under its header, as indexed); ranks still say
    # where the first stage had each chunk.
    assert hits[0].score == pytest.approx(reranker.score(query, [searchable_text(hits[0].to_dict())])[0])
    assert all(h.dense_rank or h.lexical_rank for h in hits)
    assert len(index.search_many([query, "wire cut-off"], k=12)[1]) == 12


def test_cross_encoder_from_a_local_folder(tmp_path, tiny_docs, tiny_embedder, tiny_cross_encoder):
    build_index(
        tiny_docs, tmp_path, tiny_embedder, chunk_chars=120, overlap=30, reranker=tiny_cross_encoder, rerank_top=6
    )
    info = json.loads((tmp_path / "index.json").read_text())
    assert info["search"]["reranker"] == str(tiny_cross_encoder.resolve())
    index = SearchIndex.load(tmp_path, tiny_embedder)  # the reranker named in index.json
    assert isinstance(index.reranker, CrossEncoderReranker) and index.rerank_top == 6
    query = "how long until a new card arrives"
    hits = index.search(query, k=4)
    first_stage = SearchIndex.load(tmp_path, tiny_embedder, reranker=WordOverlapReranker())
    candidates = [searchable_text(h.to_dict()) for h in first_stage.search_many([query], k=6)[0]]
    assert len(hits) == 4 and {searchable_text(h.to_dict()) for h in hits} <= set(candidates)
    expected = sorted(index.reranker.score(query, candidates), reverse=True)[:4]
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-6)


def test_reranker_must_be_a_local_folder(tmp_path, tiny_docs, tiny_embedder):
    with pytest.raises(FileNotFoundError, match="local folder"):
        CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L6-v2")
    with pytest.raises(FileNotFoundError, match="local folder"):
        build_index(tiny_docs, tmp_path, tiny_embedder, reranker=tmp_path / "missing")
