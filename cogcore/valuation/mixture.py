"""Mixture weights over groups of documents (sources, clusters, replay), moved by what helps the
held-out target, with guards against the ways such loops fail.

One update rule, two signals. Each `every` steps the weights take an exponentiated-gradient step,
w_g <- w_g * exp(eta * s_g) (normalized), where the signal s_g says how much group g is worth now:

- `alignment` (online, the bi-level loop; DoGE, Fan et al. 2023): the dot product of the gradient
  of group g's loss with the gradient of the held-out target loss, i.e. the first-order estimate of
  how much a step on g lowers the held-out loss. The inner loop trains on the mixture; this outer
  step moves it toward the groups whose gradients point where the target wants to go.
- `excess_loss` (DoReMi, Xie et al. 2023): the proxy's loss on g minus a reference model's,
  clipped at 0: how much the model still has to learn on g that is learnable.

Known failure modes, from the users of these methods: weights that collapse to one group (one-hot),
that oscillate without converging, and that do not transfer to another model or tokenizer. Guards
(cogcore.mixture_weights): signals are centered and scaled by their running spread before the step
(a scale-free eta); every step mixes in `smoothing` of the uniform mixture (DoReMi's c); no weight
falls below `floor`; the weights returned for later use are the average over the trajectory, not
the last step (DoReMi's choice, which damps oscillation); the whole trajectory is kept for the
report. Transfer across tokenizers is not guarded here: the signals are per group, not per token,
and the report shows the weights so a user can judge.

    mix = OnlineMixture(["bank", "web", "junk"], eta=0.5, floor=0.05)
    sampler = GroupSampler(rows_by_group, mix, batch_size=16, seed=0)
    ... every N steps: mix.update(alignment_signal(model, probe_batches, heldout_rows))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from cogcore.mixture_weights import OnlineMixture, guarded

SIGNALS = ("alignment", "excess_loss")


class GroupSampler:
    """Batches whose rows are drawn group by group in the mixture's current weights; each group's rows
    are read in a seeded shuffled order, epoch after epoch. The weights are read at every batch, so a
    mixture updated between steps takes effect at once."""

    def __init__(
        self, rows: dict[str, np.ndarray], mixture: OnlineMixture | dict[str, float], batch_size: int, seed: int = 0
    ):
        empty = [g for g, r in rows.items() if len(r) == 0]
        if empty:
            raise ValueError(f"groups with no rows: {', '.join(empty)}")
        self.rows, self.mixture, self.batch_size = rows, mixture, batch_size
        self.rng = np.random.default_rng(seed)
        self._orders = {g: iter(()) for g in rows}
        self.drawn = dict.fromkeys(rows, 0)

    def _weights(self) -> tuple[list[str], np.ndarray]:
        current = self.mixture.current() if isinstance(self.mixture, OnlineMixture) else self.mixture
        groups = [g for g in self.rows if current.get(g, 0) > 0]
        w = np.array([current[g] for g in groups], dtype=np.float64)
        return groups, w / w.sum()

    def _next_row(self, group: str) -> np.ndarray:
        i = next(self._orders[group], None)
        if i is None:
            self._orders[group] = iter(self.rng.permutation(len(self.rows[group])).tolist())
            i = next(self._orders[group])
        self.drawn[group] += 1
        return self.rows[group][i]

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        groups, w = self._weights()
        picks = self.rng.choice(len(groups), size=self.batch_size, p=w)
        return np.stack([self._next_row(groups[i]) for i in picks])


def _flat_grad(model, rows: np.ndarray) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    batch = torch.from_numpy(rows)
    model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone()).loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return grad


def alignment_signal(model, probes: dict[str, np.ndarray], heldout: np.ndarray) -> dict[str, float]:
    """Per group: <grad of its loss, grad of the held-out loss> on a probe batch of each (DoGE)."""
    was_training = model.training
    model.train()
    target = _flat_grad(model, heldout)
    signal = {g: float(_flat_grad(model, rows) @ target) for g, rows in probes.items()}
    model.train(was_training)
    return signal


def excess_loss_signal(losses: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Per group: max(proxy loss - reference loss, 0) (DoReMi)."""
    return {g: max(losses[g] - reference[g], 0.0) for g in losses}


def probe_batches(rows: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {g: r[rng.choice(len(r), size=min(size, len(r)), replace=False)] for g, r in rows.items()}


def stratified(groups: Sequence[str], counts: dict[str, int]) -> dict[str, float]:
    """Weights proportional to each group's size: the natural mixture."""
    total = sum(counts[g] for g in groups)
    return {g: counts[g] / total for g in groups}


def learn_mixture(
    rows: dict[str, np.ndarray],
    target: np.ndarray,
    train,
    signal: str,
    steps: int,
    batch_size: int,
    every: int,
    mixture: OnlineMixture,
    seed: int,
    reference_losses: dict[str, float] | None = None,
) -> OnlineMixture:
    """Train a proxy on the groups' rows in the mixture's weights (the inner loop), moving the weights
    every `every` steps by `signal` (the outer loop). `train(batches, steps, on_step)` trains the
    proxy (cogcore.valuation.proxy.train_proxy with its shape bound); `target` holds the rows of the
    held-out target (alignment) and `reference_losses` the reference model's loss per group
    (excess_loss)."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown mixture signal {signal!r}; allowed: {', '.join(SIGNALS)}")
    if signal == "excess_loss" and reference_losses is None:
        raise ValueError("the excess_loss signal needs the reference model's loss per group")
    rng = np.random.default_rng(seed)

    def outer(step: int, model) -> None:
        if (step + 1) % every:
            return
        probes = probe_batches(rows, batch_size, rng)
        if signal == "alignment":
            held = target[rng.choice(len(target), size=min(len(target), batch_size), replace=False)]
            mixture.update(alignment_signal(model, probes, held))
        else:
            mixture.update(excess_loss_signal(group_losses(model, probes), reference_losses))

    train(GroupSampler(rows, mixture, batch_size, seed=seed), steps, outer)
    return mixture


def group_losses(model, probes: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    with torch.inference_mode():
        for g, rows in probes.items():
            batch = torch.from_numpy(rows)
            out[g] = float(model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone()).loss)
    return out


def resample_by_weight(
    docs: list[dict], tokens: list[int], weights: dict[str, float], group_of, seed: int, max_repeat: int = 4
) -> tuple[list[dict], dict]:
    """The documents again, each group's share of the tokens moved toward `weights`: a group over
    its weight keeps a seeded subset, one under it is repeated (whole passes, then a seeded subset),
    at most `max_repeat` times (a floor against overfitting a small group). Returns the documents
    and, per group, the tokens before and after."""
    rng = np.random.default_rng(seed)
    total = sum(tokens)
    by_group: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_group.setdefault(group_of(d), []).append(i)
    out, report = [], {}
    for g, idx in sorted(by_group.items()):
        have = sum(tokens[i] for i in idx)
        want = min(weights.get(g, 0.0) * total, max_repeat * have)
        chosen = [i for _ in range(int(want // have)) for i in idx] if have else []
        rest = want - sum(tokens[i] for i in chosen)
        for i in rng.permutation(idx):
            if rest <= 0:
                break
            chosen.append(int(i))
            rest -= tokens[i]
        out += [docs[i] for i in chosen]
        report[g] = {"tokens_before": have, "tokens_after": sum(tokens[i] for i in chosen), "weight": weights.get(g)}
    return out, report


def regmix_weights(
    groups: list[str],
    run: Callable[[dict[str, float]], float],
    runs: int,
    seed: int,
    floor: float,
    candidates: int = 20_000,
    top: int = 100,
) -> tuple[dict[str, float], list[dict]]:
    """RegMix (Liu et al. 2024): `runs` short proxy runs on mixtures drawn from a Dirichlet, a regression
    of the target loss on the weights (linear and pairwise terms, least squares with a small ridge),
    and the mean of the `top` best-predicted of `candidates` random mixtures (above `floor`). `run(w)`
    trains a proxy on mixture w (dict) and returns its target loss. Returns the weights and the runs."""
    rng = np.random.default_rng(seed)
    k = len(groups)
    if k < 2:
        raise ValueError("a mixture needs at least two groups")
    tried = [np.full(k, 1 / k)] + [guarded(rng.dirichlet(np.ones(k)), floor, 0.0) for _ in range(runs - 1)]
    losses = [run(dict(zip(groups, w.tolist()))) for w in tried]
    x, y = np.array(tried), np.array(losses)
    coef = _ridge(_features(x), y)
    pool = np.array([guarded(w, floor, 0.0) for w in rng.dirichlet(np.ones(k), size=candidates)])
    best = pool[np.argsort(_features(pool) @ coef)[:top]].mean(axis=0)
    records = [{"weights": dict(zip(groups, w.tolist())), "target_loss": loss} for w, loss in zip(tried, losses)]
    return dict(zip(groups, guarded(best, floor, 0.0).tolist())), records


def _features(w: np.ndarray) -> np.ndarray:
    """Weights, their pairwise products and a bias: enough for a smooth loss surface on the simplex."""
    k = w.shape[1]
    pairs = [w[:, i] * w[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack([np.ones(len(w)), w, *pairs])


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)
