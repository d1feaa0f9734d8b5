"""`cogcore compare`: two run directories (a real tiny model's config, results files as the eval
stage writes them), published reference rows merged by column name, the Pareto frontier, the CLI."""

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.eval.results import AgenticScores
from cogcore.report import cost
from cogcore.report.compare import CompareError, build_compare, pick_metric, read_reference, run_row
from cogcore.report.plots import pareto_front
from tests.report.files import eval_results, train_metrics

REFERENCE = (
    "model,params_b,bfcl_non_live_ast,bfcl_overall,license_note\nBig-7B,7,0.85,0.55,apache-2.0\nTiny-1B,1,0.2,,\n"
)


def _run_dir(root, name, strategy, model_dir, accuracy, bfcl=None, memorization=None):
    run = root / name
    run.mkdir(parents=True)
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": name, "base_model": {"path": "/models/SmolLM2-135M"}, "facts": {"strategy": strategy}})
    )
    (run / "train/tools/model").mkdir(parents=True)
    (run / "train/tools/model/config.json").write_text((model_dir / "config.json").read_text())
    for stage, tokens in (("cpt", 4096), ("tools", 2048)):
        _write(run / f"train/{stage}/metrics.json", train_metrics(tokens=tokens))
    lm_eval = {
        "trained": {"cogcore_closedbook": {"acc": 0.3}, "cogcore_heldout_ppl": {"word_perplexity": 80.0}},
        "base": {"cogcore_closedbook": {"acc": 0.25}, "cogcore_heldout_ppl": {"word_perplexity": 90.0}},
    }
    agentic = AgenticScores(n=4, accuracy=accuracy, call_rate=0.75, retrieval_hit_rate=0.5)
    results = eval_results(lm_eval=lm_eval, agentic=agentic, bfcl=bfcl)
    if memorization:
        results["memorization"] = memorization  # as the eval stage writes it
    _write(run / "eval/results.json", results)
    return run


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_tiny_llm):
    model_dir = make_tiny_llm(["The fee is $25 per month.", "Call search for the rate."])
    root = tmp_path_factory.mktemp("runs")
    keep = _run_dir(root, "acme-keep", "keep", model_dir, 0.25)
    toolcall = _run_dir(
        root,
        "acme-toolcall",
        "toolcall",
        model_dir,
        0.75,
        bfcl={"simple_python": 0.5, "non_live_ast_python": 0.4},
        memorization={
            "train_recall": {"trained": 0.1, "base": 0.05},
            "canaries": {
                "planted": {"n": 2, "mean_exposure": 6.5, "max_exposure": 9.0},
                "controls": {"n": 2, "mean_exposure": 1.2, "max_exposure": 1.9},
            },
        },
    )
    (root / "published.csv").write_text(REFERENCE)
    return keep, toolcall, root / "published.csv"


def test_run_rows_read_quality_cost_and_training_from_the_files(runs):
    keep, toolcall, _ = runs
    row = run_row(toolcall, "h100")
    config = json.loads((toolcall / "train/tools/model/config.json").read_text())
    expected = cost.cost_table(config, ["h100"])[0]
    assert row["usd_per_1m_output"] == pytest.approx(expected["usd_per_1m_output"])
    assert row["params_b"] == pytest.approx(expected["params"] / 1e9)
    assert (row["strategy"], row["base_model"], row["agentic_accuracy"]) == ("toolcall", "SmolLM2-135M", 0.75)
    assert (row["closedbook_acc"], row["closedbook_acc_base"], row["heldout_ppl"]) == (0.3, 0.25, 80.0)
    assert row["bfcl_non_live_ast"] == 0.4 and row["bfcl_simple_python"] == 0.5
    assert (row["mem_canary_exposure"], row["mem_canary_exposure_controls"]) == (6.5, 1.2)
    assert (row["mem_train_fact_recall"], row["mem_train_fact_recall_base"]) == (0.1, 0.05)
    assert row["train_tokens"] == 6144 and row["train_seconds"] == 4.0
    # 6 * 150,000 params * 6,144 tokens at 40% of an H100's 989 TFLOPS, in hours.
    assert row["train_gpu_hours_est"] == pytest.approx(6 * 150_000 * 6144 / (0.4 * 989e12) / 3600)
    assert run_row(keep)["bfcl_non_live_ast"] is None


def test_reference_rows_merge_by_column_name_and_are_costed_by_params(runs, tmp_path):
    keep, toolcall, published = runs
    md_path, html_path = build_compare([keep, toolcall], tmp_path / "out", published)
    md, page = md_path.read_text(), html_path.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| name | kind |"))
    columns = [c.strip().replace("\\_", "_") for c in header.strip("|").split("|")]
    assert columns.count("bfcl_non_live_ast") == 1 and "license_note" in columns and "bfcl_overall" in columns
    tiny = next(line for line in md.splitlines() if line.startswith("| Tiny-1B |"))
    cells = [c.strip() for c in tiny.strip("|").split("|")]
    assert cells[columns.index("bfcl_non_live_ast")] == "0.2" and cells[columns.index("bfcl_overall")] == "–"
    assert cells[columns.index("agentic_accuracy")] == "–" and cells[columns.index("kind")] == "reference"

    rows = json.loads((tmp_path / "out/compare.json").read_text())
    big = next(r for r in rows if r["name"] == "Big-7B")
    assert big["usd_per_1m_output"] == pytest.approx(cost.estimate_from_params(7e9, "h100")["usd_per_1m_output"])
    assert big["cost_basis"].startswith("params only")
    # Default metric: the runs' first quality metric that a reference row also has.
    assert "## Quality against cost: BFCL non-live AST" in md
    assert "Pareto frontier (no other row is both cheaper and better): acme-toolcall, Big-7B." in page
    assert "Not plotted (no BFCL non-live AST or no cost): acme-keep." in page
    assert len(re.findall(r'<img alt="pareto.png" src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)) == 1
    assert not re.search(r'(src|href)\s*=\s*"?https?:', page)
    assert (tmp_path / "out/pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_metric_choice_and_its_errors(runs):
    keep, toolcall, published = runs
    rows = [run_row(keep), run_row(toolcall)]
    assert pick_metric(rows)[0] == "agentic_accuracy"  # no reference rows: the default order
    assert pick_metric(rows, "heldout_ppl") == ("heldout_ppl", "held-out word perplexity", False)
    with pytest.raises(CompareError, match="--metric bfcl_overall: no row has it; numeric columns: agentic_accuracy"):
        pick_metric(rows, "bfcl_overall")
    assert pick_metric(rows + read_reference(published))[0] == "bfcl_non_live_ast"


def test_reference_files_in_json_and_their_errors(tmp_path):
    good = tmp_path / "ref.json"
    good.write_text(json.dumps([{"name": "M", "params_b": 2, "usd_per_1m_output": 0.5, "extra": "kept"}]))
    assert read_reference(good) == [
        {
            "name": "M",
            "params_b": 2,
            "usd_per_1m_output": 0.5,
            "extra": "kept",
            "kind": "reference",
            "cost_basis": "as given",
        }
    ]
    nameless = tmp_path / "bad.csv"
    nameless.write_text("params_b,score\n1,0.5\n")
    with pytest.raises(CompareError, match="bad.csv: a row has no `name` \\(or `model`\\) column"):
        read_reference(nameless)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CompareError, match="broken.json: not valid json"):
        read_reference(broken)


def test_pareto_front_on_hand_made_points():
    # (cost, quality): C is dominated by B (cheaper and better), E ties D's quality at a higher cost.
    points = [(1.0, 0.2), (2.0, 0.5), (3.0, 0.4), (4.0, 0.9), (5.0, 0.9), (0.5, 0.1)]
    assert pareto_front(points) == [5, 0, 1, 3]
    assert pareto_front([(1.0, 0.3), (1.0, 0.6)]) == [1]  # same cost: only the better one
    # Lower is better (perplexity): the cheapest point, then any cheaper-is-worse trade.
    assert pareto_front([(1.0, 90.0), (2.0, 80.0), (3.0, 85.0)], higher_is_better=False) == [0, 1]
    assert pareto_front([]) == []


def test_cli_writes_both_files_and_exits_2_on_a_missing_run_dir(runs, tmp_path):
    keep, toolcall, published = runs
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(keep),
            str(toolcall),
            "--reference",
            str(published),
            "--metric",
            "agentic_accuracy",
            "--out",
            str(tmp_path / "cmp"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "cmp/compare.md").exists() and (tmp_path / "cmp/compare.html").exists()
    assert "agentic accuracy (with search) against the estimated" in (tmp_path / "cmp/compare.html").read_text()

    missing = tmp_path / "no-such-run"
    result = CliRunner().invoke(app, ["compare", str(keep), str(missing)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error {missing}: no such run directory"
    result = CliRunner().invoke(app, ["compare", str(keep), "--gpu", "tpu"])
    assert result.exit_code == 2 and "unknown GPU 'tpu'; known: h100" in result.stderr
