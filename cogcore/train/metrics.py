"""What a training stage records for the report and `cogcore compare`: train/cpt/metrics.json and
train/tools/metrics.json, one `TrainMetrics` each.

`cogcore.train.trainer.train` fills in the training figures and writes the file; a launched worker
adds what accelerate ran (`cogcore.train.launch`); the stage adds its data counts and, for
train.tools, the chat template it chose. A stage that did not train writes
`TrainMetrics.skipped_stage(reason)`.

    metrics = TrainMetrics.read(run / "train/cpt/metrics.json")   # None when the stage has not run
    if metrics is not None and not metrics.skipped:
        print(metrics.steps, metrics.tokens_trained, metrics.final_loss)

This module imports no other part of the train package (and no torch), so that any reader of the
file (the report, compare) can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from cogcore.io import write_json_atomic
from cogcore.stage_files import check_fields, read_json_object

METRICS_FILE = "metrics.json"
TOKENS_PER_S_NOTE = "tokens_per_s covers this process only; after a resume it excludes earlier steps"


@dataclass(frozen=True)
class LoggedStep:
    """One logged optimizer step (every `logging_steps`)."""

    step: int
    loss: float
    learning_rate: float | None
    grad_norm: float | None
    tokens_per_s: float | None  # over the steps since the previous log, this process
    mfu: float | None  # model FLOPs utilization of those steps; None where the device's peak is unknown

    @classmethod
    def from_json(cls, data: dict, where: str | Path, stage: str) -> LoggedStep:
        check_fields(cls, data, where=where, stage=stage)
        return cls(**data)


@dataclass(frozen=True)
class TrainMetrics:
    """A training stage's figures. Every field but the last six is set when the stage trained and
    None when it was skipped (`skipped`, with its `reason`)."""

    method: str | None = None  # lora | full | qlora
    steps: int | None = None  # optimizer steps done
    tokens_trained: int | None = None  # input tokens seen over all processes, resumed steps included
    seconds: float | None = None  # wall time of this process's training
    tokens_per_s: float | None = None  # this process's tokens / seconds (see `note`)
    first_loss: float | None = None
    final_loss: float | None = None
    perplexity_final: float | None = None  # exp(final_loss); None where the loss is above 50
    log_history: list[LoggedStep] | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    resumed_from: str | None = None  # the checkpoint this process went on from
    device: str | None = None  # the GPU's name, or "cpu"
    packed: bool | None = None  # several documents per row (position ids)
    gradient_checkpointing: bool | None = None
    max_tokens: int | None = None  # the token budget the steps were derived from
    mean_row_tokens: float | None = None
    epochs: float | None = None  # tokens trained / tokens in the rows
    tokens_per_s_logged: float | None = None  # mean over the logged steps, the first left out
    mfu: float | None = None  # mean over the same steps
    flops_per_token: float | None = None  # training FLOPs per token of this model at its mean context
    peak_flops: float | None = None  # the device's dense bf16 peak; None where unknown
    note: str | None = None
    # Set by a launched worker (cogcore.train.launch): processes, and what accelerate ran.
    world_size: int = 1
    distributed_type: str | None = None  # MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED; None: the stage's own process
    # Set by the stage: its data counts (train.cpt: tokens, masked tokens, canaries, toolformer...;
    # train.tools: conversations by kind, rows) and train.tools' chat template {template, reason}.
    data: dict[str, Any] | None = None
    chat_template: dict[str, str] | None = None
    skipped: bool = False
    reason: str | None = None  # why the stage did not train

    @classmethod
    def skipped_stage(cls, reason: str, chat_template: dict | None = None) -> TrainMetrics:
        return cls(skipped=True, reason=reason, chat_template=chat_template)

    def with_data(self, data: dict, chat_template: dict | None = None) -> TrainMetrics:
        return replace(self, data=data, chat_template=chat_template)

    def to_json(self) -> dict:
        if self.skipped:
            record = {"skipped": True, "reason": self.reason}
            return record if self.chat_template is None else {**record, "chat_template": self.chat_template}
        return {k: v for k, v in asdict(self).items() if k not in ("skipped", "reason")}

    @classmethod
    def from_json(cls, data: dict, where: str | Path = METRICS_FILE, stage: str = "the train stage") -> TrainMetrics:
        """The metrics in `data`; RunFileError (naming `where` and the `stage` to re-run) when they
        are not what this version writes."""
        skipped = isinstance(data, dict) and data.get("skipped") is True
        if skipped:
            check_fields(_Skipped, data, where=where, stage=stage)
            return cls(**data)
        check_fields(cls, data, where=where, stage=stage, required=TRAINED_FIELDS)
        steps = [LoggedStep.from_json(h, where=f"{where} (log_history)", stage=stage) for h in data["log_history"]]
        return cls(**{**data, "log_history": steps})

    @classmethod
    def read(cls, path: Path, stage: str | None = None) -> TrainMetrics | None:
        """A run's metrics.json; None when it does not exist. `stage` (for the error message)
        defaults to the folder's: train/cpt -> train.cpt."""
        data = read_json_object(path)
        if data is None:
            return None
        return cls.from_json(data, where=path, stage=stage or f"train.{Path(path).parent.name}")

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


# What train() always writes; the fields after `note` come from the launcher and the stage.
_NAMES = [f.name for f in fields(TrainMetrics)]
TRAINED_FIELDS = tuple(_NAMES[: _NAMES.index("note") + 1])


@dataclass(frozen=True)
class _Skipped:
    """The fields of a skipped stage's file (checked by TrainMetrics.from_json)."""

    skipped: bool
    reason: str | None
    chat_template: dict[str, str] | None = None
