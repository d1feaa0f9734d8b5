"""One training loop for both training stages: token ids and labels in, a merged model out.

Both continued pretraining and tool-use fine-tuning reduce to the same thing once their text is
tokenized: rows of `input_ids` with `labels` that are -100 wherever a token must carry no loss
(masked facts, prompts, tool results, padding). This module trains such rows with the
transformers Trainer (LoRA through peft, QLoRA on 4-bit NF4 weights, or a full fine-tune),
checkpoints every `save_steps`, resumes from the last checkpoint when a killed run is started again
(the data order goes on where it stopped: tests/train/test_trainer_resume.py), then merges the
adapter and saves a plain Hugging Face folder.

Rows may be packed (`position_ids` restarting per document, see cogcore.train.packing), and may
come as a list or as a datasets Dataset (a token cache, see cogcore.train.data_cache). A token
budget (`max_tokens`) sets the steps; tokens/s and MFU are logged with every loss
(cogcore.train.throughput); gradient checkpointing trades compute for memory on big models.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import torch
from datasets import Dataset
from transformers import PreTrainedModel, Trainer, TrainerState, TrainingArguments, set_seed

from cogcore.model_limits import positions_limit
from cogcore.io import write_json_atomic
from cogcore.models import count_params, save_model
from cogcore.train.packing import packed_collator
from cogcore.train.throughput import ThroughputCallback, gpu_peak_flops, training_flops_per_token

logger = logging.getLogger(__name__)
CONTEXT_SAMPLE_ROWS = 2000  # rows read to measure the mean attention context for MFU


METHODS = ("lora", "full", "qlora")


@dataclass(frozen=True)
class TrainSettings:
    method: str = "lora"  # lora | full | qlora (LoRA on a 4-bit NF4 base; CUDA and bitsandbytes)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str | tuple[str, ...] = "all-linear"
    max_steps: int = 20
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    save_steps: int = 10
    logging_steps: int = 1
    seed: int = 0
    max_tokens: int | None = None  # when set, max_steps is derived from it (see steps_for_tokens)
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False  # qlora: the base is loaded again, unquantized, to merge into

    @classmethod
    def from_section(cls, section, seed: int, trust_remote_code: bool = False) -> TrainSettings:
        """From a `train.cpt` or `train.tools` recipe section."""
        lora = section.lora
        return cls(method=section.method, lora_r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                   lora_targets=lora.target_modules if isinstance(lora.target_modules, str)
                   else tuple(lora.target_modules),
                   max_steps=section.max_steps or cls.max_steps, batch_size=section.batch_size,
                   grad_accum=section.grad_accum, lr=section.lr, warmup_ratio=section.warmup_ratio,
                   save_steps=section.save_steps, logging_steps=section.logging_steps, seed=seed,
                   max_tokens=getattr(section, "max_tokens", None),
                   gradient_checkpointing=section.gradient_checkpointing, trust_remote_code=trust_remote_code)


def pad_collator(pad_id: int):
    """Pad a batch to its longest row: ids with `pad_id`, labels with -100, attention mask 0."""

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def train(model: PreTrainedModel, tokenizer, rows: list[dict] | Dataset, out_dir: Path, settings: TrainSettings,
          label: str) -> dict:
    """Train on rows of {input_ids, labels} (plus `position_ids` when packed), a list or a datasets
    Dataset (e.g. `load_from_disk` of a token cache); save the merged model to out_dir/model; return metrics."""
    if not len(rows):
        raise ValueError(no_rows_message(label))
    check_positions(model, rows, label)
    check_method(settings.method, f"{label}.method")
    dataset = rows if isinstance(rows, Dataset) else Dataset.from_list(rows)
    if len(dataset.data) != len(dataset):  # a select/shuffle view: the Arrow columns read below must be its rows
        dataset = dataset.flatten_indices()
    packed = "position_ids" in dataset.column_names
    row_tokens, n_rows = _token_total(dataset)
    max_steps = settings.max_steps
    if settings.max_tokens:
        max_steps = steps_for_tokens(settings.max_tokens, row_tokens / n_rows, settings.batch_size * settings.grad_accum
                                     * _world_size())
        logger.info("%s: max_tokens %d -> %d steps (%d rows of %.0f tokens)", label, settings.max_tokens, max_steps,
                    n_rows, row_tokens / n_rows)
    set_seed(settings.seed)  # the Trainer seeds only after the adapter exists; its init must be seeded too
    use_cache = getattr(model.config, "use_cache", None)
    # With a cache the packed-sequence mask is silently skipped (see cogcore.train.packing).
    model.config.use_cache = False
    model = _with_adapter(model, settings)
    trainable, total = count_params(model)
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"), max_steps=max_steps,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr, warmup_steps=settings.warmup_ratio, lr_scheduler_type="cosine",
        logging_steps=settings.logging_steps, save_steps=settings.save_steps, save_total_limit=2,
        seed=settings.seed, data_seed=settings.seed, report_to="none", use_cpu=not torch.cuda.is_available(),
        # bf16 autocast is ~5x slower on CPUs without native bf16 (STACK-NOTES); GPUs get it.
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        # Packed rows have no attention mask to count by; they are full but for the last one.
        include_num_input_tokens_seen="all" if packed else "non_padding", dataloader_num_workers=0,
        remove_unused_columns=False, disable_tqdm=False, activation_checkpointing=settings.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if settings.gradient_checkpointing else None,
        # Every trainable parameter gets a gradient each step; DDP need not search the graph for unused ones.
        ddp_find_unused_parameters=False,
    )
    throughput = _throughput_callback(model, dataset, total)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=_collator(model, tokenizer, packed),
                      callbacks=[throughput])
    last = _last_complete_checkpoint(Path(args.output_dir))
    tokens_before = _tokens_seen(last)
    t0 = time.time()
    if last is not None and _checkpoint_step(last) >= max_steps:
        # Resumed at its last step, the Trainer (5.23, measured) trains one step more: load the end state instead.
        trainer._load_from_checkpoint(last)
        trainer.state = TrainerState.load_from_json(str(Path(last) / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=last)
    seconds = time.time() - t0
    model.config.use_cache = use_cache
    metrics = _metrics(trainer, settings, trainable, total, seconds, resumed_from=last, tokens_before=tokens_before)
    metrics.update(packed=packed, gradient_checkpointing=settings.gradient_checkpointing, max_tokens=settings.max_tokens,
                   mean_row_tokens=round(row_tokens / n_rows, 1), epochs=round(metrics["tokens_trained"] / row_tokens, 3),
                   **_throughput_summary(metrics["log_history"], throughput))
    # Under accelerate every rank gets here; sharded weights are gathered (all ranks join), then
    # only the main process merges and writes (cogcore.train.distributed.final_model).
    from cogcore.train.distributed import final_model

    if settings.method == "qlora":  # 4-bit weights are not merged into: the adapter goes onto a bf16 base
        merged = _merge_onto_bf16_base(model, out_dir, settings) if trainer.is_world_process_zero() else None
    else:
        merged = final_model(trainer, model, settings.method, settings.lora_alpha / settings.lora_r)
    if merged is not None:
        save_model(merged, tokenizer, out_dir / "model")
        write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def _last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was written to the end. The Trainer writes trainer_state.json
    last, so a run killed while saving leaves a folder without it (or with it cut short); resuming
    from such a folder would fail, or silently restart at step 0."""
    steps = [(int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    for _, path in sorted(steps, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None


def _checkpoint_step(checkpoint: str) -> int:
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("global_step") or 0)


def _tokens_seen(checkpoint: str | None) -> int:
    """Tokens trained before this process started (the resumed state counts them in its total)."""
    if checkpoint is None:
        return 0
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("num_input_tokens_seen") or 0)


def no_rows_message(label: str) -> str:
    return (f"{label}: no training rows: the training documents gave no text to train on (is every document held "
            f"out by curate.heldout_fraction, or the corpus empty after curation?)")


def check_positions(model: PreTrainedModel, rows: list[dict] | Dataset, label: str) -> None:
    """Rows longer than the model's positions fail (learned position embeddings) or train positions
    the model never saw while memory grows with the length (rotary): refuse them before training.
    Validation checks seq_len the same way where the model is on disk; a hub model is first seen here."""
    found = positions_limit(model.config.to_dict())
    if found is None or not len(rows):
        return
    if isinstance(rows, Dataset):  # Arrow batches: no row becomes Python, and a select/shuffle view is honoured
        batches = rows.select_columns(["input_ids"]).with_format("arrow").iter(batch_size=10_000)
        longest = max(pc.max(pc.list_value_length(b["input_ids"])).as_py() or 0 for b in batches)
    else:
        longest = max(len(r["input_ids"]) for r in rows)
    limit, source = found
    if longest > limit:
        raise ValueError(f"{label}.seq_len: rows of {longest} tokens, but the base model has {limit} positions "
                         f"({source} in its config); set {label}.seq_len to {limit} or less")


def check_method(method: str, field: str) -> None:
    """Fail at once, naming the recipe field, where the method cannot run on this machine."""
    if method not in METHODS:
        raise ValueError(f"{field}: unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if method != "qlora":
        return
    missing = []
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU is visible")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes is not installed (pip install 'cogcore[qlora]')")
    if missing:
        raise RuntimeError(f"{field}: qlora (LoRA on 4-bit NF4 weights) needs a CUDA GPU and bitsandbytes, but "
                           f"{' and '.join(missing)}; use method lora or full on this machine")


def steps_for_tokens(max_tokens: int, tokens_per_row: float, rows_per_step: int) -> int:
    """Optimizer steps that train `max_tokens` tokens (rounded up), at least 1."""
    return max(1, math.ceil(max_tokens / (tokens_per_row * rows_per_step)))


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate/torchrun for each process


def _token_total(dataset: Dataset) -> tuple[int, int]:
    """(tokens, rows), read from the Arrow column without loading the rows into Python."""
    lengths = pc.list_value_length(dataset.data.column("input_ids"))
    return int(pc.sum(lengths).as_py() or 0), len(dataset)


def _collator(model, tokenizer, packed: bool):
    if not packed:
        return pad_collator(tokenizer.pad_token_id)
    # Flash attention reads packed documents from position ids only in a one-row batch (varlen).
    flatten = "flash" in str(getattr(model.config, "_attn_implementation", "") or "")
    return packed_collator(tokenizer.pad_token_id, flatten=flatten)


def _mean_context(dataset: Dataset) -> float:
    """Mean keys a token attends to under the causal (packed) mask, over the first rows: mean(position + 1)."""
    n = min(len(dataset), CONTEXT_SAMPLE_ROWS)
    if "position_ids" in dataset.column_names:
        positions = pc.list_flatten(dataset.data.column("position_ids").slice(0, n))
        return pc.mean(positions).as_py() + 1
    lengths = pc.list_value_length(dataset.data.column("input_ids").slice(0, n)).to_pylist()
    return sum(k * (k + 1) / 2 for k in lengths) / sum(lengths)


def _throughput_callback(model, dataset: Dataset, n_params: int) -> ThroughputCallback:
    flops = training_flops_per_token(model.config.to_dict(), _mean_context(dataset), n_params)
    peak = gpu_peak_flops()
    return ThroughputCallback(flops, peak[1] if peak else None, _world_size())


def _throughput_summary(history: list[dict], callback: ThroughputCallback) -> dict:
    """Mean tokens/s and MFU over the logged steps, the first left out (it carries start-up costs)."""
    logged = [h for h in history if h.get("tokens_per_s")]
    steady = logged[1:] or logged
    mfus = [h["mfu"] for h in steady if h.get("mfu") is not None]
    return {"tokens_per_s_logged": round(sum(h["tokens_per_s"] for h in steady) / len(steady), 1) if steady else None,
            "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
            "flops_per_token": callback.flops_per_token, "peak_flops": callback.peak}


def _with_adapter(model: PreTrainedModel, settings: TrainSettings):
    if settings.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    if settings.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Casts norms to fp32 and makes inputs require grad (needed with checkpointing on frozen 4-bit weights).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})

    targets = settings.lora_targets if isinstance(settings.lora_targets, str) else list(settings.lora_targets)
    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _merge_onto_bf16_base(model, out_dir: Path, settings: TrainSettings):
    """QLoRA's adapter merged into the unquantized base (bf16), as a plain model. Merging into the
    4-bit weights would round the update away and leave a bitsandbytes model behind."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = out_dir / "adapter"
    model.save_pretrained(adapter, safe_serialization=True)
    base = AutoModelForCausalLM.from_pretrained(model.get_base_model().name_or_path, dtype=torch.bfloat16,
                                                use_safetensors=True, trust_remote_code=settings.trust_remote_code)
    return PeftModel.from_pretrained(base, adapter).merge_and_unload()


def _metrics(trainer: Trainer, settings: TrainSettings, trainable: int, total: int, seconds: float,
             resumed_from: str | None, tokens_before: int = 0) -> dict:
    history = [h for h in trainer.state.log_history if "loss" in h]
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    losses = [h["loss"] for h in history]
    return {
        "method": settings.method, "steps": trainer.state.global_step, "tokens_trained": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round((tokens - tokens_before) / seconds, 1) if seconds else None,
        "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
        "perplexity_final": math.exp(losses[-1]) if losses and losses[-1] < 50 else None,
        "log_history": [{"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate"),
                         "grad_norm": h.get("grad_norm"), "tokens_per_s": h.get("tokens_per_s"),
                         "mfu": h.get("mfu")} for h in history],
        "trainable_params": trainable, "total_params": total, "resumed_from": resumed_from,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "note": "tokens_per_s covers this process only; after a resume it excludes earlier steps",
    }
