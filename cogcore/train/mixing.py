"""The bi-level loop inside continued pretraining: the inner loop trains the model on rows drawn
group by group in the current mixture weights; every `every` steps the outer loop moves the weights
toward the groups whose gradient agrees with the gradient of the held-out target's loss (the
first-order estimate of which group's next step lowers the target loss most; DoGE, Fan et al.
2023), on the model being trained rather than on a proxy.

Rows carry their `group` (each row packs documents of one group only); `MixtureSampler` draws the
indices batch after batch from the weights it reads at each draw, so an update takes effect at the
next batch; `AlignmentCallback` computes the signal after an optimizer step (gradients are then
zero) on one probe batch per group and one of the target, with the trainable parameters only
(the LoRA adapter under LoRA), and zeroes the gradients again. The trajectory goes to metrics.json.
One process only: with several, each would draw and move weights of its own.

    mix = OnlineMixture(groups, eta=0.5, floor=0.05)
    sampler = MixtureSampler(row_groups, mix, num_samples=steps * batch, seed=0)
    callback = AlignmentCallback(mix, probes_by_group, target_batch, collate, every=10)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from transformers import TrainerCallback

from cogcore.mixture_weights import OnlineMixture


class MixtureSampler(torch.utils.data.Sampler):
    """`num_samples` row indices, each from a group drawn by the mixture's weights at that moment;
    a group's rows are read in a seeded shuffled order, epoch after epoch."""

    def __init__(self, row_groups: list[str], mixture: OnlineMixture, num_samples: int, seed: int):
        self.mixture, self.num_samples = mixture, num_samples
        self.rng = np.random.default_rng(seed)
        self.rows: dict[str, list[int]] = {}
        for i, g in enumerate(row_groups):
            self.rows.setdefault(g, []).append(i)
        missing = [g for g in mixture.groups if g not in self.rows]
        if missing:
            raise ValueError(f"mixture groups with no training rows: {', '.join(missing)}")
        self._orders: dict[str, Iterator[int]] = {g: iter(()) for g in self.rows}
        self.drawn = dict.fromkeys(self.rows, 0)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_samples):
            weights = self.mixture.weights
            group = self.mixture.groups[self.rng.choice(len(weights), p=weights / weights.sum())]
            i = next(self._orders[group], None)
            if i is None:
                rows = self.rows[group]
                self._orders[group] = iter(self.rng.permutation(rows).tolist())
                i = next(self._orders[group])
            self.drawn[group] += 1
            yield int(i)


class AlignmentCallback(TrainerCallback):
    """Every `every` optimizer steps: per group, <grad of its probe batch's loss, grad of the target
    batch's loss> over the trainable parameters, then one mixture update."""

    def __init__(self, mixture: OnlineMixture, probes: dict[str, dict], target: dict, every: int):
        self.mixture, self.probes, self.target, self.every = mixture, probes, target, every

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step % self.every:
            return
        was_training = model.training
        model.train()
        target = _flat_grad(model, self.target)
        signal = {g: float(_flat_grad(model, batch) @ target) for g, batch in self.probes.items()}
        model.train(was_training)
        self.mixture.update(signal)


def _flat_grad(model, batch: dict) -> torch.Tensor:
    device = next(model.parameters()).device
    model.zero_grad(set_to_none=True)
    model(**{k: v.to(device) for k, v in batch.items()}).loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad and p.grad is not None])
    model.zero_grad(set_to_none=True)
    return grad


def probe_batches(
    rows: list[dict], row_groups: list[str], collate: Callable[[list[dict]], dict], size: int, seed: int
) -> dict[str, dict]:
    """One collated batch of `size` rows per group (seeded), the probes of the alignment signal."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(row_groups):
        by_group.setdefault(g, []).append(i)
    return {
        g: collate([rows[i] for i in rng.choice(idx, size=min(size, len(idx)), replace=False)])
        for g, idx in by_group.items()
    }


class OnlineMixing:
    """What `train()` needs to run the bi-level loop: the mixture, each row's group, the target's
    rows (collated into one batch for the outer step), how often to update, a probe size, a seed."""

    def __init__(
        self,
        mixture: OnlineMixture,
        row_groups: list[str],
        target_rows: list[dict],
        every: int,
        probe_size: int,
        seed: int,
    ):
        if not target_rows:
            raise ValueError("the online mixture needs target rows (select.target gave no text)")
        self.mixture, self.row_groups, self.target_rows = mixture, row_groups, target_rows
        self.every, self.probe_size, self.seed = every, probe_size, seed
        self.sampler: MixtureSampler | None = None

    def attach(
        self, rows, collate: Callable[[list[dict]], dict], num_samples: int
    ) -> tuple[MixtureSampler, TrainerCallback]:
        """(sampler, callback) for a Trainer over `rows`."""
        self.sampler = MixtureSampler(self.row_groups, self.mixture, num_samples, self.seed)
        probes = probe_batches(
            [rows[i] for i in range(len(rows))], self.row_groups, collate, self.probe_size, self.seed
        )
        target = collate(self.target_rows[: self.probe_size])
        return self.sampler, AlignmentCallback(self.mixture, probes, target, self.every)

    def record(self) -> dict:
        return {
            "groups": self.mixture.groups,
            "average": self.mixture.average(),
            "final": self.mixture.current(),
            "trajectory": self.mixture.trajectory,
            "every": self.every,
            "rows_drawn": dict(self.sampler.drawn) if self.sampler else {},
        }
