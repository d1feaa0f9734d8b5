"""The order continued pretraining reads its documents in: by value, or annealed.

`ascending` puts the most valuable documents last (the end of training, where the learning rate
decays, weighs them most), `descending` first; `anneal` shuffles them and then reads the most
valuable again for the last `anneal_fraction` of the tokens (annealing on high-quality data at the
end of pretraining, as in Blakeney et al. 2024, arXiv 2406.03476). The trainer then reads rows in
that order (no shuffle); where the steps read fewer rows than there are, the part that matters is
kept (`trim`): the end for ascending and anneal, the start for descending.

    docs, record = curriculum_order(docs, ranks, tokens, "anneal", anneal_fraction=0.15, seed=0)
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("none", "ascending", "descending", "anneal")


def curriculum_order(
    docs: list[dict], ranks: dict[str, float], tokens: dict[str, int], kind: str, anneal_fraction: float, seed: int
) -> tuple[list[dict], dict]:
    """The documents in curriculum order, and what was done (for metrics.json)."""
    if kind not in KINDS[1:]:
        raise ValueError(f"unknown curriculum {kind!r}; allowed: {', '.join(KINDS)}")
    value = [_value(ranks.get(d["id"])) for d in docs]
    if kind in ("ascending", "descending"):
        order = sorted(range(len(docs)), key=lambda i: value[i], reverse=kind == "descending")
        return [docs[i] for i in order], {"kind": kind, "docs": len(docs)}
    shuffled = [docs[i] for i in np.random.default_rng(seed).permutation(len(docs))]
    total = sum(tokens.get(d["id"], 0) for d in docs)
    want = anneal_fraction / (1 - anneal_fraction) * total  # the tail is anneal_fraction of everything read
    tail, got = [], 0
    for i in sorted(range(len(docs)), key=lambda i: value[i], reverse=True):
        if got >= want:
            break
        tail.append(docs[i])
        got += tokens.get(docs[i]["id"], 0)
    record = {
        "kind": kind,
        "docs": len(docs),
        "anneal_docs": len(tail),
        "anneal_tokens": got,
        "anneal_fraction": anneal_fraction,
    }
    return shuffled + tail, record


def trim(n_rows: int, consumed: int, kind: str) -> range:
    """Which rows to keep when the steps read `consumed` of `n_rows`: the part the curriculum puts
    its weight on."""
    if consumed >= n_rows:
        return range(n_rows)
    return range(0, consumed) if kind == "descending" else range(n_rows - consumed, n_rows)


def _value(rank: float | None) -> float:
    return -math.inf if rank is None or rank != rank else rank  # no value: least valuable
