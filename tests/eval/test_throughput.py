"""Measured serving throughput: real prefill and decode passes of a tiny model, and the report's
table that sets them beside the roofline for the same hardware, batch and lengths."""

from __future__ import annotations

import os

import pytest

from transformers import AutoModelForCausalLM

from cogcore.eval.throughput import measure_serving


def test_measure_serving_times_prefill_and_decode(make_tiny_llm):
    model = AutoModelForCausalLM.from_pretrained(make_tiny_llm(["A fee of 5 USD applies.", "Transfers take 3 days."]))
    got = measure_serving(model, batch=2, prompt_tokens=16, output_tokens=4)
    assert got["device"] == f"cpu-{os.cpu_count()}core" and got["dtype"] == "fp32"
    assert (got["batch"], got["prompt_tokens"], got["output_tokens"]) == (2, 16, 4)
    assert got["prefill_tokens_per_s"] == pytest.approx(2 * 16 / got["prefill_seconds"], rel=1e-3)
    assert got["decode_tokens_per_s"] == pytest.approx(2 * 4 / got["decode_seconds"], rel=1e-3)
    assert got["prefill_tokens_per_s"] > 0 and got["decode_tokens_per_s"] > 0
    assert not model.training


def test_report_sets_a_cpu_measurement_beside_the_cpu_roofline():
    from cogcore.eval.report import _throughput_blocks

    config = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 256}
    measured = {"engine": "transformers eager loop (fp32)", "device": "cpu-2core", "dtype": "fp32", "batch": 4,
                "prompt_tokens": 256, "output_tokens": 32, "prefill_tokens_per_s": 1000.0, "decode_tokens_per_s": 50.0}
    settings = {"batch": 16, "prompt_tokens": 1024, "output_tokens": 256, "dtype": "bf16"}
    blocks = _throughput_blocks({"measured_throughput": measured}, config, settings)
    rows = blocks[1].rows
    assert [r[2] for r in rows] == ["prefill", "decode"] and all(r[3:6] == [4, 256, 32] for r in rows)
    assert all(r[7] and r[8].endswith("%") for r in rows)  # a roofline for the cpu-2core profile, and the ratio
