"""The report, built from a small schema-valid run directory written in the test."""

import json
import re

import pytest
import yaml

from cogcore.eval.results import AgenticScores, EvalResults, ServingMeasurement
from cogcore.recipe import ReportConfig
from cogcore.report.run_report import _throughput_blocks, build_report
from cogcore.stage_files import RunFileError
from tests.report.files import TINY_CONFIG, curate_stats, eval_results, train_metrics
from tests.report.files import write_json as _write


def _metrics(method, losses):
    return train_metrics(losses, method=method, seconds=2.5, trainable_params=1000)


def _full_run(run):
    (run).mkdir(parents=True, exist_ok=True)
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": "acme-demo", "report": {"gpus": ["h100", "cpu-2core"], "prices": {"h100": 2.5}}})
    )
    _write(
        run / "manifest.json",
        {
            "stages": {
                "curate": {
                    "fingerprint": "a",
                    "status": "complete",
                    "started": "2025-01-01T00:00:00",
                    "ended": "2025-01-01T00:00:04",
                    "seconds": 4.0,
                    "outputs": {},
                },
                "train_cpt": {
                    "fingerprint": "b",
                    "status": "complete",
                    "started": "2025-01-01T00:00:05",
                    "ended": "2025-01-01T00:01:00",
                    "seconds": 55.0,
                    "outputs": {},
                },
            }
        },
    )
    _write(
        run / "curate/stats.json",
        curate_stats(
            10,
            [("length_filter", 10, 9, {"too_short": 1}), ("dedup", 9, 7, {"near_duplicate": 2})],
            facts={"money": 5, "date": 3},
            splits={"train": 6, "heldout": 1},
            unreadable=[("a.bin", "binary")],
            unreadable_by_reason={"binary": 1},
        ),
    )
    _write(run / "train/cpt/metrics.json", _metrics("lora", [3.0, 2.5, 2.2]))
    _write(run / "train/tools/metrics.json", _metrics("lora", [1.5, 1.1]))
    _write(run / "train/tools/model/config.json", TINY_CONFIG)
    _write(
        run / "eval/results.json",
        eval_results(
            lm_eval={"trained": {"acme_cloze": {"acc": 0.61}}, "base": {"acme_cloze": {"acc": 0.25}}},
            agentic=AgenticScores(
                n=2, accuracy=0.5, call_rate=1.0, retrieval_hit_rate=0.5, calls_per_answer=1.5, seconds_per_answer=0.3
            ),
            samples=[
                {
                    "question": "What did Q3 <script>alert(1)</script> cost?",
                    "answer": "$4 | 5",
                    "expected": "$4",
                    "calls": [{"name": "search", "arguments": {"q": "Q3"}}],
                    "correct": True,
                }
            ],
            fact_sets={
                "source": "template questions from the facts",
                "questions": {"train": 2, "heldout": 2, "changed": 2},
                "changed": {"n": 2, "skipped": 0},
                "scores": {
                    "trained": {
                        "tools": {
                            "train": {"n": 2, "accuracy": 0.5, "errors": {"no_call": 1}},
                            "heldout": {"n": 2, "accuracy": 0.5, "errors": {"retrieval_miss": 1}},
                            "changed": {"n": 2, "accuracy": 0.5, "errors": {"stale": 1}, "stale_rate": 0.5},
                        }
                    }
                },
            },
        ),
    )


def test_full_run_gives_both_reports_with_tables_images_and_cost_rows(tmp_path):
    run = tmp_path / "acme-demo"
    _full_run(run)
    md_path, html_path = build_report(run)
    md, page = md_path.read_text(), html_path.read_text()

    assert "cogcore report: acme-demo" in page and "acme-demo" in md
    assert "It holds for all 2 steps" in page and "near\\_duplicate: 2" in md
    assert "acme_cloze" in page and "0.61" in page and "retrieval hit rate" in page
    assert "changed: stale answers" in md and "| trained | tools | changed | stale 1 |" in md.replace("\\_", "_")
    assert page.count("<table>") >= 8
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)) == 4
    assert not re.search(r'(src|href)\s*=\s*"?https?:', page)
    assert "not run" not in page.lower()
    for image in ("loss.png", "funnel.png", "fact_kinds.png", "pareto.png"):
        assert f"]({image})" in md and (run / "report" / image).read_bytes()[:4] == b"\x89PNG"

    rows = json.loads((run / "report/cost.json").read_text())["rows"]
    assert [r["gpu_key"] for r in rows] == ["h100", "cpu-2core"]
    assert rows[0]["price_per_hour"] == 2.5


def test_sample_text_is_escaped_in_html_and_markdown(tmp_path):
    run = tmp_path / "run"
    _full_run(run)
    md_path, html_path = build_report(run)
    page, md = html_path.read_text(), md_path.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in md
    assert "$4 \\| 5" in md  # a pipe in a cell must not split the Markdown table


def test_missing_files_make_sections_say_not_run(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    md_path, html_path = build_report(run)
    page = html_path.read_text()
    for missing in ("manifest.json", "curate/stats.json", "eval/results.json", "train/tools/model/config.json"):
        assert f"Not run: {missing} is missing" in page
    assert "cpt</td><td>not run" in page
    assert json.loads((run / "report/cost.json").read_text())["rows"] == []
    assert "<img" not in page and "empty" in md_path.read_text()


def test_broken_accounting_and_a_malformed_file_are_reported_not_raised(tmp_path):
    run = tmp_path / "bad"
    _write(run / "curate/stats.json", curate_stats(3, [("pii", 3, 3, {"leak": 1})]))
    _write(run / "train/tools/model/config.json", {"hidden_size": 64})
    page = build_report(run)[1].read_text()
    assert "It is broken for: pii" in page and "BROKEN" in page
    assert "Could not be built: KeyError" in page  # the config lacks the layer counts


@pytest.mark.parametrize(
    "results,why",
    [
        ({"agentic": {"n": "x"}, "samples": "oops"}, "unexpected content: samples is a string"),
        ({"agentic": {"n": 2, "accuracy": 0.5, "mean_calls": 1.5}}, "unknown fields mean_calls"),
    ],
)
def test_results_of_another_shape_or_version_name_the_key_and_the_stage_to_rerun(tmp_path, results, why):
    """A results.json the eval stage of this version would not write (a key renamed since, such as
    agentic.mean_calls, now calls_per_answer) is not read under its old names."""
    run = tmp_path / "old"
    _write(run / "eval/results.json", {**eval_results(), **results})
    with pytest.raises(RunFileError) as error:
        build_report(run)
    assert "results.json" in str(error.value) and why in str(error.value)
    assert str(error.value).endswith("re-run eval (cogcore run RECIPE --force eval)")
    assert not (run / "report" / "report.md").exists()


def test_training_cost_serve_command_and_measured_throughput(tmp_path):
    run = tmp_path / "acme-demo"
    _full_run(run)
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": "acme-demo", "report": {"gpus": ["h100", "a100"], "train_gpu": "a100"}})
    )
    results = EvalResults.from_json(json.loads((run / "eval/results.json").read_text()))
    results.measured_throughput = ServingMeasurement(
        device="NVIDIA H100 80GB HBM3",
        engine="vllm",
        batch=16,
        prompt_tokens=1024,
        output_tokens=256,
        decode_tokens_per_s=5000.0,
    )
    _write(run / "eval/results.json", results.to_json())
    page = build_report(run)[1].read_text()

    # Achieved MFU on the recipe's train_gpu: 6 * 150,000 params * 4,096 tokens / 2.5 s / 312e12 FLOPS.
    assert f"{6 * 150_000 * 4096 / 2.5 / 312e12:.1%}" in page and "A100 SXM 80GB" in page
    # Both stages' 8,192 tokens at 40% MFU on an H100: 6 * 150,000 * 8,192 / (0.4 * 989e12) seconds.
    assert f"{6 * 150_000 * 8192 / (0.4 * 989e12) / 3600:.3g}" in page and "llm-analysis" in page
    model = (run / "train/tools/model").resolve()
    assert (
        f"vllm serve {model} --enable-auto-tool-choice --tool-call-parser hermes --dtype bfloat16 --max-model-len 1280"
    ) in page  # no max_position_embeddings: prompt + output tokens
    decode = re.search(
        r"<td>decode</td>(?:<td[^>]*>[^<]*</td>){3}<td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>"
        r"<td[^>]*>([^<]*)</td>",
        page,
    )
    measured, bound = float(decode[1].replace(",", "")), float(decode[2].replace(",", ""))
    assert measured == 5000 and decode[3] == f"{5000 / bound:.1%}"


def test_reference_rows_join_the_pareto_chart_and_survive_a_rebuild_without_the_file(tmp_path, monkeypatch):
    run = tmp_path / "acme-demo"
    _full_run(run)
    results = EvalResults.from_json(json.loads((run / "eval/results.json").read_text()))
    results.bfcl = {
        "simple_python": 0.5,
        "multiple": 0.25,
        "parallel": 0.25,
        "parallel_multiple": 0.0,
        "non_live_ast_python": 0.25,
    }
    _write(run / "eval/results.json", results.to_json())
    (tmp_path / "published.csv").write_text("model,params_b,bfcl_non_live_ast,note\nBig-7B,7,0.85,x\nTiny-1B,1,0.2,\n")
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": "acme-demo", "report": {"reference": "published.csv"}})
    )
    monkeypatch.chdir(tmp_path)  # a relative reference resolves against the working directory, as run_dir does

    page = build_report(run)[1].read_text()
    # The shared metric wins over agentic accuracy, and the 150k-param run is cheapest: it is on the frontier.
    assert "BFCL non-live AST against the estimated" in page and "Reference rows: 2 from published.csv" in page
    assert "Pareto frontier (no other row is both cheaper and better): acme-demo, Big-7B." in page

    (tmp_path / "published.csv").unlink()
    page = build_report(run)[1].read_text()
    assert "used the copy saved in report/reference.json (2 rows)" in page
    assert "Pareto frontier (no other row is both cheaper and better): acme-demo, Big-7B." in page


def test_report_config_errors_name_the_field(tmp_path, monkeypatch):
    from cogcore.recipe import RecipeError, validate

    monkeypatch.chdir(tmp_path)
    base = {
        "name": "x",
        "sources": [{"name": "d", "path": "d.jsonl"}],
        "base_model": {"path": "m"},
        "index": {"embedder": "e"},
    }
    with pytest.raises(RecipeError) as error:
        validate({**base, "report": {"reference": "missing.csv", "train_gpu": "tpu", "refrence": "x"}})
    problems = "\n".join(error.value.problems)
    assert "report.reference: Value error, 'missing.csv' does not exist" in problems
    assert "report.train_gpu: Value error, unknown GPU profile 'tpu'; allowed: h100" in problems
    assert "report.refrence: unknown field" in problems
    (tmp_path / "scores.txt").write_text("x")
    with pytest.raises(RecipeError, match=r"report.reference: Value error, 'scores.txt': expected a .csv"):
        validate({**base, "report": {"reference": "scores.txt"}})
    (tmp_path / "scores.csv").write_text("model\nM\n")
    assert validate({**base, "report": {"reference": "scores.csv", "train_gpu": "a100"}}).report.train_gpu == "a100"


def test_report_sets_a_cpu_measurement_beside_the_cpu_roofline():
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 256,
    }
    measured = ServingMeasurement(
        engine="transformers eager loop (fp32)",
        device="cpu-2core",
        dtype="fp32",
        batch=4,
        prompt_tokens=256,
        output_tokens=32,
        prefill_tokens_per_s=1000.0,
        decode_tokens_per_s=50.0,
    )
    blocks = _throughput_blocks(EvalResults(measured_throughput=measured), config, ReportConfig())
    rows = blocks[1].rows
    assert [r[2] for r in rows] == ["prefill", "decode"] and all(r[3:6] == [4, 256, 32] for r in rows)
    assert all(r[7] and r[8].endswith("%") for r in rows)  # a roofline for the cpu-2core profile, and the ratio


def test_measurements_added_by_hand_join_the_stages_own(tmp_path):
    run = tmp_path / "acme-demo"
    _full_run(run)
    ours = ServingMeasurement(device="cpu-2core", engine="transformers eager loop (fp32)", decode_tokens_per_s=50.0)
    vllm = ServingMeasurement(device="NVIDIA H100 80GB HBM3", engine="vllm", decode_tokens_per_s=5000.0)
    results = EvalResults.from_json(json.loads((run / "eval/results.json").read_text()))
    results.measured_throughput = [ours, vllm]
    _write(run / "eval/results.json", results.to_json())
    page = build_report(run)[1].read_text()
    assert page.count("<td>decode</td>") == 2 and "<td>vllm</td>" in page
