"""Run `train()` in this process, or in several under `accelerate launch`, from one spec.

A training stage calls `launch_stage(...)`. With one process and no sharding strategy it trains
in-process on the model the stage already loaded. Otherwise it writes what a worker needs to the
stage folder (the rows as an Arrow folder, `spec.json`, the accelerate config generated from
`train.distributed`) and runs

    accelerate launch --config_file accelerate_config.yaml -m cogcore.train.launch spec.json

as a subprocess, streaming its output into `launch.log`. Each worker loads the model from the
spec's `ModelSpec` (hub id, folder or GGUF; dtype; remote code; 4-bit), trains its
share, and the main process alone writes the merged model and metrics.json.

The worker entry point can be run by hand on each node of a multi-node job:

    python -m cogcore.train.launch runs/<name>/train/cpt.new/spec.json   # the stage's build folder while it runs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cogcore.io import write_json_atomic
from cogcore.models import ModelSpec
from cogcore.train.distributed import DistributedPlan, write_accelerate_config
from cogcore.train.metrics import METRICS_FILE, TrainMetrics
from cogcore.train.mixing import OnlineMixing
from cogcore.train.trainer import TrainSettings, check_positions, no_rows_message, train

SPEC_NAME = "spec.json"
LOG_NAME = "launch.log"
ROWS_NAME = "rows"
TAIL_LINES = 40
WORKER_FAILED = "cogcore worker failed on rank"


@dataclass(frozen=True)
class TrainSpec:
    """Everything a worker process needs to train; spec.json in the stage folder."""

    model: ModelSpec  # qlora: quantize_4bit, each worker loads NF4 weights onto its own GPU
    rows: str  # an Arrow folder (datasets `save_to_disk`) of {input_ids, labels}
    out_dir: str
    settings: TrainSettings
    label: str
    chat_template: str | None  # set on the tokenizer before training, so the saved model carries it

    def write(self, path: Path) -> Path:
        write_json_atomic(path, asdict(self))
        return path

    @classmethod
    def read(cls, path: Path) -> TrainSpec:
        data = json.loads(Path(path).read_text())
        return cls(
            **{**data, "model": ModelSpec(**data["model"]), "settings": TrainSettings.from_json(data["settings"])}
        )


def save_rows(rows, folder: Path) -> str:
    """The rows as an Arrow folder the workers can `load_from_disk`: the folder a Dataset was
    loaded from (a token cache) when it is that whole folder, else the rows saved into `folder`."""
    from datasets import Dataset, load_from_disk

    if isinstance(rows, Dataset) and rows.cache_files:
        source = Path(rows.cache_files[0]["filename"]).parent
        # Any select/map/shuffle changes the fingerprint: equal means exactly the saved rows.
        if (source / "state.json").exists() and load_from_disk(str(source))._fingerprint == rows._fingerprint:
            return str(source)
    dataset = rows if isinstance(rows, Dataset) else Dataset.from_list(list(rows))
    dataset.save_to_disk(str(folder))
    return str(folder)


def launch_stage(
    model,
    tokenizer,
    rows,
    *,
    folder: Path,
    settings: TrainSettings,
    label: str,
    plan: DistributedPlan,
    model_spec: ModelSpec,
    mixing: OnlineMixing | None = None,
) -> TrainMetrics | None:
    """Train a stage's rows: in-process on `model` (loaded as `model_spec` says) when the plan is one
    plain process, else under accelerate. None on a machine other than machine_rank 0 (that one
    writes the model and the metrics)."""
    if not plan.needs_launcher:
        return train(
            model, tokenizer, rows, out_dir=folder, settings=settings, label=label, model_spec=model_spec, mixing=mixing
        )
    if mixing is not None:
        raise ValueError(f"{label}: the online mixture trains in one process; set train.distributed.processes: 1")
    if not len(rows):
        raise ValueError(no_rows_message(label))
    if model is not None:  # before the rows are written and the workers load the model (they check too)
        check_positions(model, rows, label)
    spec = TrainSpec(
        # A GGUF file was converted by the stage already: the workers read the cached folder instead of racing to it.
        model=replace(model_spec, path=model_spec.local_path()),
        rows=save_rows(rows, folder / ROWS_NAME),
        out_dir=str(folder),
        settings=settings,
        label=label,
        chat_template=getattr(tokenizer, "chat_template", None),
    )
    return launch(spec, plan, folder)


def launch(spec: TrainSpec, plan: DistributedPlan, folder: Path) -> TrainMetrics | None:
    """Train per spec: in this process for a single plain process, else under `accelerate launch`."""
    if not plan.needs_launcher:
        return run_spec(spec)
    import importlib.util

    import torch

    if plan.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise RuntimeError(
            "train.distributed.strategy: deepspeed needs the deepspeed package (pip install 'cogcore[deepspeed]')"
        )
    config = write_accelerate_config(plan, folder, gpu=torch.cuda.is_available(), grad_accum=spec.settings.grad_accum)
    spec_path = spec.write(folder / SPEC_NAME)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        "cogcore.train.launch",
        str(spec_path),
    ]
    _stream(command, folder / LOG_NAME, spec.label)
    if plan.machine_rank != 0:
        return None
    return TrainMetrics.read(Path(spec.out_dir) / METRICS_FILE, stage=spec.label)


def _stream(command: list[str], log_path: Path, label: str) -> None:
    """Run command, echoing its output and keeping it in log_path; raise with its tail on failure."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    errors: deque[str] = deque(maxlen=4)  # the workers' own exceptions; torchrun's summary fills the tail
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        ) as proc,
    ):
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            tail.append(line.rstrip("\n"))
            if WORKER_FAILED in line:
                errors.append(line.rstrip("\n"))
        code = proc.wait()
    if code != 0:
        raise RuntimeError(
            f"{label}: accelerate launch exited with status {code}\n"
            + "".join(f"{e}\n" for e in errors)
            + f"last lines of {log_path}:\n"
            + "\n".join(tail)
        )


def run_spec(spec: TrainSpec) -> TrainMetrics:
    """Load the spec's model and rows and train them; every process of a launch runs this."""
    from datasets import load_from_disk

    model, tokenizer = spec.model.load()
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    rows = load_from_disk(spec.rows)
    out_dir = Path(spec.out_dir)
    metrics = train(
        model, tokenizer, rows, out_dir=out_dir, settings=spec.settings, label=spec.label, model_spec=spec.model
    )
    return _record_world(metrics, out_dir)


def _record_world(metrics: TrainMetrics, out_dir: Path) -> TrainMetrics:
    """Add the process count to metrics.json (main process only) and leave the process group cleanly."""
    import torch.distributed as dist
    from accelerate import PartialState

    world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
    kind = PartialState().distributed_type.value  # what accelerate actually ran: MULTI_CPU, FSDP, DEEPSPEED...
    print(f"cogcore worker rank {rank}/{world} ({kind}) finished {metrics.steps} steps", flush=True)
    metrics = replace(metrics, world_size=world, distributed_type=kind)
    if rank == 0 and (out_dir / METRICS_FILE).exists():
        metrics.write(out_dir / METRICS_FILE)
    if dist.is_initialized():
        dist.barrier()  # no rank leaves before the main one has written the model and metrics
        dist.destroy_process_group()
    return metrics


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m cogcore.train.launch SPEC.json")
    try:
        run_spec(TrainSpec.read(Path(args[0])))
    except Exception as e:
        # One short line per rank (a single pipe write is not interleaved with the other ranks'
        # tracebacks), picked out by the launcher for its error message.
        print(f"{WORKER_FAILED} {os.environ.get('RANK', '0')}: {type(e).__name__}: {e}"[:2000], flush=True)
        raise


if __name__ == "__main__":
    main()
