"""Mixture weights over groups of documents, moved step by step by a signal, with the guards that
keep such loops from failing (the rule; cogcore.valuation.mixture and cogcore.train.mixing drive it).

An update is one exponentiated-gradient step, w_g <- w_g * exp(eta * s_g), on signals centered and
divided by their running typical spread (so eta does not depend on their scale, and a small
difference makes a small step); every step mixes in `smoothing` of the uniform
mixture; no weight falls below `floor`; the weights handed on are the average over the trajectory,
not the last step. Those are the answers to the ways users of DoReMi, DoGE and ODM saw such loops
fail: one-hot weights, oscillation without convergence.

    mix = OnlineMixture(["bank", "web"], eta=0.5, floor=0.05)
    mix.update({"bank": 0.3, "web": -0.1})
    mix.average()   # {"bank": ..., "web": ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCALE_MEMORY = 0.8  # how slowly the signals' typical spread follows the latest update's


def guarded(weights: np.ndarray, floor: float, smoothing: float) -> np.ndarray:
    """Weights mixed with uniform, then lifted to `floor`, summing to 1."""
    k = len(weights)
    if floor * k > 1:
        raise ValueError(f"a floor of {floor} for {k} groups sums past 1; at most {1 / k:.3f}")
    w = (1 - smoothing) * weights / weights.sum() + smoothing / k
    for _ in range(k):  # lifting some to the floor shrinks the others; a few rounds settle it
        low = w < floor
        if not low.any():
            break
        free = 1 - floor * low.sum()
        w = np.where(low, floor, w * free / w[~low].sum())
    return w


@dataclass
class OnlineMixture:
    groups: list[str]
    eta: float = 0.5
    floor: float = 0.02
    smoothing: float = 0.05
    weights: np.ndarray | None = None
    trajectory: list[list[float]] = field(default_factory=list)
    _scale: float | None = field(default=None, repr=False)  # running spread of the signals

    def __post_init__(self) -> None:
        if self.weights is None:
            self.weights = np.full(len(self.groups), 1 / len(self.groups))
        self.weights = guarded(np.asarray(self.weights, dtype=np.float64), self.floor, self.smoothing)
        self.trajectory.append(self.weights.tolist())

    def update(self, signal: dict[str, float]) -> np.ndarray:
        """One exponentiated-gradient step on centered signals scaled by their typical spread (groups
        missing from `signal` get 0). The scale is a running mean of the spread over the updates, not
        this update's own: with two groups an update's own spread would turn any difference, however
        small, into a full step."""
        s = np.array([signal.get(g, 0.0) for g in self.groups], dtype=np.float64)
        s = s - s.mean()
        spread = s.std()
        self._scale = spread if self._scale is None else SCALE_MEMORY * self._scale + (1 - SCALE_MEMORY) * spread
        s = s / self._scale if self._scale > 0 else np.zeros_like(s)
        self.weights = guarded(self.weights * np.exp(self.eta * s), self.floor, self.smoothing)
        self.trajectory.append(self.weights.tolist())
        return self.weights

    def average(self) -> dict[str, float]:
        """The mean of the trajectory: the weights to hand on (see the module docstring)."""
        return dict(zip(self.groups, np.mean(self.trajectory, axis=0).tolist()))

    def current(self) -> dict[str, float]:
        return dict(zip(self.groups, self.weights.tolist()))
