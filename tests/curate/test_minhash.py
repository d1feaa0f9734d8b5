"""MinHash near-dedup: planted pairs at known Jaccard similarities, clusters, batch independence."""

import numpy as np
import pytest

from cogcore.curate.clusters import components
from cogcore.curate.dedup import DecisionStep
from cogcore.curate.minhash import MinHashConfig, band_keys, find_clusters, near_duplicate_decisions, signatures

K = 5


def shingle_set(text: str, k: int = K) -> set:
    words = text.lower().split()
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)} if len(words) >= k else {tuple(words)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb)


class Words:
    """Fresh distinct words, so that two texts share exactly the shingles we put in both."""

    def __init__(self):
        self.n = 0

    def take(self, n: int) -> list[str]:
        self.n += n
        return [f"w{i}" for i in range(self.n - n, self.n)]


def planted_pairs(similar_words: list[int], n: int = 200, seed: int = 0) -> list[tuple[str, str, float]]:
    """Pairs (a, b, exact Jaccard): b keeps the first `m` words of a and replaces the rest."""
    words = Words()
    rng = np.random.default_rng(seed)
    pairs = []
    for m in similar_words:
        a = words.take(n)
        rng.shuffle(a)
        b = a[:m] + words.take(n - m)
        pairs.append((" ".join(a), " ".join(b), jaccard(" ".join(a), " ".join(b))))
    return pairs


def found(pairs, cfg) -> list[bool]:
    texts = [t for a, b, _ in pairs for t in (a, b)]
    ids = [str(i) for i in range(len(texts))]
    dropped = near_duplicate_decisions(ids, signatures(texts, cfg), cfg).dropped
    return [dropped.get(str(2 * i + 1)) == str(2 * i) for i in range(len(pairs))]


def test_config_checks_banding_and_gives_the_s_curve():
    with pytest.raises(ValueError, match="bands \\* minhash.rows"):
        MinHashConfig(num_perm=100, bands=14, rows=8)
    cfg = MinHashConfig()
    assert cfg.jaccard_threshold == pytest.approx((1 / 14) ** (1 / 8))
    assert cfg.candidate_probability(0.9) > 0.999 and cfg.candidate_probability(0.5) < 0.06
    assert MinHashConfig(threshold=0.8).jaccard_threshold == 0.8


def test_pairs_above_the_threshold_are_found_and_pairs_far_below_are_not():
    high = planted_pairs([196] * 15 + [190] * 15)  # Jaccard 0.96 and 0.90
    low = planted_pairs([133] * 15 + [100] * 15, seed=1)  # Jaccard 0.49 and 0.32
    assert min(j for *_, j in high) >= 0.9 and max(j for *_, j in low) <= 0.5
    # Without verification: an S-curve centred near 0.8 (10 bands x 10 rows).
    cfg = MinHashConfig(num_perm=100, bands=10, rows=10)
    assert all(found(high, cfg)) and not any(found(low, cfg))
    # With verification at 0.8, on the default banding (whose S-curve is centred lower, ~0.72).
    cfg = MinHashConfig(verify=True, threshold=0.8)
    assert all(found(high, cfg)) and not any(found(low, cfg))


def test_verification_cuts_candidates_below_the_threshold():
    middle = planted_pairs([150] * 40, seed=2)  # Jaccard ~0.62: sometimes a candidate at 14 x 8
    loose = sum(found(middle, MinHashConfig()))
    strict = sum(found(middle, MinHashConfig(verify=True, threshold=0.8)))
    assert loose > 0 and strict == 0


def test_signature_agreement_estimates_the_jaccard_similarity():
    pairs = planted_pairs(list(range(60, 200, 7)), seed=3)
    cfg = MinHashConfig()
    sigs = signatures([t for a, b, _ in pairs for t in (a, b)], cfg)
    est = (sigs[0::2] == sigs[1::2]).mean(axis=1)
    err = est - np.array([j for *_, j in pairs])
    assert np.abs(err).max() < 0.15 and abs(err.mean()) < 0.03


def test_signatures_do_not_depend_on_the_batch():
    words = Words()
    texts = [" ".join(words.take(n)) for n in (0, 1, 3, 4, 5, 6, 40)]
    texts += ["Crème brûlée — déjà vu; naïve café", "", "one two three", "x" * 300]
    cfg = MinHashConfig()
    together = signatures(texts, cfg)
    alone = np.vstack([signatures([t], cfg) for t in texts])
    reversed_ = signatures(texts[::-1], cfg)[::-1]
    assert together.dtype == np.uint32 and together.shape == (len(texts), 112)
    assert np.array_equal(together, alone) and np.array_equal(together, reversed_)


def test_case_punctuation_and_spacing_do_not_matter_but_words_do():
    cfg = MinHashConfig()
    s = signatures(
        [
            "Hello, World! It's  a_test.",
            "hello world it s a test",
            "Café—bar “quoted”",
            "café bar quoted",
            "hello world it s a tent",
        ],
        cfg,
    )
    assert np.array_equal(s[0], s[1]) and np.array_equal(s[2], s[3])
    assert not np.array_equal(s[1], s[4])
    short = signatures(["alpha beta", "beta alpha"], cfg)  # one shingle each, order-sensitive
    assert not np.array_equal(short[0], short[1])


def test_clusters_keep_the_first_document_and_list_their_members():
    words = Words()
    base_a, base_b = words.take(300), words.take(300)
    a1 = " ".join(base_a)
    a2 = " ".join(base_a[:295] + words.take(5))  # near a1
    a3 = " ".join(base_a[:290] + words.take(10))  # near a1 and a2
    b1, b2 = " ".join(base_b), " ".join(base_b[3:] + words.take(3))
    other = " ".join(words.take(300))
    ids = ["a2", "b1", "other", "a1", "b2", "a3"]
    texts = [a2, b1, other, a1, b2, a3]
    cfg = MinHashConfig()
    decisions = near_duplicate_decisions(ids, signatures(texts, cfg), cfg)  # as the pipeline decides them
    assert decisions.dropped == {"a1": "a2", "a3": "a2", "b2": "b1"}
    assert {c["kept"]: c["members"] for c in decisions.clusters} == {"a2": ["a2", "a1", "a3"], "b1": ["b1", "b2"]}
    docs = [{"id": i, "text": t, "source": "s", "meta": {}} for i, t in zip(ids, texts)]
    kept, gone = DecisionStep("near_dedup", decisions).run(docs)  # and applies them
    assert [d["id"] for d in kept] == ["a2", "b1", "other"]
    assert [(d["id"], r, d["meta"]["duplicate_of"]) for d, r in gone] == [
        ("a1", "near_duplicate", "a2"),
        ("b2", "near_duplicate", "b1"),
        ("a3", "near_duplicate", "a2"),
    ]


def test_find_clusters_labels_rows_with_the_first_rows_doc_index():
    keys = np.array([[1, 10], [2, 20], [3, 10], [4, 40], [3, 50]], dtype=np.uint64)
    labels = find_clusters(np.array([100, 101, 102, 103, 104]), keys)
    assert labels.tolist() == [100, 101, 100, 103, 100]  # row 2 joins 0 (band 1) and 4 (band 0)
    cfg = MinHashConfig()
    sigs = signatures(["a b c d e f", "a b c d e f", "z y x w v"], cfg)
    k = band_keys(sigs, cfg)
    assert k.shape == (3, 14) and k.dtype == np.uint64
    assert np.array_equal(k[0], k[1]) and not np.any(k[0] == k[2])


def test_components_are_labelled_by_their_smallest_node():
    u = np.array([5, 3, 8, 9, 1])
    v = np.array([3, 7, 9, 2, 1])
    assert components(10, u, v).tolist() == [0, 1, 2, 3, 4, 3, 6, 3, 2, 2]
    chain = np.arange(999)
    assert (components(1000, chain[::-1], chain[::-1] + 1) == 0).all()
