"""eval/results.json through its class: what the eval stage writes reads back the same, and a file
of another shape or version is refused with the key and the stage to re-run."""

import json

import pytest

from cogcore.eval.results import (
    AgenticScores,
    CanaryExposures,
    CanaryScores,
    EvalResults,
    ExposureSummary,
    Memorization,
    ServingMeasurement,
)
from cogcore.stage_files import RunFileError


def _full() -> EvalResults:
    planted = ExposureSummary(
        n=2,
        mean_exposure=6.5,
        max_exposure=9.0,
        mean_exposure_fit=6.1,
        per_canary=[{"canary_id": "c0", "exposure": 9.0}],
    )
    controls = ExposureSummary(n=0)
    base = CanaryExposures(planted=controls, controls=controls)
    canaries = CanaryScores(
        planted=planted, controls=controls, base=base, max_possible=19.93, repeats=8, strategy="keep", candidates=100
    )
    return EvalResults(
        lm_eval_version="0.4.9",
        backend="hf",
        questions=4,
        train_questions=3,
        warnings=["few held-out facts"],
        lm_eval={"trained": {"cogcore_closedbook": {"acc": 0.5}}, "base": {"cogcore_closedbook": {"acc": 0.25}}},
        standard_tasks={"trained": {"hellaswag": {"skipped": "offline"}}},
        memorization=Memorization(train_recall={"trained": 0.75, "base": None}, canaries=canaries),
        agentic=AgenticScores(n=2, accuracy=0.5, calls_per_answer=1.5),
        samples=[{"question": "q", "correct": True}],
        bfcl={"simple_python": 0.5},
        measured_throughput=ServingMeasurement(device="cpu-2core", batch=4),
    )


def test_what_the_stage_writes_reads_back_the_same(tmp_path):
    results = _full()
    results.write(tmp_path / "results.json")
    assert EvalResults.read(tmp_path / "results.json") == results
    assert EvalResults.read(tmp_path / "missing.json") is None
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["measured_throughput"] == {"device": "cpu-2core", "batch": 4}  # one object, unset fields left out
    assert data["memorization"]["canaries"]["controls"] == {"n": 0, "per_canary": []}
    assert results.lm_metric("trained", "cogcore_closedbook", "acc") == 0.5
    assert results.lm_metric("base", "cogcore_openbook", "acc") is None


def test_sections_that_did_not_run_are_absent_and_the_rest_always_written():
    data = EvalResults(lm_eval_version="0.4.9", backend="hf", memorization=Memorization()).to_json()
    assert {"agentic", "samples", "bfcl", "measured_throughput"}.isdisjoint(data)
    assert data["questions"] is None and data["lm_eval"] == {} and EvalResults.from_json(data).agentic is None


def test_measurements_added_by_hand_are_a_list():
    added = [ServingMeasurement(device="cpu-2core"), ServingMeasurement(device="NVIDIA H100 80GB HBM3", engine="vllm")]
    results = EvalResults.from_json({**_full().to_json(), "measured_throughput": [m.to_json() for m in added]})
    assert results.measurements() == added and EvalResults().measurements() == []


@pytest.mark.parametrize(
    "change,why",
    [
        ({"agentic": {"n": 2, "mean_calls": 1.5}}, "(agentic): unknown fields mean_calls"),
        ({"agentic": "0.5"}, "unexpected content: agentic is a string"),
        ({"measured_throughput": {"gpu": "h100"}}, "(measured_throughput): unknown fields gpu"),
        ({"lm_eval": {"trained": {"cogcore_closedbook": 0.5}}}, "unexpected content: lm_eval"),
    ],
)
def test_a_file_of_another_shape_or_version_names_the_key_and_the_stage_to_rerun(change, why):
    with pytest.raises(RunFileError) as error:
        EvalResults.from_json({**_full().to_json(), **change}, where="runs/x/eval/results.json")
    assert str(error.value).startswith("runs/x/eval/results.json") and why in str(error.value)
    assert str(error.value).endswith("re-run eval (cogcore run RECIPE --force eval)")


def test_a_file_without_what_every_file_holds_is_refused():
    data = _full().to_json()
    del data["memorization"], data["backend"]
    with pytest.raises(RunFileError, match="missing fields backend, memorization"):
        EvalResults.from_json(data)
