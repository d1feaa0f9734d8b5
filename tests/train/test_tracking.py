"""Experiment tracking: train.cpt's curves (loss, learning rate, tokens/s) and the eval figures reach
TensorBoard, W&B (offline) and MLflow (a file store), all inside the run directory; the environment
is left as it was; a backend that is not installed is a recipe error naming the field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cogcore.recipe import RecipeError, validate
from cogcore.stages import build_stages
from cogcore.tracking import Tracking, flat_figures, log_figures

TEXTS = [f"Account {n} costs {n * 3} USD per month and settles within {n % 7 + 1} business days." for n in range(24)]
ALL = ["tensorboard", "wandb", "mlflow"]


def _recipe(tmp_path: Path, llm_dir: Path, **sections):
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return validate(
        {
            "name": "t",
            "run_dir": str(tmp_path / "runs"),
            "sources": [{"name": "s", "path": "s.jsonl"}],
            "base_model": {"path": str(llm_dir)},
            "index": {"embedder": str(llm_dir)},
            **sections,
        }
    )


def _scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_metrics(uri: str, monkeypatch) -> list[dict[str, float]]:
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "t"]
    return [r.data.metrics for r in client.search_runs([experiment.experiment_id])]


def test_training_curves_reach_every_backend_inside_the_run_directory(
    make_tiny_llm, tmp_path, curated_writer, monkeypatch
):
    llm_dir = make_tiny_llm(TEXTS)
    docs = [{"id": str(n), "text": t, "source": "s", "meta": {"split": "train"}} for n, t in enumerate(TEXTS)]
    curated_writer(tmp_path / "runs" / "t" / "curate", docs, [])
    cpt = {"method": "full", "seq_len": 32, "batch_size": 2, "max_steps": 3, "logging_steps": 1, "save_steps": 100}
    recipe = _recipe(tmp_path, llm_dir, train={"cpt": cpt}, tracking={"report_to": ALL})
    (stage,) = [s for s in build_stages(recipe.resolved(tmp_path)) if s.name == "train.cpt"]
    folder = tmp_path / "runs" / "t" / "train" / "cpt"
    folder.mkdir(parents=True)
    before = dict(os.environ)
    stage.run(folder)
    changed = {k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k)}
    assert not changed, changed  # the integrations' variables were set for the stage only

    tracking = tmp_path / "runs" / "t" / "tracking"
    curves = _scalars(tracking / "tensorboard" / "train.cpt")
    assert len(curves["train/loss"]) == 3 and len(curves["train/learning_rate"]) == 3
    assert len(curves["train/tokens_per_s"]) == 3 and min(curves["train/tokens_per_s"]) > 0
    (metrics,) = _mlflow_metrics((tracking / "mlruns").as_uri(), monkeypatch)
    assert {"loss", "learning_rate", "tokens_per_s"} <= set(metrics)
    (offline,) = (tracking / "wandb").glob("offline-run-*/run-*.wandb")
    assert b"tokens_per_s" in offline.read_bytes()


def test_eval_figures_are_logged_once_at_the_end(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "t"
    results = {"agentic": {"accuracy": 0.25, "n": 12, "note": "text"}, "lm_eval": {"trained": {"closed": {"acc": 0.4}}}}
    figures = flat_figures(results)
    assert figures == {"agentic/accuracy": 0.25, "agentic/n": 12.0, "lm_eval/trained/closed/acc": 0.4}
    log_figures(Tracking(tuple(ALL), "t", online=False), run_dir, "eval", figures)
    assert _scalars(run_dir / "tracking" / "tensorboard" / "eval")["agentic/accuracy"] == [0.25]
    (metrics,) = _mlflow_metrics((run_dir / "tracking" / "mlruns").as_uri(), monkeypatch)
    assert metrics["lm_eval/trained/closed/acc"] == pytest.approx(0.4)
    assert list((run_dir / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_tracking_backends_are_checked_when_the_recipe_is_read(make_tiny_llm, tmp_path, monkeypatch):
    llm_dir = make_tiny_llm(TEXTS)
    with pytest.raises(RecipeError, match=r"tracking\.report_to.*'tensorboard', 'wandb' or 'mlflow'"):
        _recipe(tmp_path, llm_dir, tracking={"report_to": ["comet"]})
    monkeypatch.setitem(__import__("cogcore.tracking").tracking.PACKAGES, "wandb", ("no_such_pkg_x", "cogcore[wandb]"))
    with pytest.raises(RecipeError, match=r"tracking\.report_to.*pip install 'cogcore\[wandb\]'"):
        _recipe(tmp_path, llm_dir, tracking={"report_to": ["wandb"]})
    assert _recipe(tmp_path, llm_dir, tracking={"report_to": []}).tracking.report_to == []
