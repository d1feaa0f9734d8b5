"""Training options: a token budget that sets the steps, gradient checkpointing (really recomputing),
QLoRA's clear refusal where it cannot run, tokens/s and MFU in the logs, and the recipe fields."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState, TrainingArguments

from cogcore.hardware import ModelShape, flops_per_token
from cogcore.hardware import peak_flops as peak_for_device
from cogcore.recipe import RecipeError, validate
from cogcore.train.cpt_data import build_cpt_rows
from cogcore.train.throughput import ThroughputCallback, training_flops_per_token
from cogcore.train.trainer import check_method, steps_for_tokens, train

SEQ_LEN = 20
TEXTS = [
    f"Transfer {n} of {n * 40} USD clears in {n % 3 + 1} days unless flagged by branch {n % 6}." for n in range(30)
]
HAS_QLORA = torch.cuda.is_available() and __import__("importlib").util.find_spec("bitsandbytes") is not None


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


@pytest.fixture(scope="module")
def spec(llm_dir, local_model):
    return local_model(llm_dir)


@pytest.fixture(scope="module")
def rows(llm_dir):
    tok = AutoTokenizer.from_pretrained(llm_dir)
    rows, _ = build_cpt_rows(
        tok, [{"id": str(n), "text": t} for n, t in enumerate(TEXTS)], [], SEQ_LEN, "keep", packing=True
    )
    return [r for r in rows if len(r["input_ids"]) == SEQ_LEN]


def _load(llm_dir):
    return AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32), AutoTokenizer.from_pretrained(llm_dir)


def test_token_budget_sets_the_steps(llm_dir, spec, rows, tmp_path, train_settings):
    assert steps_for_tokens(100, 20, 2) == 3 and steps_for_tokens(120, 20, 2) == 3 and steps_for_tokens(1, 20, 2) == 1
    settings = train_settings(method="full", max_tokens=5 * 2 * SEQ_LEN - 1, batch_size=2, save_steps=100)
    assert settings.max_steps is None  # the budget sets them
    metrics = train(*_load(llm_dir), rows, out_dir=tmp_path, settings=settings, label="test", model_spec=spec)
    assert metrics.steps == 5 and metrics.max_tokens == 5 * 2 * SEQ_LEN - 1
    assert metrics.tokens_trained == 5 * 2 * SEQ_LEN and metrics.mean_row_tokens == SEQ_LEN


def test_gradient_checkpointing_recomputes_and_trains_the_same(llm_dir, spec, rows, tmp_path, train_settings):
    def run(checkpointing: bool, out):
        model, tok = _load(llm_dir)
        calls = []
        # Counted on `forward` itself: module hooks do not fire when backward recomputes a checkpointed layer.
        mlp = model.model.layers[0].mlp
        plain_forward = mlp.forward
        mlp.forward = lambda *a, **k: (calls.append(1), plain_forward(*a, **k))[1]
        settings = train_settings(
            method="lora",
            lora={"r": 4, "alpha": 8},
            max_steps=2,
            batch_size=2,
            save_steps=100,
            gradient_checkpointing=checkpointing,
        )
        return train(model, tok, rows, out_dir=out, settings=settings, label="test", model_spec=spec), len(calls)

    plain, plain_calls = run(False, tmp_path / "plain")
    ckpt, ckpt_calls = run(True, tmp_path / "ckpt")
    assert ckpt.gradient_checkpointing is True and plain_calls == 2
    assert ckpt_calls == 2 * plain_calls  # each layer runs again in backward
    assert [h.loss for h in ckpt.log_history] == pytest.approx([h.loss for h in plain.log_history], rel=1e-5)


@pytest.mark.skipif(HAS_QLORA, reason="this machine can run qlora: the refusal is not what happens here")
def test_qlora_refuses_to_start_without_cuda_and_bitsandbytes(llm_dir, spec, rows, tmp_path, train_settings):
    with pytest.raises(RuntimeError, match=r"train\.cpt\.method: qlora .* needs a CUDA GPU and bitsandbytes"):
        check_method("qlora", "train.cpt.method")
    with pytest.raises(RuntimeError, match=r"train\.cpt\.method: qlora"):  # train() checks before it does anything
        train(
            *_load(llm_dir),
            rows,
            out_dir=tmp_path,
            settings=train_settings(method="qlora"),
            label="train.cpt",
            model_spec=spec,
        )
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(ValueError, match=r"x\.method: unknown method 'dora'"):
        check_method("dora", "x.method")


def test_tokens_per_s_is_logged_at_every_step(llm_dir, spec, rows, tmp_path, train_settings):
    settings = train_settings(method="full", max_steps=3, batch_size=2, save_steps=100)
    metrics = train(*_load(llm_dir), rows, out_dir=tmp_path, settings=settings, label="test", model_spec=spec)
    assert all(h.tokens_per_s > 0 for h in metrics.log_history)
    assert metrics.tokens_per_s_logged > 0
    if not torch.cuda.is_available():  # no peak to divide by on a CPU
        assert metrics.mfu is None and all(h.mfu is None for h in metrics.log_history)
    # 3x the forward FLOPs at the rows' mean attended length, mean(position + 1) under the packed mask.
    config = AutoModelForCausalLM.from_pretrained(llm_dir).config.to_dict()
    positions = [p for r in rows for p in r["position_ids"]]
    context = sum(positions) / len(positions) + 1
    assert 1 < context < SEQ_LEN / 2 + 1  # documents shorter than rows: less attention than unpacked
    assert metrics.flops_per_token == pytest.approx(3 * flops_per_token(ModelShape.from_config(config), context))


def test_mfu_from_token_rate_and_peak():
    config = {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    }  # Llama-3-8B's shape
    per_token = training_flops_per_token(config, mean_context=1024, n_params=0)
    shape = ModelShape.from_config(config)
    assert per_token == 3 * flops_per_token(shape, 1024)
    assert 6 * 7.0e9 < per_token < 6 * 8.5e9  # ~6N for 8B weights (the input embedding is a lookup), + attention
    assert training_flops_per_token({"model_type": "odd"}, 10, n_params=1000) == 6000

    h100 = peak_for_device("NVIDIA H100 80GB HBM3")
    assert h100 == ("h100", 989e12)
    assert peak_for_device("NVIDIA L40S")[0] == "l40s" and peak_for_device("NVIDIA L4")[0] == "l4"
    assert peak_for_device("NVIDIA A100-SXM4-80GB")[0] == "a100" and peak_for_device("Radeon 7900") is None

    callback = ThroughputCallback(per_token, h100[1], processes=2)
    state, control = TrainerState(), TrainerControl()
    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    callback.on_train_begin(args, state, control)
    callback._t0 -= 2.0  # as if two seconds went by
    state.num_input_tokens_seen, state.global_step = 8000, 1
    state.log_history.append({"loss": 1.0, "step": 1})
    logs = {"loss": 1.0}
    callback.on_log(args, state, control, logs=logs)
    rate = state.log_history[-1]["tokens_per_s"]
    assert rate == pytest.approx(4000, rel=0.01) and logs["tokens_per_s"] == rate
    assert state.log_history[-1]["mfu"] == pytest.approx(rate * per_token / (2 * 989e12), abs=1e-4)


BASE = {
    "name": "x",
    "sources": [{"name": "a", "path": "docs"}],
    "base_model": {"path": "m"},
    "index": {"embedder": "e"},
}


def _problems(train: dict) -> str:
    with pytest.raises(RecipeError) as e:
        validate({**BASE, "train": train})
    return str(e.value)


def test_recipe_fields():
    cpt = validate(BASE).train.cpt
    assert cpt.packing is True and cpt.max_steps == 20 and cpt.max_tokens is None and cpt.replay is None
    budget = validate({**BASE, "train": {"cpt": {"max_tokens": 1_000_000}}}).train.cpt
    assert budget.max_steps is None
    # The resolved recipe (every field written out) validates again.
    assert validate({**BASE, "train": {"cpt": budget.model_dump()}}).train.cpt.max_tokens == 1_000_000
    assert "train.cpt: " in _problems({"cpt": {"max_tokens": 10, "max_steps": 5}})
    assert "max_tokens and max_steps are both set" in _problems({"cpt": {"max_tokens": 10, "max_steps": 5}})
    assert "train.tools.method: 'qlora' is not allowed" in _problems({"tools": {"method": "qlora"}})
    assert "train.tools.packing: unknown field" in _problems({"tools": {"packing": True}})
    assert "train.cpt.replay.ratio" in _problems({"cpt": {"replay": {"path": "p", "ratio": 1.0}}})
    assert "train.cpt.replay.path: required" in _problems({"cpt": {"replay": {"ratio": 0.2}}})
    assert (
        validate({**BASE, "train": {"cpt": {"method": "qlora", "gradient_checkpointing": True}}}).train.cpt.method
        == "qlora"
    )
