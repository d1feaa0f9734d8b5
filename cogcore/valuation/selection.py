"""Spending a training budget on the best-valued documents, with every document accounted for.

A budget is a share of the documents or a number of tokens. Documents are taken in order of their
score (`top_k`), or of their score plus Gumbel noise (`gumbel`: a sample without replacement with
probabilities proportional to exp(score / temperature), as DSIR resamples by importance weight, which
keeps some diversity where a deterministic top-k would take only the most extreme documents). A
group may be capped at a share of the budget (`quotas`: {group: max share}), so that one source
cannot take it all. Every document not selected is counted under its reason, so that
`in == selected + sum(not_selected[reason])` holds as curation's accounting does.

    chosen = select_documents(scores, tokens, groups, Budget(fraction=0.5), method="gumbel", seed=0)
    chosen.selected, chosen.reasons, chosen.counts()
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

SELECTED = "selected"
OVER_BUDGET = "over_budget"  # ranked below what the budget could take
GROUP_QUOTA = "group_quota"  # its group had used its share of the budget
NO_SCORE = "no_score"  # the scorer could not value it (e.g. empty after tokenization)
METHODS = ("top_k", "gumbel")


@dataclass(frozen=True)
class Budget:
    """Exactly one of: a share of the documents, or a number of tokens."""

    fraction: float | None = None
    tokens: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.tokens is None):
            raise ValueError("a budget is a fraction of the documents or a number of tokens: set exactly one")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"budget fraction must be in (0, 1], got {self.fraction}")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError(f"budget tokens must be at least 1, got {self.tokens}")


@dataclass(frozen=True)
class Selection:
    selected: np.ndarray  # bool per document
    reasons: list[str]  # per document: SELECTED or why not
    order: np.ndarray  # the ranking used (document indices, best first)

    def counts(self) -> dict:
        """{"in", "selected", "not_selected": {reason: n}}: in == selected + sum(not_selected)."""
        by_reason = Counter(self.reasons)
        selected = by_reason.pop(SELECTED, 0)
        return {"in": len(self.reasons), "selected": selected, "not_selected": dict(sorted(by_reason.items()))}


def ranking(scores: np.ndarray, method: str = "top_k", temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Document indices, best first; NaN scores last."""
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; allowed: {', '.join(METHODS)}")
    keys = np.asarray(scores, dtype=np.float64).copy()
    if method == "gumbel":
        keys = keys / temperature + np.random.default_rng(seed).gumbel(size=len(keys))
    keys[np.isnan(keys)] = -np.inf
    return np.argsort(-keys, kind="stable")


def select_documents(
    scores: np.ndarray,
    tokens: np.ndarray,
    groups: list[str],
    budget: Budget,
    method: str = "top_k",
    temperature: float = 1.0,
    quotas: dict[str, float] | None = None,
    seed: int = 0,
) -> Selection:
    """Take documents in ranking order while the budget lasts (a document that does not fit the
    remaining tokens is passed over, and a smaller one after it may still fit)."""
    n = len(scores)
    tokens = np.asarray(tokens, dtype=np.int64)
    order = ranking(scores, method, temperature, seed)
    total = budget.tokens if budget.tokens is not None else None
    limit_docs = None if budget.fraction is None else int(round(budget.fraction * n))
    group_room = _group_room(quotas or {}, total if total is not None else limit_docs)
    selected, reasons = np.zeros(n, dtype=bool), [OVER_BUDGET] * n
    used_tokens, used_docs = 0, 0
    for i in order:
        if np.isnan(scores[i]):
            reasons[i] = NO_SCORE
            continue
        size = int(tokens[i]) if total is not None else 1
        if (total is not None and used_tokens + size > total) or (limit_docs is not None and used_docs >= limit_docs):
            continue
        room = group_room.get(groups[i])
        if room is not None and room < size:
            reasons[i] = GROUP_QUOTA
            continue
        if room is not None:
            group_room[groups[i]] = room - size
        selected[i], reasons[i] = True, SELECTED
        used_tokens += size
        used_docs += 1
    return Selection(selected, reasons, order)


def _group_room(quotas: dict[str, float], whole: int) -> dict[str, float]:
    """What each capped group may take: its share of the budget (tokens, or documents)."""
    for group, share in quotas.items():
        if not 0 <= share <= 1:
            raise ValueError(f"quota for group {group!r} must be a share in [0, 1], got {share}")
    return {group: share * whole for group, share in quotas.items()}
