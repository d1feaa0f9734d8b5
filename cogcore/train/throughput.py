"""Tokens/s and model FLOPs utilization (MFU), logged with the loss at every logging step.

MFU (PaLM's definition, Chowdhery et al. 2022) is the FLOP/s the model's own arithmetic needs at
the measured token rate, over the accelerators' peak:

    training FLOPs per token = 3 * (2 * N_matmul + 4 * L * C * H * d)

the forward pass of `cogcore.hardware.flops_per_token` (matmul weights plus attention scores and
values at a mean of C attended keys) and a backward pass of twice that. C is measured on the
rows themselves: with packing a token attends to its own document only, mean(position + 1).
Recomputation by gradient checkpointing is not counted, and neither is the frozen weights'
missing weight-gradient work under LoRA: the figure compares runs by the model, not the method.
Peaks are the dense bf16 figures of `cogcore.hardware.GPUS`, matched by the CUDA device name;
on a CPU (or an unknown GPU) only tokens/s is logged.
"""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback

from cogcore.hardware import ModelShape, flops_per_token, peak_flops


def gpu_peak_flops() -> tuple[str, float] | None:
    """(profile key, dense bf16 FLOP/s) of this process's CUDA device, or None (CPU, unknown GPU)."""
    if not torch.cuda.is_available():
        return None
    return peak_flops(torch.cuda.get_device_name())


def training_flops_per_token(config: dict, mean_context: float, n_params: int) -> float:
    """3x the forward FLOPs of one token (see module docstring); 6 * n_params for a config whose
    shape cannot be read (no attention term then)."""
    try:
        shape = ModelShape.from_config(config)
    except (KeyError, TypeError):
        return 6.0 * n_params
    return 3.0 * flops_per_token(shape, mean_context)


class ThroughputCallback(TrainerCallback):
    """Adds `tokens_per_s` (all processes together) and, on a known GPU, `mfu` to each logged loss."""

    def __init__(self, flops_per_token: float, peak_flops: float | None, processes: int = 1):
        self.flops_per_token, self.peak, self.processes = flops_per_token, peak_flops, processes
        self._t0 = self._tokens0 = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0, self._tokens0 = time.perf_counter(), state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or self._t0 is None:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        seconds = now - self._t0
        if seconds <= 0 or tokens <= self._tokens0:
            return
        rate = (tokens - self._tokens0) / seconds
        extra = {"tokens_per_s": round(rate, 1)}
        if self.peak:
            extra["mfu"] = round(rate * self.flops_per_token / (self.peak * self.processes), 4)
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)  # the Trainer appended its copy of `logs` already
        self._t0, self._tokens0 = now, tokens
