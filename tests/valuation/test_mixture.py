"""The online reweighting moves weight toward a group whose loss is kept high by construction, and
keeps every weight above its floor; the sampler draws in the mixture's weights."""

from __future__ import annotations

import random

import numpy as np
import torch

from cogcore.valuation.mixture import (
    GroupSampler,
    OnlineMixture,
    alignment_signal,
    excess_loss_signal,
    guarded,
    probe_batches,
)
from cogcore.valuation.proxy import ProxyShape, rows_loss, token_rows, train_proxy, train_tokenizer

TINY = ProxyShape(hidden=32, layers=2, heads=2, intermediate=64, seq_len=32)


def test_guards_keep_every_weight_above_its_floor_and_summing_to_one():
    w = guarded(np.array([1.0, 1e-9, 1e-9, 1e-9]), floor=0.05, smoothing=0.0)
    assert np.isclose(w.sum(), 1) and w.min() >= 0.05 - 1e-12
    mix = OnlineMixture(["a", "b", "c"], eta=5.0, floor=0.05, smoothing=0.0)
    for _ in range(50):
        mix.update({"a": 10.0, "b": 0.0, "c": 0.0})
    assert min(mix.current().values()) >= 0.05 - 1e-12 and mix.current()["a"] > 0.85
    assert np.isclose(sum(mix.average().values()), 1)


def test_excess_loss_moves_weight_to_the_group_with_more_left_to_learn():
    mix = OnlineMixture(["easy", "hard"], eta=0.5, floor=0.05)
    for _ in range(10):
        mix.update(excess_loss_signal({"easy": 2.0, "hard": 3.5}, {"easy": 1.9, "hard": 1.0}))
    assert mix.current()["hard"] > 0.8 and mix.current()["easy"] >= 0.05


def test_alignment_moves_weight_toward_the_group_like_the_held_out_target():
    torch.set_num_threads(1)
    rng = random.Random(0)
    target = [f"The fee for plan {rng.randint(1, 9)} is {rng.randint(1, 99)} USD a month." for _ in range(200)]
    noise = [" ".join(rng.choice("qwxz") * rng.randint(1, 4) for _ in range(12)) for _ in range(200)]
    tok = train_tokenizer(target + noise, vocab_size=200)
    rows = {"bank": token_rows(tok, target[:150], TINY.seq_len), "noise": token_rows(tok, noise, TINY.seq_len)}
    heldout = token_rows(tok, target[150:], TINY.seq_len)
    mix = OnlineMixture(["bank", "noise"], eta=0.5, floor=0.05)
    sampler = GroupSampler(rows, mix, batch_size=8, seed=0)
    probe_rng = np.random.default_rng(0)

    def outer(step, model):
        if step % 5 == 4:
            mix.update(alignment_signal(model, probe_batches(rows, 8, probe_rng), heldout))

    model, _ = train_proxy(sampler, TINY, len(tok), steps=40, lr=1e-2, seed=0, on_step=outer)
    assert mix.current()["bank"] > 0.6 and mix.current()["noise"] >= 0.05
    assert sampler.drawn["bank"] > sampler.drawn["noise"]
    assert np.isfinite(rows_loss(model, heldout))


def test_regmix_finds_the_mixture_a_known_loss_surface_prefers():
    from cogcore.valuation.mixture import regmix_weights

    best = np.array([0.7, 0.2, 0.1])

    def run(w: dict) -> float:  # a smooth bowl around `best`, as a proxy's target loss would be
        x = np.array([w["a"], w["b"], w["c"]])
        return float(3.0 + 4 * ((x - best) ** 2).sum())

    weights, runs = regmix_weights(["a", "b", "c"], run, runs=16, seed=0, floor=0.02)
    assert len(runs) == 16 and runs[0]["weights"] == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    assert abs(weights["a"] - 0.7) < 0.1 and min(weights.values()) >= 0.02 - 1e-9
