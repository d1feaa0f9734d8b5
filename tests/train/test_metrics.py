"""metrics.json of a training stage as one typed record: what train() writes reads back equal, a
skipped stage's short record too, and a file of another shape fails naming the file and the stage
to re-run (never a KeyError in a reader)."""

from __future__ import annotations

import json

import pytest

from cogcore.stage_files import RunFileError
from cogcore.train.metrics import TRAINED_FIELDS, LoggedStep, TrainMetrics


def _trained(**changes) -> TrainMetrics:
    figures = dict.fromkeys(TRAINED_FIELDS)
    figures.update(
        method="lora",
        steps=2,
        tokens_trained=64,
        seconds=1.5,
        trainable_params=10,
        total_params=100,
        device="cpu",
        log_history=[LoggedStep(step=1, loss=2.5, learning_rate=1e-3, grad_norm=None, tokens_per_s=40.0, mfu=None)],
    )
    return TrainMetrics(**{**figures, **changes})


def test_trained_and_skipped_records_round_trip(tmp_path):
    metrics = _trained().with_data({"rows": 4}, chat_template={"template": "cogcore", "reason": "none"})
    (tmp_path / "cpt").mkdir()
    metrics.write(tmp_path / "cpt" / "metrics.json")
    assert TrainMetrics.read(tmp_path / "cpt" / "metrics.json") == metrics
    skipped = TrainMetrics.skipped_stage("train.tools.enabled is false", chat_template={"template": "base"})
    assert skipped.to_json() == {
        "skipped": True,
        "reason": "train.tools.enabled is false",
        "chat_template": {"template": "base"},
    }
    assert TrainMetrics.from_json(skipped.to_json()) == skipped
    assert TrainMetrics.read(tmp_path / "tools" / "metrics.json") is None  # the stage has not run


def test_a_file_of_another_shape_names_itself_and_the_stage_to_rerun(tmp_path):
    folder = tmp_path / "run" / "train" / "cpt"
    folder.mkdir(parents=True)
    path = folder / "metrics.json"
    older = {k: v for k, v in _trained().to_json().items() if k not in ("packed", "epochs")}
    path.write_text(json.dumps({**older, "mean_loss": 2.0}))
    with pytest.raises(RunFileError) as e:
        TrainMetrics.read(path)
    message = str(e.value)
    assert message.startswith(f"{path}: unknown fields mean_loss; missing fields packed, epochs")
    assert message.endswith("re-run train.cpt (cogcore run RECIPE --force train.cpt)")
    path.write_text(json.dumps({**_trained().to_json(), "total_params": "many"}))
    with pytest.raises(RunFileError, match="unexpected content: total_params is a string, expected an integer or null"):
        TrainMetrics.read(path)
    path.write_text(json.dumps({**_trained().to_json(), "log_history": [{"step": 1}]}))
    with pytest.raises(RunFileError, match=r"metrics.json \(log_history\): missing fields loss"):
        TrainMetrics.read(path)
    path.write_text('"full"')
    with pytest.raises(RunFileError, match="expected a JSON object, found a string"):
        TrainMetrics.read(path)
    path.write_text('{"steps": 2, "tok')
    with pytest.raises(RunFileError, match="not valid JSON"):
        TrainMetrics.read(path)
