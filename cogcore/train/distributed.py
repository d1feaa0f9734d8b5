"""accelerate configs from the recipe's `train.distributed`, and the one trained model they yield.

The same recipe trains on one CPU, one GPU or many: `train.distributed` says how many processes
per node, how many nodes, and whether they replicate the model (DDP) or shard it (FSDP, DeepSpeed
ZeRO 2/3). `write_accelerate_config` turns that into an accelerate config file (accelerate's own
schema, the one `accelerate config` writes) in the stage folder; `cogcore.train.launch` starts
`accelerate launch --config_file` on it. The file is plain accelerate: a user can run it by hand.
Several nodes: `cogcore run` on the main node (machine_rank 0) writes the config, spec.json and
the rows into the stage folder and waits for the others; with that folder on a shared filesystem,
each other node runs `accelerate launch --config_file accelerate_config.yaml --machine_rank N -m
cogcore.train.launch spec.json`.

    from cogcore.train.distributed import DistributedPlan, write_accelerate_config
    write_accelerate_config(DistributedPlan(processes=8, strategy="fsdp"), folder, gpu=True)

On a machine without GPUs the workers are CPU processes that talk over gloo. accelerate starts
its `MULTI_CPU` type only under mpirun; its torchrun launcher (the `MULTI_GPU` type) starts CPU
workers just as well, and each finds no GPU and joins a gloo group (accelerate reports MULTI_CPU
inside the workers), so that is what a CPU config says, with `use_cpu: true`. FSDP and DeepSpeed
need GPUs: `accelerate_config` refuses them on a CPU.

`final_model` is the end of every training run: under FSDP (and ZeRO-3) each rank holds a shard,
so the full weights are gathered first (a collective every rank joins), then only the main process
merges the LoRA adapter into them and returns the model to save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_NAME = "accelerate_config.yaml"


@dataclass(frozen=True)
class FsdpPlan:
    full_shard: bool = True
    auto_wrap: bool = True
    layer_class: str | None = None  # None: accelerate wraps the model's `_no_split_modules`
    activation_checkpointing: bool = False
    cpu_offload: bool = False


@dataclass(frozen=True)
class DistributedPlan:
    """`train.distributed` flattened into plain values (see cogcore/recipe.py for each field)."""

    processes: int = 1
    nodes: int = 1
    machine_rank: int = 0
    strategy: str = "ddp"  # ddp | fsdp | deepspeed
    zero_stage: int = 2
    fsdp: FsdpPlan = field(default_factory=FsdpPlan)
    mixed_precision: str = "bf16"
    main_process_ip: str | None = None
    main_process_port: int = 0

    @property
    def world_size(self) -> int:
        return self.processes * self.nodes

    @property
    def needs_launcher(self) -> bool:
        """Several processes, or a sharding strategy (FSDP on one GPU still offloads and shards state)."""
        return self.world_size > 1 or self.strategy != "ddp"


def plan_from_recipe(cfg) -> DistributedPlan:
    """Flatten a recipe `DistributedConfig` into a `DistributedPlan`."""
    fsdp = FsdpPlan(
        full_shard=cfg.fsdp.full_shard,
        auto_wrap=cfg.fsdp.auto_wrap,
        layer_class=cfg.fsdp.layer_class,
        activation_checkpointing=cfg.fsdp.activation_checkpointing,
        cpu_offload=cfg.fsdp.cpu_offload,
    )
    return DistributedPlan(
        processes=cfg.processes,
        nodes=cfg.nodes,
        machine_rank=cfg.machine_rank,
        strategy=cfg.strategy,
        zero_stage=cfg.zero_stage,
        fsdp=fsdp,
        mixed_precision=cfg.mixed_precision,
        main_process_ip=cfg.main_process_ip,
        main_process_port=cfg.main_process_port,
    )


def accelerate_config(plan: DistributedPlan, gpu: bool, grad_accum: int = 1) -> dict:
    """The accelerate config (as `accelerate config` would write it) for this plan on this machine."""
    if not gpu and plan.strategy != "ddp":
        # Measured: on a CPU accelerate runs an FSDP config as plain MULTI_CPU (replicated) training,
        # and DeepSpeed needs CUDA; refuse rather than silently train another way.
        raise ValueError(f"train.distributed.strategy: {plan.strategy} needs GPUs (none found); use ddp on a CPU")
    # CPUs run fp32: bf16 autocast on a CPU without native bf16 ran ~5x slower, measured on a 2-core machine.
    precision = plan.mixed_precision if gpu else "no"
    config = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "use_cpu": not gpu,
        "mixed_precision": precision,
        "downcast_bf16": "no",
        "num_processes": plan.world_size,
        "num_machines": plan.nodes,
        "machine_rank": plan.machine_rank,
        "main_process_port": plan.main_process_port,
        "rdzv_backend": "static",
        "same_network": True,
        "gpu_ids": "all",
        "enable_cpu_affinity": False,
    }
    if plan.main_process_ip:
        config["main_process_ip"] = plan.main_process_ip
    if plan.strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = _fsdp_config(plan.fsdp)
    elif plan.strategy == "deepspeed":
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = _deepspeed_config(plan.zero_stage, grad_accum, plan.nodes)
    else:
        config["distributed_type"] = "MULTI_GPU" if plan.world_size > 1 else "NO"
    return config


def _fsdp_config(f: FsdpPlan) -> dict:
    config = {
        "fsdp_version": 2,
        # FSDP2 expresses FULL_SHARD / SHARD_GRAD_OP as whether weights are resharded after forward.
        "fsdp_reshard_after_forward": f.full_shard,
        "fsdp_offload_params": f.cpu_offload,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP" if f.auto_wrap else "NO_WRAP",
        # The merged model is saved whole: rank 0 gathers the full state dict at the end.
        "fsdp_state_dict_type": "FULL_STATE_DICT",
        "fsdp_cpu_ram_efficient_loading": False,
        "fsdp_activation_checkpointing": f.activation_checkpointing,
    }
    if f.auto_wrap and f.layer_class:
        config["fsdp_transformer_layer_cls_to_wrap"] = f.layer_class
    return config


def _deepspeed_config(zero_stage: int, grad_accum: int, nodes: int) -> dict:
    config = {
        "zero_stage": zero_stage,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": 1.0,
        "offload_optimizer_device": "none",
        "offload_param_device": "none",
        "zero3_init_flag": False,
    }
    if zero_stage == 3:
        config["zero3_save_16bit_model"] = True  # gather the full weights on save, not per-rank shards
    if nodes > 1:
        config["deepspeed_multinode_launcher"] = "standard"  # torchrun on each node, no pdsh hostfile
    return config


def write_accelerate_config(plan: DistributedPlan, folder: Path, gpu: bool, grad_accum: int = 1) -> Path:
    """Write the accelerate config for this plan into folder; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_NAME
    header = (
        f"# accelerate config generated by cogcore from train.distributed ({plan.strategy}, "
        f"{plan.processes} process(es) x {plan.nodes} node(s), {'GPU' if gpu else 'CPU, gloo'}).\n"
        f"# Run by hand: accelerate launch --config_file {CONFIG_NAME} -m cogcore.train.launch spec.json\n"
    )
    if plan.nodes > 1:
        header += (
            f"# Nodes 1..{plan.nodes - 1}, with this folder on a shared filesystem: the same command with "
            f"--machine_rank N\n"
        )
    path.write_text(header + yaml.safe_dump(accelerate_config(plan, gpu, grad_accum), sort_keys=True))
    return path


def final_model(trainer, model, method: str, lora_scale: float):
    """The trained model with its LoRA adapter merged, on the main process; None on the others.

    Every rank must call this: gathering sharded weights is a collective."""
    gathered = None
    if _is_sharded(trainer):
        # FSDP (FULL_STATE_DICT) / ZeRO-3: the full weights, gathered to rank 0 on the CPU.
        gathered = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if not trainer.is_world_process_zero():
        return None
    if trainer.args.world_size > 1:
        print(f"main process (rank 0 of {trainer.args.world_size}) saves the merged model", flush=True)
    if gathered is None:  # every rank holds the whole model: merge it in place
        return model.merge_and_unload() if method == "lora" else model
    config = (model.get_base_model() if method == "lora" else model).config
    return model_from_state(config, gathered, method, lora_scale)


def model_from_state(config, state: dict, method: str, lora_scale: float):
    """A plain model built from a gathered full state dict, LoRA factors folded into the weights.

    The sharded module cannot be merged in place (its parameters are shards), so a fresh model is
    built from the config and loaded with the gathered weights. A model whose code came with it
    (`trust_remote_code`) registered its class when it loaded, so `from_config` finds that class."""
    from transformers import AutoModelForCausalLM

    plain = merge_lora_state(state, lora_scale) if method == "lora" else dict(state)
    model = AutoModelForCausalLM.from_config(config, dtype=next(iter(plain.values())).dtype)
    result = model.load_state_dict(plain, strict=False)
    missing = set(result.missing_keys) - _tied_keys(model)
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"gathered weights do not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(result.unexpected_keys)[:5]} (was the state dict gathered in full?)"
        )
    return model


def _is_sharded(trainer) -> bool:
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    if getattr(trainer, "is_deepspeed_enabled", False):
        plugin = trainer.accelerator.state.deepspeed_plugin
        return plugin is not None and plugin.zero_stage == 3
    return False


def _tied_keys(model) -> set[str]:
    return {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()


def merge_lora_state(state: dict, scale: float) -> dict:
    """A peft LoRA model's full state dict -> the plain model's, with W + scale * B @ A folded in.

    peft names the wrapped weight `<m>.base_layer.weight` and its factors `<m>.lora_A.<adapter>.weight`
    and `<m>.lora_B.<adapter>.weight` under a `base_model.model.` prefix."""
    prefix = "base_model.model."
    plain, factors = {}, {}
    for key, value in state.items():
        key = key[len(prefix) :] if key.startswith(prefix) else key
        if ".lora_A." in key or ".lora_B." in key:
            module, which = key.split(".lora_")[0], key.split(".lora_")[1][0]
            factors.setdefault(module, {})[which] = value
        elif ".lora_" not in key:
            plain[key.replace(".base_layer.", ".")] = value
    for module, ab in factors.items():
        weight = plain[f"{module}.weight"]
        delta = (ab["B"].float() @ ab["A"].float()) * scale
        plain[f"{module}.weight"] = (weight.float() + delta).to(weight.dtype)
    return plain
