"""Deduplication decisions, made once over the whole corpus, applied as an ordinary step.

Global steps are two-phase: workers compute small per-document signatures (passes.py), then the
decisions below group them; `DecisionStep` applies the result in a later pass with the same
accounting as any filter. The first document (in input order) of each group is kept as its
representative, and every group is recorded (`clusters.jsonl`), so a user can see what each kept
document stood for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Decisions:
    """Which documents a global step drops (id -> representative id) and the groups it found."""

    reason: str
    dropped: dict[str, str]
    clusters: list[dict]


def exact_decisions(ids: list[str], keys: np.ndarray) -> Decisions:
    """Documents with the same content hash form a group."""
    return groups_to_decisions(ids, keys, "exact_duplicate", "exact")


def groups_to_decisions(ids: list[str], labels: np.ndarray, reason: str, kind: str) -> Decisions:
    """From a cluster label per document (input order) to drops: the first of each label stays."""
    rep: dict[int, str] = {}
    members: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for doc_id, label in zip(ids, labels.tolist()):
        if label in rep:
            dropped[doc_id] = rep[label]
            members[rep[label]].append(doc_id)
        else:
            rep[label] = doc_id
            members[doc_id] = [doc_id]
    clusters = [{"kind": kind, "kept": k, "members": m} for k, m in members.items() if len(m) > 1]
    return Decisions(reason, dropped, clusters)


class DecisionStep:
    """Drop the documents a global decision named; record whom each duplicate duplicated."""

    def __init__(self, name: str, decisions: Decisions):
        self.name = name
        self.decisions = decisions

    def run(self, docs):
        kept, dropped = [], []
        for doc in docs:
            rep = self.decisions.dropped.get(doc["id"])
            if rep is None:
                kept.append(doc)
            else:
                doc["meta"]["duplicate_of"] = rep
                dropped.append((doc, self.decisions.reason))
        return kept, dropped
