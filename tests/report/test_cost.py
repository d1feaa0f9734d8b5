"""The cost model against figures computed by hand from published configs (the model's shape and
FLOPs from `cogcore.hardware`, what they cost from `cogcore.report.cost`)."""

import pytest

from cogcore import hardware
from cogcore.report import cost

LLAMA3_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "model_type": "llama",
}
SMOLLM2_135M = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "model_type": "llama",
}


def test_llama3_8b_params_and_kv_cache():
    shape = hardware.ModelShape.from_config(LLAMA3_8B)
    assert shape.head_dim == 128
    # embed + lm_head 2*128256*4096, 32 layers of (attention 41,943,040 + MLP 176,160,768 + norms
    # 8,192), final norm 4,096.
    assert hardware.param_count(shape) == 8_030_261_248
    assert hardware.kv_cache_bytes_per_token(shape, "bf16") == 128 * 1024
    assert hardware.weights_bytes(shape, "int4") == pytest.approx(8_030_261_248 / 2)


def test_smollm2_135m_params_counts_tied_embedding_once():
    shape = hardware.ModelShape.from_config(SMOLLM2_135M)
    assert shape.head_dim == 64 and shape.tied
    assert hardware.param_count(shape) == 134_515_008
    assert hardware.kv_cache_bytes_per_token(shape, "bf16") == 2 * 30 * 3 * 64 * 2


def test_qwen2_counts_qkv_bias_and_explicit_head_dim_wins():
    qwen = {**SMOLLM2_135M, "model_type": "qwen2"}
    with_bias = hardware.param_count(hardware.ModelShape.from_config(qwen))
    assert with_bias - 134_515_008 == 30 * (9 + 2 * 3) * 64
    wide = hardware.ModelShape.from_config({**LLAMA3_8B, "head_dim": 256})
    assert hardware.kv_cache_bytes_per_token(wide) == 2 * 32 * 8 * 256 * 2


def test_flops_per_token_is_two_per_matmul_weight_plus_attention():
    shape = hardware.ModelShape.from_config(LLAMA3_8B)
    matmul = 8_030_261_248 - 128256 * 4096 - 32 * 8192 - 4096  # no embedding lookup, no norms
    assert hardware.flops_per_token(shape, 0) == 2 * matmul
    assert hardware.flops_per_token(shape, 1000) - hardware.flops_per_token(shape, 0) == 4 * 32 * 1000 * 4096


def test_decode_of_8b_on_h100_is_memory_bound_below_the_roofline():
    shape = hardware.ModelShape.from_config(LLAMA3_8B)
    row = cost.estimate(shape, "h100", batch=1, prompt_tokens=128, output_tokens=128)
    assert row["decode_bound"] == "memory"
    assert 170 < row["decode_tokens_per_s"] <= 209  # reference: 3350 GB/s / 16 GB <= ~209
    assert row["time_per_output_token_s"] == pytest.approx(1 / row["decode_tokens_per_s"])
    big = cost.estimate(shape, "h100", batch=64, prompt_tokens=128, output_tokens=128)
    assert big["decode_tokens_per_s"] > 20 * row["decode_tokens_per_s"]  # batching amortizes weights
    assert big["prefill_tokens_per_s"] > big["decode_tokens_per_s"]


def test_memory_fit_follows_gpu_capacity():
    shape = hardware.ModelShape.from_config(LLAMA3_8B)
    assert cost.estimate(shape, "h100", batch=1)["fits"]
    assert cost.estimate(shape, "l4", batch=1)["fits"]  # 16 GB of weights in 24 GB * 0.9
    # 64 streams of 1280 tokens add 64 * 1280 * 128 KiB = 10.7 GB of KV cache: 26.8 GB in bf16.
    crowded = cost.estimate(shape, "l4", batch=64)
    assert crowded["memory_gb"] == pytest.approx((8_030_261_248 * 2 + 64 * 1280 * 131072) / 1e9)
    assert not crowded["fits"]
    assert cost.estimate(shape, "l4", dtype="int4", batch=64)["fits"]


def test_dollar_figures_are_price_over_hourly_tokens():
    shape = hardware.ModelShape.from_config(SMOLLM2_135M)
    row = cost.estimate(shape, "a100", batch=8)
    assert row["price_per_hour"] == 1.94
    per_hour_out = row["decode_tokens_per_s"] * 3600
    assert row["usd_per_1m_output"] == pytest.approx(1.94 / per_hour_out * 1e6)
    assert row["usd_per_1m_input"] == pytest.approx(1.94 / (row["prefill_tokens_per_s"] * 3600) * 1e6)
    doubled = cost.estimate(shape, "a100", batch=8, price_per_hour=3.88)
    assert doubled["usd_per_1m_output"] == pytest.approx(2 * row["usd_per_1m_output"])


def test_cost_table_applies_price_overrides_per_gpu():
    rows = cost.cost_table(SMOLLM2_135M, ["H100", "l4"], prices={"h100": 2.0}, batch=4)
    assert [r["gpu_key"] for r in rows] == ["H100", "l4"]
    assert rows[0]["price_per_hour"] == 2.0 and rows[0]["price_source"] == "given"
    assert rows[1]["price_per_hour"] == hardware.GPUS["l4"].price_per_hour
    assert all(r["params"] == 134_515_008 for r in rows)
    with pytest.raises(KeyError, match="unknown GPU"):
        cost.cost_table(SMOLLM2_135M, ["tpu"])


def test_training_cost_is_six_n_d_over_effective_peak():
    out = cost.training_cost(8_000_000_000, 1_000_000_000, "h100", mfu=0.5)
    seconds = 6 * 8e9 * 1e9 / (0.5 * 989e12)
    assert out["seconds"] == pytest.approx(seconds)
    assert out["usd"] == pytest.approx(seconds / 3600 * 3.99)
    # The OLMo-core anchor: ~9.5k tokens/s/GPU for Llama3-8B on an H100 is ~46% MFU by this formula.
    assert 6 * 8.03e9 * 9500 / 989e12 == pytest.approx(0.46, abs=0.01)


def test_training_cost_of_the_demo_run_by_hand():
    # The demo's two LoRA stages: 139,399,488 params over 8,192 + 10,386 tokens.
    out = cost.training_cost(139_399_488, 18_578, "a100", mfu=0.4)
    flops = 6 * 139_399_488 * 18_578  # 1.5539e13
    assert out["flops"] == flops and flops == pytest.approx(1.5539e13, rel=1e-4)
    assert out["seconds"] == pytest.approx(flops / (0.4 * 312e12))  # 0.1245 s
    assert out["gpu_hours"] == pytest.approx(3.458e-5, rel=1e-3)
    assert out["usd"] == pytest.approx(3.458e-5 * 1.94, rel=1e-3)


def test_achieved_mfu_and_device_names():
    # 9,500 tokens/s for Llama3-8B on an H100 (OLMo-core) is ~46% MFU; as tokens over seconds:
    assert cost.achieved_mfu(8.03e9, 9500 * 60, 60.0, "h100") == pytest.approx(6 * 8.03e9 * 9500 / 989e12)
    names = {
        "NVIDIA H100 80GB HBM3": "h100",
        "NVIDIA A100-SXM4-80GB": "a100",
        "NVIDIA L40S": "l40s",
        "NVIDIA L4": "l4",
        "cpu-2core": "cpu-2core",
        "NVIDIA L40": None,
        "Tesla T4": None,
        None: None,
    }
    assert {name: hardware.gpu_key_for(name) for name in names} == names


def test_estimate_from_params_is_the_weights_only_roofline():
    # 8e9 bf16 params on an H100 at batch 1: 16 GB streamed per step at 0.9 * 3,350 GB/s.
    row = cost.estimate_from_params(8e9, "h100", batch=1)
    assert row["decode_tokens_per_s"] == pytest.approx(0.9 * 3350e9 / 16e9)
    assert row["usd_per_1m_output"] == pytest.approx(3.99 / (row["decode_tokens_per_s"] * 3600) * 1e6)
    # At batch 4096 compute binds: 4096 * 2 * 8e9 FLOPs at 0.7 * 989 TFLOPS per step.
    big = cost.estimate_from_params(8e9, "h100", batch=4096)
    assert big["decode_tokens_per_s"] == pytest.approx(0.7 * 989e12 / (2 * 8e9))
    # It is optimistic next to the full estimate, which also reads the KV cache.
    full = cost.estimate(hardware.ModelShape.from_config(LLAMA3_8B), "h100", batch=16)
    assert cost.estimate_from_params(8.03e9, "h100", batch=16)["usd_per_1m_output"] < full["usd_per_1m_output"]
