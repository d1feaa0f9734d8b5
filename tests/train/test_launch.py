"""The launch spec and the single-process paths: in-process training, the worker entry point run
from a spec (Arrow rows, chat template carried over), rows handed over without a copy, and the
LoRA merge from a full state dict (the FSDP path) against peft's own merge."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset, load_from_disk
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.models import ModelSpec
from cogcore.recipe import CptTrainConfig
from cogcore.train.distributed import DistributedPlan, merge_lora_state, model_from_state
from cogcore.train.launch import SPEC_NAME, TrainSpec, launch, launch_stage, main, save_rows
from cogcore.train.metrics import TrainMetrics
from cogcore.train.trainer import TrainSettings

SEQ = 8
TEXTS = [f"Invoice {n} is due on day {n % 28 + 1} and carries a fee of {n * 2} EUR." for n in range(1, 25)]
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


@pytest.fixture(scope="module")
def rows(llm_dir):
    tok = AutoTokenizer.from_pretrained(llm_dir)
    ids = [tok(t)["input_ids"][:SEQ] for t in TEXTS]
    return [{"input_ids": i, "labels": i} for i in ids if len(i) == SEQ]


SETTINGS = TrainSettings.from_section(
    CptTrainConfig(
        method="lora",
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        max_steps=2,
        batch_size=2,
        lr=1e-2,
        save_steps=2,
    ),
    seed=0,
)


def _spec(path, dtype: str = "float32", trust_remote_code: bool = False) -> ModelSpec:
    return ModelSpec(path=str(path), dtype=dtype, trust_remote_code=trust_remote_code)


def test_spec_round_trips_through_json(tmp_path):
    from dataclasses import asdict

    spec = TrainSpec(
        model=ModelSpec(path="m", dtype="bfloat16", trust_remote_code=True, quantize_4bit=True),
        rows="r",
        out_dir="o",
        settings=SETTINGS,
        label="train.cpt",
        chat_template=TEMPLATE,
    )
    back = TrainSpec.read(spec.write(tmp_path / SPEC_NAME))
    assert back == spec and back.settings.lora_targets == ("q_proj", "v_proj")  # the tuple is back
    with pytest.raises(TypeError):
        TrainSpec.read(_write(tmp_path / "bad.json", {**asdict(spec), "extra": 1}))


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_one_process_trains_in_process_on_the_stage_model(llm_dir, rows, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(llm_dir)
    metrics = launch_stage(
        model,
        tok,
        rows,
        folder=tmp_path,
        settings=SETTINGS,
        label="test",
        plan=DistributedPlan(),
        model_spec=_spec("no-such-model"),
    )
    assert metrics.steps == 2 and metrics.distributed_type is None  # train() itself, no worker wrapper
    assert not (tmp_path / SPEC_NAME).exists() and not (tmp_path / "accelerate_config.yaml").exists()
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_worker_entry_point_trains_from_a_spec(llm_dir, rows, tmp_path):
    from dataclasses import replace

    spec = TrainSpec(
        model=_spec(llm_dir),
        rows=save_rows(rows, tmp_path / "rows"),
        out_dir=str(tmp_path / "out"),
        settings=SETTINGS,
        label="test",
        chat_template=TEMPLATE,
    )
    main([str(spec.write(tmp_path / SPEC_NAME))])

    metrics = TrainMetrics.read(tmp_path / "out" / "metrics.json")
    assert metrics.steps == SETTINGS.max_steps and metrics.world_size == 1 and metrics.distributed_type is not None
    assert metrics.tokens_trained == SETTINGS.batch_size * SEQ * SETTINGS.max_steps
    saved = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    assert saved.chat_template == TEMPLATE  # the stage's template survives the trip through a worker
    # launch() with a one-process plan is the same call.
    again = launch(replace(spec, out_dir=str(tmp_path / "again")), DistributedPlan(), tmp_path)
    assert again.final_loss == pytest.approx(metrics.final_loss)


def test_worker_usage_error():
    with pytest.raises(SystemExit, match="usage"):
        main([])


def test_rows_from_a_saved_dataset_are_handed_over_without_a_copy(rows, tmp_path):
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "cache"))
    cached = load_from_disk(str(tmp_path / "cache"))
    assert save_rows(cached, tmp_path / "copy") == str(tmp_path / "cache")
    assert not (tmp_path / "copy").exists()
    # A selection is not the whole folder: it is saved.
    assert save_rows(cached.select(range(3)), tmp_path / "part") == str(tmp_path / "part")
    assert len(load_from_disk(str(tmp_path / "part"))) == 3
    assert load_from_disk(save_rows(rows, tmp_path / "list"))[0] == rows[0]


def test_lora_merge_from_a_full_state_dict_matches_peft(llm_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # B starts at zero: any merge would look right
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rebuilt = model_from_state(base.config, state, "lora", 16 / 4).state_dict()
    reference = model.merge_and_unload().state_dict()
    assert set(rebuilt) == set(reference)
    for key in reference:
        torch.testing.assert_close(rebuilt[key], reference[key])
    assert not any("lora" in k or "base_layer" in k for k in merge_lora_state(state, 4.0))


def test_a_partial_state_dict_is_refused(llm_dir):
    base = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    state = {k: v for k, v in base.state_dict().items() if "layers.1." not in k}  # a shard, not the whole
    with pytest.raises(RuntimeError, match="missing .*layers.1"):
        model_from_state(base.config, state, "full", 1.0)


@pytest.mark.skipif(__import__("importlib").util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_deepspeed_without_the_package_names_the_extra(tmp_path):
    spec = TrainSpec(
        model=_spec("m"), rows="r", out_dir=str(tmp_path), settings=SETTINGS, label="train.cpt", chat_template=None
    )
    with pytest.raises(RuntimeError, match=r"strategy: deepspeed needs the deepspeed package .*cogcore\[deepspeed\]"):
        launch(spec, DistributedPlan(processes=2, strategy="deepspeed"), tmp_path)
    assert not (tmp_path / SPEC_NAME).exists()
