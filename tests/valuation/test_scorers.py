"""The importance and classifier scorers rank planted target-like documents above junk, on tiny
corpora where the right answer is known."""

from __future__ import annotations

import random

import numpy as np

from cogcore.valuation.classifier import QualityClassifier
from cogcore.valuation.importance import ImportanceModel
from cogcore.valuation.ngrams import ngram_counts

BANKING = [
    "A wire transfer to another bank costs {n} USD and arrives within {d} business days.",
    "The overdraft fee is {n} USD per day, capped at {d} days per statement period.",
    "Savings accounts earn {n} percent a year, paid monthly, after {d} months of membership.",
    "To dispute a card payment, call the support line within {d} days of the statement date.",
    "Premium members get {n} free ATM withdrawals abroad and travel insurance for {d} days.",
]
GENERAL = [
    "The compiler reads the source file and emits an object file for the linker.",
    "Use the --verbose flag to print every step the build takes, with its timing.",
    "A thread pool keeps a fixed number of workers and queues the tasks it cannot start yet.",
    "The kernel schedules processes by priority and gives each a slice of processor time.",
    "Indexes speed up queries that filter on a column, at the cost of slower inserts.",
]


def _fill(templates: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(templates).format(n=rng.randint(1, 99), d=rng.randint(1, 30)) for _ in range(n)]


def _shuffled(texts: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for t in texts:
        words = t.split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return out


def test_hashed_counts_are_stable_and_count_unigrams_and_bigrams():
    a = ngram_counts(["the fee is the fee"], buckets=1000)
    assert a.sum() == 5 + 4  # five words, four bigrams
    assert (ngram_counts(["the fee is the fee"], buckets=1000) != a).nnz == 0  # same hash every time


def test_importance_ranks_target_like_documents_first():
    target = _fill(BANKING, 60, seed=1)
    raw = _fill(BANKING, 20, seed=2) + _fill(GENERAL, 60, seed=3)
    model = ImportanceModel.fit(target, raw)
    scores = model.score(raw, per_ngram=True)
    banking, general = scores[:20], scores[20:]
    assert banking.min() > general.max()


def test_classifier_separates_target_from_junk_and_shuffled_copies():
    target = _fill(BANKING, 80, seed=4)
    junk = _fill(GENERAL, 40, seed=5) + _shuffled(_fill(BANKING, 40, seed=6), seed=7)
    clf = QualityClassifier.fit(target, junk)
    held_target, held_junk = (
        _fill(BANKING, 20, seed=8),
        _fill(GENERAL, 10, seed=9) + _shuffled(_fill(BANKING, 10, seed=10), seed=11),
    )
    p_target, p_junk = clf.score(held_target), clf.score(held_junk)
    auroc = np.mean([t > j for t in p_target for j in p_junk])
    assert auroc > 0.9 and p_target.mean() > 0.5 > p_junk.mean()
