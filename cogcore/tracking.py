"""Experiment tracking: training curves and evaluation figures in TensorBoard, Weights & Biases or
MLflow, as a team already reads its runs.

The recipe's `tracking` section names the backends. Everything stays in the run directory unless
the recipe says `online: true`: TensorBoard event files under RUN_DIR/tracking/tensorboard/<stage>,
W&B in offline mode under RUN_DIR/tracking/wandb (`wandb sync` uploads it later), MLflow in a file
store at RUN_DIR/tracking/mlruns (`mlflow ui --backend-store-uri RUN_DIR/tracking/mlruns`).

Training logs through the Trainer's own integrations (`report_to`), which read their settings
from environment variables: `environment()` sets them for the length of a stage and restores them.
The evaluation figures are logged once, at the end of the eval stage, by `log_figures()`.

    with environment(tracking, run_dir, "train.cpt"):
        train(..., settings=TrainSettings.from_section(cfg, seed, report_to=tracking.backends))
    log_figures(tracking, run_dir, "eval", {"closed_book/acc": 0.41, ...})
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("tensorboard", "wandb", "mlflow")
FOLDER = "tracking"  # inside the run directory
# The package each backend needs, and the extra that installs it.
PACKAGES = {
    "tensorboard": ("tensorboard", "cogcore"),
    "wandb": ("wandb", "cogcore[wandb]"),
    "mlflow": ("mlflow", "cogcore[mlflow]"),
}


# What the integrations set for themselves while they run (an experiment id MLflow's callback would
# reuse in the next stage): restored with ours.
_SET_BY_INTEGRATIONS = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "WANDB_SERVICE")


@dataclass(frozen=True)
class Tracking:
    """The recipe's `tracking` section as this module takes it."""

    backends: tuple[str, ...]  # empty: nothing is tracked
    project: str  # W&B project, MLflow experiment
    online: bool  # W&B and MLflow send to their servers (as configured in the environment)

    @classmethod
    def from_section(cls, section, recipe_name: str) -> Tracking:
        return cls(tuple(section.report_to), section.project or recipe_name, section.online)


def missing_package(backend: str) -> str | None:
    """What to install for `backend`, or None when its package is importable."""
    package, extra = PACKAGES[backend]
    return None if importlib.util.find_spec(package) else f"pip install '{extra}' (the {package} package)"


def folder(run_dir: Path) -> Path:
    return run_dir / FOLDER


def variables(tracking: Tracking, run_dir: Path, stage: str) -> dict[str, str]:
    """The environment the Trainer's integrations read for `stage`."""
    root = folder(run_dir).resolve()
    env: dict[str, str] = {}
    if "tensorboard" in tracking.backends:
        env["TENSORBOARD_LOGGING_DIR"] = str(root / "tensorboard" / stage)
    if "wandb" in tracking.backends:
        env |= {"WANDB_DIR": str(root), "WANDB_PROJECT": tracking.project, "WANDB_SILENT": "true"}
        if not tracking.online:
            env["WANDB_MODE"] = "offline"
    if "mlflow" in tracking.backends:
        env["MLFLOW_EXPERIMENT_NAME"] = tracking.project
        if not tracking.online or "MLFLOW_TRACKING_URI" not in os.environ:
            # A file store needs no database package; MLflow 3 keeps it in maintenance mode behind this switch.
            env |= {"MLFLOW_TRACKING_URI": (root / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"}
    return env


@contextmanager
def environment(tracking: Tracking, run_dir: Path, stage: str) -> Iterator[None]:
    """Set the integrations' variables for a stage (child processes inherit them), then restore."""
    env = variables(tracking, run_dir, stage)
    if env:
        folder(run_dir).mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in [*env, *_SET_BY_INTEGRATIONS]}
    os.environ.update(env)
    try:
        yield
    finally:
        if "wandb" in tracking.backends:
            _finish_wandb()  # the Trainer's callback leaves its run open until the process exits
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def flat_figures(data, prefix: str = "") -> dict[str, float]:
    """Every finite number in nested dicts, keyed by its path ("closed_book/acc")."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out |= flat_figures(value, f"{prefix}{key}/")
    elif isinstance(data, (int, float)) and not isinstance(data, bool) and math.isfinite(data):
        out[prefix.rstrip("/")] = float(data)
    return out


def log_figures(tracking: Tracking, run_dir: Path, stage: str, figures: Mapping[str, float]) -> None:
    """Log a stage's final figures to every backend, as one step (0)."""
    if not tracking.backends or not figures:
        return
    with environment(tracking, run_dir, stage):
        if "tensorboard" in tracking.backends:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(log_dir=os.environ["TENSORBOARD_LOGGING_DIR"]) as writer:
                for name, value in figures.items():
                    writer.add_scalar(name, value, 0)
        if "wandb" in tracking.backends:
            import wandb

            run = wandb.init(
                project=tracking.project,
                name=f"{run_dir.name}/{stage}",
                job_type=stage,
                dir=os.environ["WANDB_DIR"],
                reinit="finish_previous",
            )
            run.log(dict(figures))
            run.finish()
        if "mlflow" in tracking.backends:
            import mlflow

            mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
            mlflow.set_experiment(tracking.project)
            with mlflow.start_run(run_name=f"{run_dir.name}/{stage}"):
                mlflow.log_metrics({_mlflow_key(k): v for k, v in figures.items()})


def _finish_wandb() -> None:
    import wandb

    if wandb.run is not None:
        wandb.run.finish()


def _mlflow_key(name: str) -> str:
    # MLflow keys take letters, digits, and _ - . space : /
    return re.sub(r"[^\w\-. :/]", "_", name)
