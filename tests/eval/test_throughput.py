"""Measured serving throughput: real prefill and decode passes of a tiny model (the report's table
that sets them beside the roofline is tested with the report)."""

from __future__ import annotations

import os

import pytest
from transformers import AutoModelForCausalLM

from cogcore.eval.throughput import measure_serving


def test_measure_serving_times_prefill_and_decode(make_tiny_llm):
    model = AutoModelForCausalLM.from_pretrained(make_tiny_llm(["A fee of 5 USD applies.", "Transfers take 3 days."]))
    got = measure_serving(model, batch=2, prompt_tokens=16, output_tokens=4)
    assert got.device == f"cpu-{os.cpu_count()}core" and got.dtype == "fp32"
    assert (got.batch, got.prompt_tokens, got.output_tokens) == (2, 16, 4)
    assert got.prefill_tokens_per_s == pytest.approx(2 * 16 / got.prefill_seconds, rel=1e-3)
    assert got.decode_tokens_per_s == pytest.approx(2 * 4 / got.decode_seconds, rel=1e-3)
    assert got.prefill_tokens_per_s > 0 and got.decode_tokens_per_s > 0
    assert not model.training
