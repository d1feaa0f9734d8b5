"""eval/results.json: what the eval stage measured, as one typed object.

The eval stage builds an `EvalResults` and writes it; the report and `cogcore compare` read it back:

    results = EvalResults.read(run / "eval" / "results.json")   # None when eval has not run
    results.agentic.accuracy, results.lm_metric("trained", "cogcore_closedbook", "acc")

Task scores stay nested mappings, {model: {task: {metric: value}}}: task and metric names are
whatever lm-eval ran, so they are data, not fields. The parts with fixed fields are classes of their
own, returned by the code that measures them: `AgenticScores` (`agentic.summarize`), `Memorization`
and `CanaryExposures` (`memorization`), `ServingMeasurement` (`throughput.measure_serving`).

A file that is cut off, of the wrong shape, or written by another version of cogcore (a key renamed
since, such as agentic.mean_calls, now calls_per_answer) raises RunFileError naming the file, what
is wrong and the stage to re-run; no reader keeps an older layout alive.

This module imports no other part of the eval package (and no torch or lm-eval), so that the report
and compare can read the file without loading evaluation code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from cogcore.io import write_json_atomic
from cogcore.stage_files import check_fields, read_json_object

RESULTS_FILE = "results.json"
STAGE = "eval"

# {model: {task: {metric: value}}}; in standard_tasks a task lost offline is {"skipped": reason}.
ScoresByModel = dict[str, dict[str, dict[str, float | str]]]


def _to_json(value):
    """Dataclasses as objects without their unset (None) fields, recursively; anything else as it is."""
    if dataclasses.is_dataclass(value):
        return {
            f.name: _to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


@dataclass
class AgenticScores:
    """The agentic check over `n` held-out questions: rates, tool calls per answer and the latency
    of a whole answer, tool calls included. With no question asked, only `n` (0) is set."""

    n: int
    accuracy: float | None = None
    call_rate: float | None = None
    retrieval_hit_rate: float | None = None
    calls_per_answer: float | None = None
    malformed_calls: int | None = None
    seconds_per_answer: float | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None

    def to_json(self) -> dict:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> AgenticScores:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass
class ServingMeasurement:
    """Measured serving speed of the trained model: prefill and decode tokens/s at a batch and
    prompt/output lengths, on `device` (a GPU's name, or "cpu-<cores>core"), with `engine`."""

    engine: str | None = None
    device: str | None = None
    dtype: str | None = None
    batch: int | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    prefill_seconds: float | None = None
    decode_seconds: float | None = None

    def to_json(self) -> dict:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> ServingMeasurement:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass
class ExposureSummary:
    """Exposure of one group of canaries (planted or controls) on one model: mean and max over the
    group, and each canary's figures (`cogcore.canaries.exposure`)."""

    n: int
    mean_exposure: float | None = None
    max_exposure: float | None = None
    mean_exposure_fit: float | None = None
    per_canary: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> ExposureSummary:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass
class CanaryExposures:
    """One model's exposure of the planted canaries and of the never-planted controls."""

    planted: ExposureSummary
    controls: ExposureSummary

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> CanaryExposures:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(
            planted=ExposureSummary.from_json(data["planted"], where=f"{where} (planted)"),
            controls=ExposureSummary.from_json(data["controls"], where=f"{where} (controls)"),
        )


@dataclass
class CanaryScores:
    """memorization.canaries: the trained model's exposures (planted, controls), the base model's
    under `base`, and what they are read against: the exposure of a secret ranked first
    (`max_possible`), how many training documents each canary went into and under which facts
    strategy, and how many candidate secrets each was ranked among."""

    planted: ExposureSummary
    controls: ExposureSummary
    base: CanaryExposures | None = None
    max_possible: float | None = None
    repeats: int | None = None
    strategy: str | None = None
    candidates: int | None = None

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> CanaryScores:
        check_fields(cls, data, where=where, stage=STAGE)
        trained = CanaryExposures.from_json({k: data[k] for k in ("planted", "controls")}, where)
        base = data.get("base")
        return cls(
            **{
                **data,
                "planted": trained.planted,
                "controls": trained.controls,
                "base": None if base is None else CanaryExposures.from_json(base, where=f"{where} (base)"),
            }
        )


@dataclass
class Memorization:
    """Closed-book accuracy per model ({model: acc}) on facts of training documents and on held-out
    facts, and, where canaries were planted, their exposure."""

    train_recall: dict[str, float | None] = field(default_factory=dict)
    heldout_closedbook: dict[str, float | None] = field(default_factory=dict)
    canaries: CanaryScores | None = None

    def to_json(self) -> dict:
        return _to_json(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> Memorization:
        check_fields(cls, data, where=where, stage=STAGE)
        canaries = data.get("canaries")
        return cls(
            **{
                **data,
                "canaries": None if canaries is None else CanaryScores.from_json(canaries, where=f"{where} (canaries)"),
            }
        )


@dataclass
class EvalResults:
    """Everything eval/results.json holds. `lm_eval`: the run's own tasks per model ("trained",
    "base"); `standard_tasks`: the recipe's `eval.lm_eval_tasks`; `questions`, `train_questions`:
    how many were made from held-out and training facts; `warnings`: what the stage warned about;
    `samples`: the first transcripts of eval/agentic.jsonl; `bfcl`: accuracy per category;
    `measured_throughput`: the stage's own measurement, or a list of measurements where more were
    added by hand (from a vLLM server, say). The sections after `memorization` are there when their
    part of the stage ran."""

    lm_eval_version: str | None = None
    backend: str | None = None  # hf | vllm
    lm_eval: ScoresByModel = field(default_factory=dict)
    standard_tasks: ScoresByModel = field(default_factory=dict)
    questions: int | None = None
    train_questions: int | None = None
    warnings: list[str] = field(default_factory=list)
    memorization: Memorization | None = None
    agentic: AgenticScores | None = None
    samples: list[dict] | None = None
    bfcl: dict[str, float] | None = None
    measured_throughput: ServingMeasurement | list[ServingMeasurement] | None = None
    # generated answers on three fact sets: {"source", "changed", "scores": {model: {mode: {set: {n, accuracy,
    # errors, stale_rate?}}}}} (cogcore.eval.fact_sets); transcripts in eval/fact_sets.jsonl
    fact_sets: dict | None = None

    def lm_metric(self, model: str, task: str, metric: str):
        """One figure of the run's lm-eval tasks; None where that model, task or metric did not run."""
        return self.lm_eval.get(model, {}).get(task, {}).get(metric)

    def measurements(self) -> list[ServingMeasurement]:
        measured = self.measured_throughput
        return [] if measured is None else measured if isinstance(measured, list) else [measured]

    def to_json(self) -> dict:
        # The fields every file holds are written even when unset; the sections after them only when there.
        return {**dict.fromkeys(WRITTEN_ALWAYS), **_to_json(self)}

    @classmethod
    def from_json(cls, data: dict, where: str | Path = RESULTS_FILE) -> EvalResults:
        """The results in `data`; RunFileError (naming `where` and the eval stage to re-run) when
        they are not what this version writes."""
        check_fields(cls, data, where=where, stage=STAGE, required=WRITTEN_ALWAYS)
        memorization, agentic, measured = data["memorization"], data.get("agentic"), data.get("measured_throughput")
        if isinstance(measured, list):
            measured = [ServingMeasurement.from_json(m, where=f"{where} (measured_throughput)") for m in measured]
        elif measured is not None:
            measured = ServingMeasurement.from_json(measured, where=f"{where} (measured_throughput)")
        return cls(
            **{
                **data,
                "memorization": Memorization.from_json(memorization, where=f"{where} (memorization)"),
                "agentic": None if agentic is None else AgenticScores.from_json(agentic, f"{where} (agentic)"),
                "measured_throughput": measured,
            }
        )

    @classmethod
    def read(cls, path: Path) -> EvalResults | None:
        """A run's results.json; None when it does not exist (eval has not run)."""
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, where=path)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


# What the eval stage always writes; the sections after them are there when their part ran.
_NAMES = [f.name for f in dataclasses.fields(EvalResults)]
WRITTEN_ALWAYS = tuple(_NAMES[: _NAMES.index("memorization") + 1])
