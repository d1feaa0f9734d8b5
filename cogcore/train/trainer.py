"""One training loop for both training stages: token ids and labels in, a merged model out.

Both continued pretraining and tool-use fine-tuning reduce to the same thing once their text is
tokenized: rows of `input_ids` with `labels` that are -100 wherever a token must carry no loss
(masked facts, prompts, tool results, padding). This module trains such rows with the
transformers Trainer (LoRA through peft, or a full fine-tune), checkpoints every `save_steps`,
resumes from the last checkpoint when a killed run is started again, then merges the adapter and
saves a plain Hugging Face folder.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PreTrainedModel, Trainer, TrainingArguments, set_seed

from cogcore.runner import write_json_atomic
from cogcore.train.loading import count_params, save_model


@dataclass(frozen=True)
class TrainSettings:
    method: str = "lora"  # lora | full
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


def train(model: PreTrainedModel, tokenizer, rows: list[dict], out_dir: Path, settings: TrainSettings,
          label: str) -> dict:
    """Train on rows of {input_ids, labels}; save the merged model to out_dir/model; return metrics."""
    if not rows:
        raise ValueError(f"{label}: no training rows (is the corpus empty after curation?)")
    set_seed(settings.seed)  # the Trainer seeds only after the adapter exists; its init must be seeded too
    model = _with_adapter(model, settings)
    trainable, total = count_params(model)
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"), max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr, warmup_steps=settings.warmup_ratio, lr_scheduler_type="cosine",
        logging_steps=settings.logging_steps, save_steps=settings.save_steps, save_total_limit=2,
        seed=settings.seed, data_seed=settings.seed, report_to="none", use_cpu=not torch.cuda.is_available(),
        # bf16 autocast is ~5x slower on CPUs without native bf16 (STACK-NOTES); GPUs get it.
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0,
        remove_unused_columns=False, disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                      data_collator=pad_collator(tokenizer.pad_token_id))
    last = _last_complete_checkpoint(Path(args.output_dir))
    tokens_before = _tokens_seen(last)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.time() - t0
    metrics = _metrics(trainer, settings, trainable, total, seconds, resumed_from=last, tokens_before=tokens_before)
    merged = model.merge_and_unload() if settings.method == "lora" else model
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


def _tokens_seen(checkpoint: str | None) -> int:
    """Tokens trained before this process started (the resumed state counts them in its total)."""
    if checkpoint is None:
        return 0
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("num_input_tokens_seen") or 0)


def _with_adapter(model: PreTrainedModel, settings: TrainSettings):
    if settings.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    targets = settings.lora_targets if isinstance(settings.lora_targets, str) else list(settings.lora_targets)
    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


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
                         "grad_norm": h.get("grad_norm")} for h in history],
        "trainable_params": trainable, "total_params": total, "resumed_from": resumed_from,
        "note": "tokens_per_s covers this process only; after a resume it excludes earlier steps",
    }
