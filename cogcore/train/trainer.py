"""One training loop for both training stages: token ids and labels in, a merged model out.

Both continued pretraining and tool-use fine-tuning reduce to the same thing once their text is
tokenized: rows of `input_ids` with `labels` that are IGNORE_INDEX wherever a token must carry no
loss (masked facts, prompts, tool results, padding). This module trains such rows with the
transformers Trainer (LoRA through peft, QLoRA on 4-bit NF4 weights, or a full fine-tune),
checkpoints every `save_steps`, resumes from the last checkpoint when a killed run is started again
(the data order goes on where it stopped: tests/train/test_trainer_resume.py), then merges the
adapter, saves a plain Hugging Face folder and records a `TrainMetrics` (cogcore.train.metrics).

Rows may be packed (`position_ids` restarting per document, see cogcore.train.packing), and may
come as a list or as a datasets Dataset (a token cache, see cogcore.train.data_cache). A token
budget (`max_tokens`) sets the steps; tokens/s and MFU are logged with every loss
(cogcore.train.throughput); gradient checkpointing trades compute for memory on big models.

    settings = TrainSettings.from_section(recipe.train.cpt, seed=recipe.seed)
    metrics = train(model, tokenizer, rows, out_dir=folder, settings=settings, label="train.cpt", model_spec=spec)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow.compute as pc
import torch
from datasets import Dataset
from transformers import PreTrainedModel, Trainer, TrainerState, TrainingArguments, set_seed

from cogcore.model_limits import positions_limit
from cogcore.models import ModelSpec, count_params, save_model
from cogcore.train.distributed import final_model
from cogcore.train.metrics import METRICS_FILE, TOKENS_PER_S_NOTE, LoggedStep, TrainMetrics
from cogcore.train.mixing import OnlineMixing
from cogcore.train.packing import IGNORE_INDEX, packed_collator
from cogcore.train.throughput import ThroughputCallback, gpu_peak_flops, training_flops_per_token

logger = logging.getLogger(__name__)
CONTEXT_SAMPLE_ROWS = 2000  # rows read to measure the mean attention context for MFU


METHODS = ("lora", "full", "qlora")


@dataclass(frozen=True)
class TrainSettings:
    """A `train.cpt` or `train.tools` recipe section as `train()` takes it. Built by `from_section`
    only, so it holds no defaults of its own: the recipe schema (cogcore/recipe.py) has them, and
    documents each field."""

    method: str  # lora | full | qlora (LoRA on a 4-bit NF4 base; CUDA and bitsandbytes)
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: str | tuple[str, ...]
    max_steps: int | None  # None when max_tokens sets the steps
    batch_size: int
    grad_accum: int
    lr: float
    warmup_ratio: float
    save_steps: int
    logging_steps: int
    seed: int
    max_tokens: int | None  # train.cpt's token budget (see steps_for_tokens)
    gradient_checkpointing: bool
    ordered: bool  # rows train in the order given (a curriculum), not shuffled
    report_to: tuple[str, ...]  # the Trainer's tracking integrations (cogcore.tracking sets where they write)

    @classmethod
    def from_section(cls, section, seed: int, ordered: bool = False, report_to: tuple[str, ...] = ()) -> TrainSettings:
        """From a `train.cpt` or `train.tools` recipe section (`CptTrainConfig`, `StageTrainConfig`)."""
        lora = section.lora
        targets = lora.target_modules
        return cls(
            method=section.method,
            lora_r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            lora_targets=targets if isinstance(targets, str) else tuple(targets),
            max_steps=section.max_steps,
            batch_size=section.batch_size,
            grad_accum=section.grad_accum,
            lr=section.lr,
            warmup_ratio=section.warmup_ratio,
            save_steps=section.save_steps,
            logging_steps=section.logging_steps,
            seed=seed,
            max_tokens=getattr(section, "max_tokens", None),  # train.tools has no token budget
            gradient_checkpointing=section.gradient_checkpointing,
            ordered=ordered,
            report_to=tuple(report_to),
        )

    @classmethod
    def from_json(cls, data: dict) -> TrainSettings:
        """Back from `asdict` and JSON (a launch's spec.json): JSON turned the tuple of
        `lora_targets` into a list, and a frozen dataclass is hashable with tuples only."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def pad_collator(pad_id: int):
    """Pad a batch to its longest row: ids with `pad_id`, labels with IGNORE_INDEX, attention mask 0."""

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def train(
    model: PreTrainedModel,
    tokenizer,
    rows: list[dict] | Dataset,
    *,
    out_dir: Path,
    settings: TrainSettings,
    label: str,
    model_spec: ModelSpec,
    mixing: OnlineMixing | None = None,
) -> TrainMetrics:
    """Train on rows of {input_ids, labels} (plus `position_ids` when packed), a list or a datasets
    Dataset (e.g. `load_from_disk` of a token cache); save the merged model to out_dir/model and
    the metrics to out_dir/metrics.json, and return them. `model_spec` describes `model` as it was
    loaded: QLoRA loads its base again, unquantized, to merge into."""
    # 1. Refuse what cannot train, before anything is built.
    dataset = _checked_dataset(model, rows, settings.method, label)
    max_steps = _max_steps(settings, dataset, label)
    # 2. The model to train: seeded adapter, no cache (with a cache transformers skips the packed-
    # sequence mask without a word, see cogcore.train.packing); the Trainer seeds only after the
    # adapter exists, so its initialization must be seeded here.
    set_seed(settings.seed)
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    model = _with_adapter(model, settings)
    params = count_params(model)
    # 3. Train, or resume from the last complete checkpoint.
    throughput = _throughput_callback(model, dataset, params[1])
    packed = "position_ids" in dataset.column_names
    collate = _collator(model, tokenizer, packed)
    callbacks, sampler = [throughput], None
    if mixing is not None:  # the bi-level loop: rows drawn by the mixture, its weights moved as training goes
        rows_needed = max_steps * settings.batch_size * settings.grad_accum
        sampler, outer = mixing.attach(dataset, collate, rows_needed)
        callbacks.append(outer)
    trainer = (_MixtureTrainer if sampler is not None else Trainer)(
        model=model,
        args=_training_arguments(out_dir, settings, max_steps=max_steps, packed=packed, label=label),
        train_dataset=dataset,
        data_collator=collate,
        callbacks=callbacks,
    )
    if sampler is not None:
        trainer.mixture_sampler = sampler
    # Tokens/s and MFU go into each log before the tracking integrations (added first) read it.
    trainer.callback_handler.callbacks.remove(throughput)
    trainer.callback_handler.callbacks.insert(0, throughput)
    run = _run_or_resume(trainer, max_steps)
    model.config.use_cache = use_cache
    # 4. Merge, save and record (the main process only).
    metrics = _metrics(trainer, settings, dataset, params=params, run=run, throughput=throughput)
    merged = _final_model(trainer, model, settings, out_dir, model_spec)
    if merged is not None:
        save_model(merged, tokenizer, out_dir / "model")
        metrics.write(out_dir / METRICS_FILE)
    return metrics


def _checked_dataset(model: PreTrainedModel, rows: list[dict] | Dataset, method: str, label: str) -> Dataset:
    """The rows as a Dataset whose Arrow columns are its rows; errors naming the recipe field first."""
    if not len(rows):
        raise ValueError(no_rows_message(label))
    check_positions(model, rows, label)
    check_method(method, f"{label}.method")
    dataset = rows if isinstance(rows, Dataset) else Dataset.from_list(rows)
    if len(dataset.data) != len(dataset):  # a select/shuffle view: the Arrow columns read later must be its rows
        dataset = dataset.flatten_indices()
    return dataset


def _max_steps(settings: TrainSettings, dataset: Dataset, label: str) -> int:
    if not settings.max_tokens:
        return settings.max_steps
    row_tokens, n_rows = _token_total(dataset)
    rows_per_step = settings.batch_size * settings.grad_accum * _world_size()
    steps = steps_for_tokens(settings.max_tokens, row_tokens / n_rows, rows_per_step)
    logger.info(
        "%s: max_tokens %d -> %d steps (%d rows of %.0f tokens)",
        label,
        settings.max_tokens,
        steps,
        n_rows,
        row_tokens / n_rows,
    )
    return steps


class _MixtureTrainer(Trainer):
    """A Trainer that draws its rows from the online mixture's sampler (cogcore.train.mixing)."""

    mixture_sampler = None

    def _get_train_sampler(self, train_dataset=None):
        return self.mixture_sampler


def _training_arguments(
    out_dir: Path, settings: TrainSettings, max_steps: int, packed: bool, label: str
) -> TrainingArguments:
    gpu = torch.cuda.is_available()
    checkpointing = settings.gradient_checkpointing
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        max_steps=max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr,
        warmup_steps=settings.warmup_ratio,  # below 1: a share of max_steps
        lr_scheduler_type="cosine",
        logging_steps=settings.logging_steps,
        save_steps=settings.save_steps,
        save_total_limit=2,
        seed=settings.seed,
        data_seed=settings.seed,
        train_sampling_strategy="sequential" if settings.ordered else "random",
        report_to=list(settings.report_to) or "none",
        run_name=label,
        use_cpu=not gpu,
        # CPUs train in fp32: bf16 autocast on a CPU without native bf16 ran ~5x slower, measured
        # on a 2-core machine.
        bf16=gpu and torch.cuda.is_bf16_supported(),
        # Packed rows have no attention mask to count by; they are full but for the last one.
        include_num_input_tokens_seen="all" if packed else "non_padding",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        # Every trainable parameter gets a gradient each step; DDP need not search the graph for unused ones.
        ddp_find_unused_parameters=False,
    )


@dataclass(frozen=True)
class _Run:
    """How this process's training went: its time, and where it went on from."""

    seconds: float
    resumed_from: str | None
    tokens_before: int  # tokens trained before this process started (the resumed state counts them)


def _run_or_resume(trainer: Trainer, max_steps: int) -> _Run:
    last = _last_complete_checkpoint(Path(trainer.args.output_dir))
    tokens_before = _tokens_seen(last)
    t0 = time.time()
    if last is not None and _checkpoint_step(last) >= max_steps:
        # Resumed at its last step, the Trainer (5.23, measured) trains one step more: load the end state instead.
        trainer._load_from_checkpoint(last)
        trainer.state = TrainerState.load_from_json(str(Path(last) / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=last)
    return _Run(seconds=time.time() - t0, resumed_from=last, tokens_before=tokens_before)


def _final_model(trainer: Trainer, model, settings: TrainSettings, out_dir: Path, model_spec: ModelSpec):
    """The merged model on the main process, None on the others. Under accelerate every rank gets
    here: sharded weights are gathered first (all ranks join, cogcore.train.distributed.final_model)."""
    if settings.method == "qlora":  # 4-bit weights are not merged into: the adapter goes onto a bf16 base
        return _merge_onto_bf16_base(model, out_dir, model_spec) if trainer.is_world_process_zero() else None
    return final_model(trainer, model, settings.method, settings.lora_alpha / settings.lora_r)


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
    return (
        f"{label}: no training rows: the training documents gave no text to train on (is every document held "
        f"out by curate.heldout_fraction, or the corpus empty after curation?)"
    )


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
        raise ValueError(
            f"{label}.seq_len: rows of {longest} tokens, but the base model has {limit} positions "
            f"({source} in its config); set {label}.seq_len to {limit} or less"
        )


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
        raise RuntimeError(
            f"{field}: qlora (LoRA on 4-bit NF4 weights) needs a CUDA GPU and bitsandbytes, but "
            f"{' and '.join(missing)}; use method lora or full on this machine"
        )


def rows_read(settings: TrainSettings, rows: Dataset, processes: int = 1) -> int:
    """How many rows a run of these settings reads from `rows` (every row at most once counted)."""
    steps = settings.max_steps
    if settings.max_tokens:
        row_tokens, n_rows = _token_total(rows)
        steps = steps_for_tokens(settings.max_tokens, row_tokens / max(n_rows, 1), settings.batch_size)
    return min(len(rows), steps * settings.batch_size * settings.grad_accum * processes)


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


def _throughput_summary(history: list[LoggedStep], callback: ThroughputCallback) -> dict:
    """Mean tokens/s and MFU over the logged steps, the first left out (it carries start-up costs)."""
    logged = [h for h in history if h.tokens_per_s]
    steady = logged[1:] or logged
    mfus = [h.mfu for h in steady if h.mfu is not None]
    return {
        "tokens_per_s_logged": round(sum(h.tokens_per_s for h in steady) / len(steady), 1) if steady else None,
        "mfu": round(sum(mfus) / len(mfus), 4) if mfus else None,
        "flops_per_token": callback.flops_per_token,
        "peak_flops": callback.peak,
    }


def _with_adapter(model: PreTrainedModel, settings: TrainSettings):
    if settings.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    if settings.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Casts norms to fp32 and makes inputs require grad (needed with checkpointing on frozen 4-bit weights).
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=settings.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )

    targets = settings.lora_targets if isinstance(settings.lora_targets, str) else list(settings.lora_targets)
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _merge_onto_bf16_base(model, out_dir: Path, model_spec: ModelSpec):
    """QLoRA's adapter merged into the unquantized base (bf16), as a plain model. Merging into the
    4-bit weights would round the update away and leave a bitsandbytes model behind. The base loads
    as the stage loaded it (path, remote code), but unquantized."""
    from peft import PeftModel

    adapter = out_dir / "adapter"
    model.save_pretrained(adapter, safe_serialization=True)
    base = replace(model_spec, dtype="bfloat16", quantize_4bit=False).load_model()
    return PeftModel.from_pretrained(base, adapter).merge_and_unload()


def _metrics(
    trainer: Trainer,
    settings: TrainSettings,
    dataset: Dataset,
    params: tuple[int, int],
    run: _Run,
    throughput: ThroughputCallback,
) -> TrainMetrics:
    history = [_logged_step(h) for h in trainer.state.log_history if "loss" in h]
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    losses = [h.loss for h in history]
    row_tokens, n_rows = _token_total(dataset)
    return TrainMetrics(
        method=settings.method,
        steps=trainer.state.global_step,
        tokens_trained=tokens,
        seconds=round(run.seconds, 2),
        tokens_per_s=round((tokens - run.tokens_before) / run.seconds, 1) if run.seconds else None,
        first_loss=losses[0] if losses else None,
        final_loss=losses[-1] if losses else None,
        perplexity_final=math.exp(losses[-1]) if losses and losses[-1] < 50 else None,
        log_history=history,
        trainable_params=params[0],
        total_params=params[1],
        resumed_from=run.resumed_from,
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        packed="position_ids" in dataset.column_names,
        gradient_checkpointing=settings.gradient_checkpointing,
        max_tokens=settings.max_tokens,
        mean_row_tokens=round(row_tokens / n_rows, 1),
        epochs=round(tokens / row_tokens, 3),
        note=TOKENS_PER_S_NOTE,
        world_size=trainer.args.world_size,
        **_throughput_summary(history, throughput),
    )


def _logged_step(entry: dict) -> LoggedStep:
    """A Trainer log entry with a loss (ThroughputCallback adds tokens_per_s and mfu to it)."""
    return LoggedStep(
        step=entry["step"],
        loss=entry["loss"],
        learning_rate=entry.get("learning_rate"),
        grad_norm=entry.get("grad_norm"),
        tokens_per_s=entry.get("tokens_per_s"),
        mfu=entry.get("mfu"),
    )
