"""Memorization through the real stages: canaries planted by train.cpt (strategy keep, full
fine-tune), scored by the eval stage on the trained and the base model; the report's Memorization
table, the new lm-eval tasks and a standard task skipped offline, all from the run directory."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.canaries import CanaryRecord
from cogcore.cli import app
from cogcore.eval.memorization import memorization_summary
from cogcore.eval.results import Memorization
from tests.test_pipeline import _recipe


def test_planted_canaries_are_exposed_and_reported(tmp_path, make_tiny_llm, make_tiny_embedder):
    path, run = _recipe(tmp_path, make_tiny_llm, make_tiny_embedder)
    recipe = yaml.safe_load(path.read_text())
    recipe["facts"] = {"strategy": "keep", "canaries": {"count": 2, "controls": 2, "repeats": 8}}
    recipe["train"] = {
        "cpt": {
            "method": "full",
            "max_steps": 40,
            "seq_len": 64,
            "batch_size": 4,
            "lr": 3e-3,
            "warmup_ratio": 0.0,
            "save_steps": 1000,
        },
        "tools": {"enabled": False},
    }
    recipe["eval"] = {
        "questions": 6,
        "perplexity_docs": 3,
        "agentic_questions": 0,
        "openbook_passages": 2,
        "canary_candidates": 100,
        "lm_eval_tasks": ["hellaswag"],
        "bfcl": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output

    results = json.loads((run / "eval/results.json").read_text())
    assert results["backend"] == "hf"
    for model in ("trained", "base"):
        assert {
            "cogcore_closedbook",
            "cogcore_openbook",
            "cogcore_cloze",
            "cogcore_train_recall",
            "cogcore_heldout_ppl",
            "cogcore_heldout_ppl_nofacts",
        } <= set(results["lm_eval"][model])
        assert results["standard_tasks"][model]["hellaswag"]["skipped"].startswith(
            "hellaswag: dataset not available offline"
        )
    memo = results["memorization"]
    recall = {m: results["lm_eval"][m]["cogcore_train_recall"]["acc"] for m in ("trained", "base")}
    assert memo["train_recall"] == recall
    canaries = memo["canaries"]
    assert canaries["max_possible"] == pytest.approx(math.log2(10**6)) and canaries["repeats"] == 8
    assert canaries["strategy"] == "keep" and canaries["candidates"] == 100
    record = CanaryRecord.read(run / "train/cpt/canaries.json")
    assert record.strategy == "keep" and record.repeats == 8
    for group in ("planted", "controls"):
        for scores in (canaries[group], canaries["base"][group]):
            assert [s["canary_id"] for s in scores["per_canary"]] == [c["id"] for c in record.groups()[group]]
            assert scores["max_exposure"] == max(s["exposure"] for s in scores["per_canary"])
            assert all(s["candidates"] == 100 for s in scores["per_canary"])
    # 8 repeats under `keep`, 40 full fine-tune steps: the planted secrets stand out
    assert canaries["planted"]["mean_exposure"] > canaries["controls"]["mean_exposure"] + 2
    assert canaries["planted"]["mean_exposure"] > canaries["base"]["planted"]["mean_exposure"] + 2

    report = (run / "report/report.md").read_text()
    for text in (
        "### Memorization",
        "canary exposure, planted: mean (max)",
        "training-fact recall",
        "Held-out facts: closed book, open book, cloze",
        "held-out text, facts excluded",
        "skipped: hellaswag: dataset not available offline",
    ):
        assert text in report, text
    assert f"{canaries['planted']['mean_exposure']:.3g} ({canaries['planted']['max_exposure']:.3g}), n=2" in report


def test_memorization_summary_without_canaries():
    lm = {
        "trained": {"cogcore_train_recall": {"acc": 0.75}, "cogcore_closedbook": {"acc": 0.25}},
        "base": {"cogcore_train_recall": {"acc": 0.5}},
    }
    summary = memorization_summary(lm, None)
    assert summary == Memorization(
        train_recall={"trained": 0.75, "base": 0.5}, heldout_closedbook={"trained": 0.25, "base": None}
    )
    assert summary.to_json() == {
        "train_recall": {"trained": 0.75, "base": 0.5},
        "heldout_closedbook": {"trained": 0.25, "base": None},
    }
