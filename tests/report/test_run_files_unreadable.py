"""`cogcore report RUN_DIR` and `cogcore compare` on run files that exist but cannot be what they
should be (cut off mid-write, or valid JSON of the wrong shape): one error line naming the file and
why, exit code 2, never a traceback and never "missing". Also: the report writes only the folder it
is given, so that the report stage can build beside its old output."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.eval.results import AgenticScores
from cogcore.report.run_report import build_report
from tests.report.files import TINY_CONFIG as CONFIG
from tests.report.files import curate_stats, eval_results, train_metrics


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _run(root, name="acme"):
    run = root / name
    _write(
        run / "recipe.resolved.yaml",
        yaml.safe_dump({"name": name, "facts": {"strategy": "mask"}, "report": {"gpus": ["h100"]}}),
    )
    _write(run / "manifest.json", json.dumps({"stages": {}}))
    _write(run / "curate/stats.json", json.dumps(curate_stats(2)))
    _write(run / "train/cpt/metrics.json", json.dumps(train_metrics()))
    _write(run / "train/tools/model/config.json", json.dumps(CONFIG))
    _write(run / "eval/results.json", json.dumps(eval_results(agentic=AgenticScores(n=2, accuracy=0.5))))
    return run


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


BROKEN = [
    ("eval/results.json", '{"agentic": {"n": 2, "accur', "not valid JSON"),
    ("eval/results.json", '[{"agentic": 1}]', "expected a JSON object, found a list"),
    ("curate/stats.json", '{"docs_in": 2, "docs_', "not valid JSON"),
    ("train/cpt/metrics.json", '"full"', "expected a JSON object, found a string"),
    ("manifest.json", '{"stages": {"cur', "not valid JSON"),
    ("train/tools/model/config.json", "", "not valid JSON"),
    ("recipe.resolved.yaml", "name: [acme", "not valid YAML"),
]


# Files of another version: a renamed key is not read under its old name, a missing one not guessed.
OUTDATED = [
    (
        "eval/results.json",
        json.dumps({**eval_results(), "agentic": {"n": 2, "mean_calls": 1.5}}),
        "unknown fields mean_calls: written by another version of cogcore, or damaged; re-run eval",
    ),
    ("curate/stats.json", '{"docs_in": 2, "docs_out": 2, "steps": []}', "missing fields splits, facts"),
    ("train/cpt/metrics.json", '{"method": "full", "steps": 4}', "re-run train.cpt"),
]


@pytest.mark.parametrize("name,text,why", BROKEN + OUTDATED)
def test_report_of_a_run_with_an_unreadable_file_names_it_and_exits_2(tmp_path, name, text, why):
    run = _run(tmp_path)
    (run / name).write_text(text)
    one_error(cli("report", run), f"acme/{name}", why)
    assert not (run / "report" / "report.md").exists()


def test_report_of_a_run_with_files_missing_still_says_not_run(tmp_path):
    run = _run(tmp_path)
    (run / "eval/results.json").unlink()
    result = cli("report", run)
    assert result.exit_code == 0, result.output
    assert "eval/results.json is missing" in (run / "report" / "report.md").read_text().replace("\\", "")


@pytest.mark.parametrize(
    "name,text,why",
    [BROKEN[i] for i in (0, 1, 3, 5, 6)]
    + [
        ("eval/results.json", '{"agentic": "0.5"}', "unexpected content"),
        ("train/cpt/metrics.json", '{"total_params": "many", "tokens_trained": 5}', "unexpected content"),
        ("recipe.resolved.yaml", "- a list", "expected a mapping"),
    ],
)
def test_compare_of_a_run_with_an_unreadable_file_names_it_and_exits_2(tmp_path, name, text, why):
    good, bad = _run(tmp_path, "good"), _run(tmp_path, "bad")
    (bad / name).write_text(text)
    one_error(cli("compare", good, bad, "--out", tmp_path / "cmp"), f"bad/{name}", why)


def test_compare_of_good_runs_still_works(tmp_path):
    result = cli("compare", _run(tmp_path, "one"), _run(tmp_path, "two"), "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / "compare.md").exists()


def test_build_report_writes_only_the_folder_it_is_given(tmp_path):
    run = _run(tmp_path)
    (tmp_path / "published.csv").write_text("model,params_b,agentic_accuracy\nOther-1B,1,0.4\n")
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": "acme", "report": {"gpus": ["h100"], "reference": str(tmp_path / "published.csv")}})
    )
    before = sorted(p for p in run.rglob("*"))
    md, html = build_report(run, tmp_path / "elsewhere")
    assert md.parent == html.parent == tmp_path / "elsewhere"
    assert {"report.md", "report.html", "cost.json", "reference.json"} <= {p.name for p in md.parent.iterdir()}
    assert sorted(p for p in run.rglob("*")) == before  # nothing written into the run directory


def test_a_report_built_elsewhere_uses_the_runs_saved_reference_copy(tmp_path):
    run = _run(tmp_path)
    (tmp_path / "published.csv").write_text("model,params_b,agentic_accuracy\nOther-1B,1,0.4\n")
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": "acme", "report": {"gpus": ["h100"], "reference": str(tmp_path / "published.csv")}})
    )
    build_report(run)  # the copy lands in report/reference.json
    (tmp_path / "published.csv").unlink()
    page = build_report(run, tmp_path / "rebuilt")[1].read_text()
    assert "used the copy saved in report/reference.json (1 rows)" in page
