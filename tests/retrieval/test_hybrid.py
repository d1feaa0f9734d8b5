"""Hybrid search: BM25 finds the identifiers embeddings blur, and fusion keeps both retrievers' best."""

import pytest

from cogcore.retrieval import fusion_depth, reciprocal_rank_fusion


def test_identifier_only_bm25_can_find(form_index, form_codes):
    """Eight forms differ only in their code; the embedder never saw the codes."""
    queries = [f"which form is {code}" for code in form_codes]
    expected = [f"form-{i}" for i in range(len(form_codes))]
    found = {
        mode: [hits[0].doc_id for hits in form_index.search_many(queries, k=3, mode=mode)]
        for mode in ("dense", "lexical", "hybrid")
    }
    assert found["lexical"] == expected
    assert sum(a == b for a, b in zip(found["dense"], expected)) <= len(expected) // 2
    # Rank fusion alone would bury some (a chunk both lists rank 2nd-4th beats one ranked 1st by
    # BM25 only); the chunk holding the exact identifier is ranked first instead.
    assert found["hybrid"] == expected


def test_exact_identifier_first_only_when_the_query_has_one(form_index):
    hits = form_index.search("form close_card_7734 for the customer's records", k=5)
    assert hits[0].doc_id == "form-6" and hits[0].lexical_rank == 1
    plain = form_index.search("customer records at the branch", k=5)
    position = {c["chunk_id"]: i for i, c in enumerate(form_index.chunks)}
    fused = reciprocal_rank_fusion(
        [
            [position[h.chunk_id] for h in form_index.search("customer records at the branch", k=20, mode=mode)]
            for mode in ("dense", "lexical")
        ]
    )
    assert [position[h.chunk_id] for h in plain] == [i for i, _, _ in fused[:5]]


def test_hybrid_holds_both_lists_top_hits(form_index):
    for query in ["form VB-88310 for this request", "monthly fee waived for students"]:
        dense = form_index.search(query, k=1, mode="dense")[0]
        lexical = form_index.search(query, k=1, mode="lexical")[0]
        hybrid = form_index.search(query, k=5, mode="hybrid")
        ids = [h.chunk_id for h in hybrid]
        assert dense.chunk_id in ids and lexical.chunk_id in ids
        assert all(h.mode == "hybrid" for h in hybrid)
        assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_hybrid_is_the_fusion_of_the_two_lists(form_index):
    query, k = "the customer's records at the branch", 3
    n = fusion_depth(k)
    dense = form_index.search(query, k=n, mode="dense")
    lexical = form_index.search(query, k=n, mode="lexical")
    position = {c["chunk_id"]: i for i, c in enumerate(form_index.chunks)}
    fused = reciprocal_rank_fusion([[position[h.chunk_id] for h in dense], [position[h.chunk_id] for h in lexical]])[:k]
    hybrid = form_index.search(query, k=k)  # the index's default mode
    assert [form_index.chunks[i]["chunk_id"] for i, _, _ in fused] == [h.chunk_id for h in hybrid]
    assert [(h.dense_rank, h.lexical_rank) for h in hybrid] == [ranks for _, _, ranks in fused]
    assert hybrid[0].score == pytest.approx(fused[0][1])


def test_reciprocal_rank_fusion():
    fused = reciprocal_rank_fusion([[7, 3, 5], [3, 9]], k_rrf=60)
    assert [item for item, _, _ in fused] == [3, 7, 9, 5]
    assert fused[0] == (3, pytest.approx(1 / 62 + 1 / 61), (2, 1))
    assert fused[1][2] == (1, None) and fused[2][2] == (None, 2)
    # Equal scores: the better best rank, then the smaller id, wins.
    assert [i for i, _, _ in reciprocal_rank_fusion([[4, 1], [2, 8]])] == [2, 4, 1, 8]
    weighted = reciprocal_rank_fusion([[1], [2]], weights=[1.0, 2.0])
    assert [i for i, _, _ in weighted] == [2, 1]
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1]], weights=[1.0, 1.0])
