"""Semantic dedup on planted vectors: near-identical ones are dropped, merely similar ones kept."""

import numpy as np
import pytest

from cogcore.curate.semdedup import semantic_duplicate_decisions


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def near(v, cos, rng):
    """A unit vector at cosine `cos` from unit vector v."""
    r = rng.normal(size=v.shape)
    r = unit(r - (r @ v) * v)
    return cos * v + np.sqrt(1 - cos**2) * r


def test_planted_near_copies_are_dropped_for_the_earlier_document():
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(150, 64)))
    extra, expected = [], {}
    for i in range(0, 40, 2):  # copies at cos 0.99 of base[i]: duplicates
        extra.append(near(base[i], 0.99, rng))
        expected[f"d{150 + len(extra) - 1}"] = f"d{i}"
    for i in range(1, 40, 2):  # relatives at cos 0.85: not duplicates at 0.95
        extra.append(near(base[i], 0.85, rng))
    x = np.vstack([base, extra]).astype(np.float32)
    ids = [f"d{i}" for i in range(len(x))]
    decisions = semantic_duplicate_decisions(ids, x, threshold=0.95, n_clusters=6)
    assert decisions.dropped == expected
    groups = {c["kept"]: c["members"] for c in decisions.clusters}
    assert groups == {kept: [kept, dup] for dup, kept in expected.items()}


def test_the_first_in_input_order_is_kept_and_chains_join():
    rng = np.random.default_rng(1)
    v = unit(rng.normal(size=32))
    w = near(v, 0.97, rng)
    others = unit(rng.normal(size=(30, 32)))
    x = np.vstack([others[:10], w, others[10:20], v, others[20:]]).astype(np.float32)
    ids = [str(i) for i in range(len(x))]
    decisions = semantic_duplicate_decisions(ids, x, threshold=0.95, n_clusters=3)
    assert decisions.dropped == {"21": "10"}  # v came after w, so w (row 10) stays
    assert decisions.reason == "semantic_duplicate"


def test_exact_copies_collapse_to_one_and_unnormalized_input_is_refused():
    rng = np.random.default_rng(2)
    v = unit(rng.normal(size=16)).astype(np.float32)
    x = np.vstack([v, v, v, unit(rng.normal(size=(5, 16)))]).astype(np.float32)
    assert semantic_duplicate_decisions(list("abcdefgh"), x).dropped == {"b": "a", "c": "a"}
    with pytest.raises(ValueError, match="L2-normalized"):
        semantic_duplicate_decisions(list("abcdefgh"), x * 2)
