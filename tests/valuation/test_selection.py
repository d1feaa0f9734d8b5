"""Selection respects budgets and quotas and accounts for every document."""

from __future__ import annotations

import numpy as np
import pytest

from cogcore.valuation.selection import GROUP_QUOTA, NO_SCORE, OVER_BUDGET, Budget, select_documents


def _check_accounting(chosen, n):
    counts = chosen.counts()
    assert counts["in"] == n == counts["selected"] + sum(counts["not_selected"].values())
    assert counts["selected"] == int(chosen.selected.sum())


def test_a_fraction_budget_takes_the_best_scores():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.8])
    chosen = select_documents(scores, np.ones(6), ["a"] * 6, Budget(fraction=0.5))
    assert set(np.flatnonzero(chosen.selected)) == {1, 5, 3}
    _check_accounting(chosen, 6)
    assert chosen.counts()["not_selected"] == {OVER_BUDGET: 3}


def test_a_token_budget_is_never_exceeded_and_smaller_documents_fill_the_rest():
    scores = np.array([5.0, 4.0, 3.0, 2.0])
    tokens = np.array([60, 50, 30, 10])
    chosen = select_documents(scores, tokens, ["a"] * 4, Budget(tokens=100))
    assert tokens[chosen.selected].sum() <= 100
    assert list(np.flatnonzero(chosen.selected)) == [0, 2, 3]  # 50 did not fit after 60; 30 and 10 did
    _check_accounting(chosen, 4)


def test_quotas_cap_a_group_and_say_so():
    scores = np.array([9.0, 8.0, 7.0, 6.0, 1.0, 0.5])
    groups = ["web", "web", "web", "web", "bank", "bank"]
    chosen = select_documents(scores, np.ones(6), groups, Budget(fraction=0.5), quotas={"web": 1 / 3})
    assert [groups[i] for i in np.flatnonzero(chosen.selected)].count("web") == 1
    assert chosen.counts()["not_selected"][GROUP_QUOTA] >= 1
    _check_accounting(chosen, 6)


def test_gumbel_sampling_is_seeded_and_favours_high_scores():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=2000)
    a = select_documents(scores, np.ones(2000), ["a"] * 2000, Budget(fraction=0.1), method="gumbel", seed=3)
    b = select_documents(scores, np.ones(2000), ["a"] * 2000, Budget(fraction=0.1), method="gumbel", seed=3)
    c = select_documents(scores, np.ones(2000), ["a"] * 2000, Budget(fraction=0.1), method="gumbel", seed=4)
    assert (a.selected == b.selected).all() and (a.selected != c.selected).any()
    assert scores[a.selected].mean() > scores.mean() + 0.5
    assert scores[a.selected].min() < np.sort(scores)[-200]  # not a plain top-k: diversity kept


def test_documents_without_a_score_are_counted_not_lost():
    chosen = select_documents(np.array([1.0, np.nan, 2.0]), np.ones(3), ["a"] * 3, Budget(fraction=1.0))
    assert chosen.counts() == {"in": 3, "selected": 2, "not_selected": {NO_SCORE: 1}}


@pytest.mark.parametrize("kwargs", [{}, {"fraction": 0.5, "tokens": 10}, {"fraction": 0.0}, {"tokens": 0}])
def test_a_budget_is_one_positive_amount(kwargs):
    with pytest.raises(ValueError):
        Budget(**kwargs)
