"""Rebalancing caps any cluster's share, reproducibly, and can upsample thin clusters."""

import numpy as np

from cogcore.curate.rebalance import RebalanceStep, kmeans_labels, rebalance


def _planted(n_big=80, n_small=10, n_thin=2, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, dim)) * 5
    groups = [n_big, n_small, n_thin]
    vecs = np.concatenate([centers[g] + rng.normal(scale=0.1, size=(n, dim)) for g, n in enumerate(groups)])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(len(vecs))]
    return ids, vecs.astype(np.float32), np.repeat([0, 1, 2], groups)


def test_kmeans_finds_planted_clusters():
    ids, vecs, truth = _planted()
    labels = kmeans_labels(vecs, 3, seed=0)
    for g in range(3):  # each planted group lands in exactly one cluster
        assert len(set(labels[truth == g].tolist())) == 1
    assert len(set(labels.tolist())) == 3


def test_cap_drops_only_from_the_crowded_cluster_and_is_reproducible():
    ids, vecs, truth = _planted()
    decisions, upsample, report = rebalance(ids, truth, max_share=0.5, seed=0)
    n = len(ids)
    assert report.cap == n // 2 and len(decisions.dropped) == 80 - n // 2
    assert all(truth[ids.index(d)] == 0 for d in decisions.dropped)
    assert report.before == {"0": 80, "1": 10, "2": 2} and report.after["0"] == n // 2
    again, _, _ = rebalance(list(reversed(ids)), truth[::-1].copy(), max_share=0.5, seed=0)
    assert set(again.dropped) == set(decisions.dropped)  # the choice does not depend on input order
    other, _, _ = rebalance(ids, truth, max_share=0.5, seed=1)
    assert set(other.dropped) != set(decisions.dropped)


def test_thin_clusters_are_upsampled_and_the_step_applies_it():
    ids, vecs, truth = _planted()
    decisions, upsample, _ = rebalance(ids, truth, max_share=0.5, upsample_below=0.1, max_upsample=4)
    thin = [d for d, g in zip(ids, truth) if g == 2]
    assert set(upsample) == set(thin) and set(upsample.values()) == {3}  # 0.1 / (2/58), rounded
    docs = [{"id": i, "text": "x", "source": "s", "meta": {}} for i in ids]
    kept, dropped = RebalanceStep(decisions, upsample).run(docs)
    assert len(kept) + len(dropped) == len(docs) and all(r == "rebalance_cap" for _, r in dropped)
    assert {d["id"] for d in kept if d["meta"].get("upsample") == 3} == set(thin)
