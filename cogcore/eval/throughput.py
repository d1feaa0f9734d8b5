"""Measured serving throughput of the trained model, for the report to set beside its roofline.

Prefill: one forward pass over `batch` prompts of `prompt_tokens` random token ids. Decode:
`output_tokens` greedy steps with the KV cache from that prefill, one token per prompt per step.
Both timed after a warm-up pass (and `torch.cuda.synchronize` on a GPU), in the model's own dtype,
with the transformers eager loop — the floor a serving engine (vLLM) should beat, not what one
reaches. The result is a `ServingMeasurement`, results.json's `measured_throughput`, which the
report (`cogcore.report.run_report`) sets beside the roofline.

`device` is the GPU's name, or "cpu-<cores>core" (matching the report's `cpu-2core` profile on a
2-core machine).
"""

from __future__ import annotations

import os
import time

import torch

from cogcore.eval.results import ServingMeasurement

DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{os.cpu_count()}core"


def measure_serving(model, batch: int, prompt_tokens: int, output_tokens: int, seed: int = 0) -> ServingMeasurement:
    """Prefill and decode tokens/s of `model` at a batch size and prompt/output lengths."""
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt_tokens), generator=generator).to(device)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        model(input_ids=ids[:, :8], use_cache=True)  # warm-up: kernels, allocator
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        sync()
        prefill = time.perf_counter() - t0
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(output_tokens):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        sync()
        decode = time.perf_counter() - t0
    model.train(was_training)
    dtype = DTYPE_NAMES.get(next(model.parameters()).dtype, str(next(model.parameters()).dtype))
    return ServingMeasurement(
        engine=f"transformers eager loop ({dtype})",
        device=device_name(device),
        dtype=dtype,
        batch=batch,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        prefill_tokens_per_s=round(batch * prompt_tokens / prefill, 1),
        decode_tokens_per_s=round(batch * output_tokens / decode, 1) if output_tokens else None,
        prefill_seconds=round(prefill, 6),
        decode_seconds=round(decode, 6),
    )
