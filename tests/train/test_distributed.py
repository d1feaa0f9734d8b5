"""Multi-process training for real: two CPU processes over gloo under `accelerate launch`, the
FSDP2 gather-and-merge on two gloo ranks, and the accelerate configs generated from the recipe
(validated by accelerate's own config loader and launch-argument checks)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.models import ModelSpec
from cogcore.recipe import RecipeError, validate
from cogcore.train.distributed import DistributedPlan, FsdpPlan, accelerate_config, write_accelerate_config
from cogcore.train.launch import LOG_NAME, launch_stage
from cogcore.train.metrics import TrainMetrics

SEQ = 8
TEXTS = [f"Account {n} costs {n * 3} USD per month and settles within {n % 7 + 1} business days." for n in range(1, 30)]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


def _rows(tok) -> list[dict]:
    ids = [tok(t)["input_ids"][:SEQ] for t in TEXTS]
    return [{"input_ids": i, "labels": i} for i in ids if len(i) == SEQ]  # equal rows: known tokens per step


def test_two_cpu_processes_train_with_gloo_and_the_main_one_saves(llm_dir, tmp_path, train_settings):
    tok = AutoTokenizer.from_pretrained(llm_dir)
    settings = train_settings(
        method="lora", lora={"r": 4, "alpha": 8}, max_steps=3, batch_size=2, lr=1e-2, save_steps=3
    )
    plan = DistributedPlan(processes=2)
    # The stage's in-memory model is not used on this path: the workers load llm_dir themselves.
    spec = ModelSpec(path=str(llm_dir), dtype="float32", trust_remote_code=False)
    metrics = launch_stage(
        None, tok, _rows(tok), folder=tmp_path, settings=settings, label="test", plan=plan, model_spec=spec
    )

    assert metrics.world_size == 2 and metrics.distributed_type == "MULTI_CPU"
    assert metrics.steps == settings.max_steps
    # Token counts are gathered over ranks: 2 processes x batch 2 x 8 tokens x 3 steps.
    assert metrics.tokens_trained == 2 * settings.batch_size * SEQ * settings.max_steps
    assert all(math.isfinite(h.loss) for h in metrics.log_history) and len(metrics.log_history) == 3
    assert TrainMetrics.read(tmp_path / "metrics.json") == metrics

    log = (tmp_path / LOG_NAME).read_text()
    assert "rank 0/2 (MULTI_CPU) finished 3 steps" in log and "rank 1/2 (MULTI_CPU) finished 3 steps" in log
    assert log.count("saves the merged model") == 1  # one writer

    folder = tmp_path / "model"
    assert not list(folder.glob("adapter*"))
    trained = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
    base = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32).state_dict()
    assert set(trained) == set(base) and any(not torch.equal(trained[k], base[k]) for k in base)
    config = (tmp_path / "accelerate_config.yaml").read_text()
    assert "use_cpu: true" in config and "num_processes: 2" in config


def test_failed_workers_raise_with_the_log_tail(llm_dir, tmp_path, train_settings):
    from cogcore.train.launch import TrainSpec, launch

    spec = TrainSpec(
        model=ModelSpec(path=str(llm_dir), dtype="float32", trust_remote_code=False),
        rows=str(tmp_path / "no-such-rows"),
        out_dir=str(tmp_path),
        settings=train_settings(max_steps=1),
        label="train.cpt",
        chat_template=None,
    )
    with pytest.raises(RuntimeError) as err:
        launch(spec, DistributedPlan(processes=2), tmp_path)
    message = str(err.value)
    assert "train.cpt: accelerate launch exited with status" in message
    assert re.search(r"cogcore worker failed on rank \d: FileNotFoundError: .*no-such-rows", message)
    assert not (tmp_path / "model").exists()


FSDP_WORKER = """
import copy, sys, torch, torch.distributed as dist
from peft import LoraConfig, get_peft_model
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM
from safetensors.torch import save_file
from cogcore.train.distributed import model_from_state

dist.init_process_group("gloo")
torch.manual_seed(0)
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
for name, p in model.named_parameters():
    if "lora_B" in name:
        torch.nn.init.normal_(p, std=0.05)  # peft starts B at zero, which would make any merge look right
reference = copy.deepcopy(model).merge_and_unload().state_dict()
for layer in model.base_model.model.model.layers:
    fully_shard(layer)
fully_shard(model)
assert type(next(model.parameters())).__name__ == "DTensor"  # really sharded
# What accelerate's get_state_dict does for FSDP2 with FULL_STATE_DICT: gather in full, on the CPU.
state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
if dist.get_rank() == 0:
    merged = model_from_state(base.config, state, "lora", 8 / 4).state_dict()
    save_file({k: v.clone() for k, v in merged.items()}, sys.argv[2] + "/merged.safetensors")
    save_file({k: v.clone() for k, v in reference.items()}, sys.argv[2] + "/reference.safetensors")
dist.destroy_process_group()
"""


def test_fsdp_sharded_lora_gathers_and_merges_like_peft(llm_dir, tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "fsdp_worker.py"
    script.write_text(FSDP_WORKER)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(llm_dir),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    merged, reference = load_file(tmp_path / "merged.safetensors"), load_file(tmp_path / "reference.safetensors")
    assert set(merged) == set(reference) and not any("lora" in k for k in merged)
    for key in reference:
        torch.testing.assert_close(merged[key], reference[key])
    base = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32).state_dict()
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[q_proj], base[q_proj])


def _accelerate_args(path: Path):
    """Parse and validate a config file exactly as `accelerate launch --config_file` does."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    load_config_from_file(str(path))  # refuses unknown keys
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "cogcore.train.launch", "spec.json"])
    return _validate_launch_command(args)[0]


def test_fsdp_config_is_what_accelerate_expects(tmp_path):
    plan = DistributedPlan(
        processes=8,
        strategy="fsdp",
        fsdp=FsdpPlan(layer_class="LlamaDecoderLayer", activation_checkpointing=True, cpu_offload=True),
    )
    path = write_accelerate_config(plan, tmp_path, gpu=True)
    args = _accelerate_args(path)
    assert args.use_fsdp and not args.use_deepspeed and args.num_processes == 8 and args.mixed_precision == "bf16"
    assert args.fsdp_version == 2 and args.fsdp_reshard_after_forward is True
    assert args.fsdp_transformer_layer_cls_to_wrap == "LlamaDecoderLayer" and args.fsdp_offload_params is True
    assert args.fsdp_activation_checkpointing is True and args.fsdp_state_dict_type == "FULL_STATE_DICT"

    grad_op_plan = DistributedPlan(processes=2, strategy="fsdp", fsdp=FsdpPlan(full_shard=False))
    grad_op = accelerate_config(grad_op_plan, gpu=True)
    assert grad_op["fsdp_config"]["fsdp_reshard_after_forward"] is False
    assert "fsdp_transformer_layer_cls_to_wrap" not in grad_op["fsdp_config"]  # the model's own layer class


def test_multi_node_deepspeed_config_is_what_accelerate_expects(tmp_path):
    plan = DistributedPlan(
        processes=8,
        nodes=2,
        machine_rank=1,
        strategy="deepspeed",
        zero_stage=3,
        main_process_ip="10.1.2.3",
        main_process_port=29501,
    )
    args = _accelerate_args(write_accelerate_config(plan, tmp_path, gpu=True, grad_accum=4))
    assert args.use_deepspeed and args.num_processes == 16 and args.num_machines == 2 and args.machine_rank == 1
    assert args.main_process_ip == "10.1.2.3" and args.main_process_port == 29501
    assert args.zero_stage == 3 and args.gradient_accumulation_steps == 4
    config = accelerate_config(plan, gpu=True)["deepspeed_config"]
    assert config["zero3_save_16bit_model"] is True and config["deepspeed_multinode_launcher"] == "standard"
    assert (
        "zero3_save_16bit_model"
        not in accelerate_config(DistributedPlan(processes=2, strategy="deepspeed"), gpu=True)["deepspeed_config"]
    )


def test_ddp_config_on_gpus_and_a_single_process(tmp_path):
    args = _accelerate_args(write_accelerate_config(DistributedPlan(processes=4), tmp_path, gpu=True))
    assert args.multi_gpu and args.num_processes == 4 and not args.use_cpu
    assert accelerate_config(DistributedPlan(), gpu=True)["distributed_type"] == "NO"
    assert not DistributedPlan().needs_launcher and DistributedPlan(strategy="fsdp").needs_launcher


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_sharding_on_a_cpu_is_refused_naming_the_field(strategy):
    with pytest.raises(ValueError, match=f"train.distributed.strategy: {strategy} needs GPUs"):
        accelerate_config(DistributedPlan(processes=2, strategy=strategy), gpu=False)


def _recipe(distributed: dict) -> dict:
    return {
        "name": "t",
        "sources": [{"name": "s", "path": "docs"}],
        "base_model": {"path": "m"},
        "index": {"embedder": "e"},
        "train": {"distributed": distributed},
    }


@pytest.mark.parametrize(
    "distributed, expected",
    [
        ({"nodes": 2}, "train.distributed: Value error, nodes > 1 needs main_process_ip"),
        ({"strategy": "zero"}, "train.distributed.strategy: 'zero' is not allowed"),
        ({"zero_stage": 1}, "train.distributed.zero_stage"),
        ({"fsdp": {"shard": True}}, "train.distributed.fsdp.shard: unknown field"),
        ({"processes": 0}, "train.distributed.processes"),
        (
            {"nodes": 2, "main_process_ip": "10.0.0.1", "main_process_port": 29500, "machine_rank": 2},
            "machine_rank must be below nodes",
        ),
    ],
)
def test_bad_distributed_settings_name_the_field(distributed, expected):
    with pytest.raises(RecipeError) as err:
        validate(_recipe(distributed))
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_recipe_distributed_section_flattens_to_a_plan():
    from cogcore.train.distributed import plan_from_recipe

    recipe = validate(_recipe({"processes": 4, "strategy": "fsdp", "fsdp": {"activation_checkpointing": True}}))
    plan = plan_from_recipe(recipe.train.distributed)
    assert plan.world_size == 4 and plan.strategy == "fsdp" and plan.fsdp.activation_checkpointing
    assert plan_from_recipe(validate(_recipe({})).train.distributed) == DistributedPlan()


def test_cpt_stage_trains_under_two_processes_from_the_recipe(llm_dir, tmp_path, monkeypatch, curated_writer):
    """The stage wiring: `train.distributed.processes: 2` sends train.cpt through accelerate."""
    from cogcore.stages import build_stages

    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs.jsonl").write_text("")
    (tmp_path / "embedder").mkdir()
    recipe = validate(
        {
            "name": "dist",
            "sources": [{"name": "s", "path": str(tmp_path / "docs.jsonl")}],
            "base_model": {"path": str(llm_dir)},
            "index": {"embedder": str(tmp_path / "embedder")},
            "facts": {"strategy": "keep"},
            "train": {
                "cpt": {
                    "method": "lora",
                    "lora": {"r": 4, "alpha": 8},
                    "max_steps": 2,
                    "batch_size": 2,
                    "seq_len": 16,
                    "save_steps": 2,
                },
                "distributed": {"processes": 2},
            },
        }
    )
    run = recipe.run_path(tmp_path)
    docs = [{"id": str(i), "text": t, "source": "s", "meta": {"split": "train"}} for i, t in enumerate(TEXTS)]
    curated_writer(run / "curate", docs, [])
    folder = run / "train" / "cpt"
    folder.mkdir(parents=True)
    (stage,) = [s for s in build_stages(recipe.resolved(tmp_path)) if s.name == "train.cpt"]
    stage.run(folder)

    metrics = TrainMetrics.read(folder / "metrics.json")
    assert metrics.world_size == 2 and metrics.steps == 2 and metrics.data["rows"] > 0
    assert (folder / "accelerate_config.yaml").exists() and (folder / "model" / "model.safetensors").exists()
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["model"]["path"] == str(llm_dir) and spec["label"] == "train.cpt"
    assert not (folder / "rows").exists()  # the token cache folder was handed over, not copied
