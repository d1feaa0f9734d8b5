"""A stage whose input is empty says what is empty, why, and which recipe field to change: through
the real CLI, on corpora made here. Curation that loses most of a corpus says so in the log and in
the report; curation that keeps nothing fails and is not marked complete."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cogcore.cli import app

PROSE = (
    "The transfer limit for the {0} account is set by the branch and it can be raised for a customer who "
    "has held the account for more than a year. The fee for a transfer over the {0} limit is ${1}.00, charged "
    "to the account that sends it, and it is shown on the monthly statement with the date of the transfer."
)
# With seed 0, these ids all fall in the held-out split at curate.heldout_fraction 0.5.
HELDOUT_IDS = ["doc01", "doc02", "doc05"]
# Short reference pages, under Gopher's published 50-word minimum.
FEE_PAGES = [{"id": f"page{i}", "text": f"## Fees {i}\n\n- Wire: ${i + 5}.00\n- ACH: free"} for i in range(6)]


def _recipe(tmp_path, docs: list[dict], curate: dict, embedder: str | None = None, **sections) -> tuple:
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    if embedder is None:
        (tmp_path / "no-embedder").mkdir(exist_ok=True)  # a path that exists; never loaded by these stages
    recipe = {
        "name": "empty",
        "run_dir": str(tmp_path / "runs"),
        "seed": 0,
        "sources": [{"name": "handbook", "path": "docs.jsonl", "id_field": "id"}],
        "base_model": {"path": "example-org/never-loaded"},
        "curate": curate,
        "index": {"embedder": embedder or str(tmp_path / "no-embedder"), "chunk_chars": 200, "chunk_overlap": 20},
        **sections,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, tmp_path / "runs" / "empty"


def _prose_docs(ids: list[str]) -> list[dict]:
    return [{"id": doc_id, "text": PROSE.format(doc_id, i + 3)} for i, doc_id in enumerate(ids)]


def _said(result) -> str:
    """What a failed command reported: its output, and the exception if it escaped the command."""
    return result.output + ("" if isinstance(result.exception, SystemExit) else str(result.exception or ""))


def _stages(run) -> dict:
    path = run / "manifest.json"
    return json.loads(path.read_text())["stages"] if path.exists() else {}


def test_curation_that_keeps_nothing_exits_non_zero_and_is_not_marked_complete(tmp_path):
    recipe, run = _recipe(tmp_path, _prose_docs(["a", "b"]), {"min_chars": 5000})
    result = CliRunner().invoke(app, ["curate", str(recipe)])
    assert result.exit_code != 0 and "[done] curate" not in result.output
    assert "0 of 2 documents kept" in _said(result) and "curate.min_chars" in _said(result)
    assert "curate" not in _stages(run)


def test_a_heavy_drop_fails_when_the_recipe_says_so_and_can_be_inspected(tmp_path):
    recipe, run = _recipe(
        tmp_path,
        FEE_PAGES + _prose_docs(["a", "b"]),
        {"min_chars": 20, "quality": {"gopher_quality": {"enabled": True}}, "max_drop_fraction": 0.5},
    )
    cli = CliRunner()
    strict = cli.invoke(app, ["curate", str(recipe)])
    assert strict.exit_code != 0 and "[done] curate" not in strict.output
    said = _said(strict)
    assert "gopher_quality dropped 75.0%" in said and "curate.max_drop_fraction = 0.5" in said
    assert f"cogcore inspect {run} --reason gopher_short_doc" in said
    assert "curate" not in _stages(run)
    shown = cli.invoke(app, ["inspect", str(run), "--reason", "gopher_short_doc"])  # as the message says
    assert shown.exit_code == 0 and "--- page0" in shown.output, shown.output


def test_a_heavy_drop_is_printed_and_heads_the_report_data_funnel(tmp_path):
    recipe, run = _recipe(
        tmp_path,
        FEE_PAGES + _prose_docs(["a", "b"]),
        {"min_chars": 20, "quality": {"gopher_quality": {"enabled": True}}},
    )
    cli = CliRunner()
    result = cli.invoke(app, ["curate", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "gopher_quality dropped 75.0%" in result.output
    assert f"cogcore inspect {run} --reason gopher_short_doc" in result.output

    assert cli.invoke(app, ["report", str(run)]).exit_code == 0
    md, page = (run / "report/report.md").read_text(), (run / "report/report.html").read_text()
    data = md[md.index("## Data") :]
    assert data.index("gopher\\_quality dropped 75.0%") < data.index("| step |")  # above the funnel table
    data = page[page.index("<h2>Data</h2>") :]
    assert data.index("gopher_quality dropped 75.0%") < data.index("<table>")


def test_train_with_every_document_held_out_names_heldout_fraction(tmp_path):
    recipe, run = _recipe(tmp_path, _prose_docs(HELDOUT_IDS), {"min_chars": 20, "heldout_fraction": 0.5})
    cli = CliRunner()
    assert cli.invoke(app, ["curate", str(recipe)]).exit_code == 0
    result = cli.invoke(app, ["train", str(recipe)])
    assert result.exit_code != 0
    assert "train.cpt: 0 of 3 curated documents are in the training split (curate.heldout_fraction = 0.5)" in _said(
        result
    ), _said(result)
    assert "no training rows" not in _said(result) and "train.cpt" not in _stages(run)


def test_tool_training_with_no_training_documents_and_no_conversation_files_fails(tmp_path, make_tiny_embedder):
    docs = _prose_docs(HELDOUT_IDS)
    embedder = str(make_tiny_embedder([d["text"] for d in docs]))
    recipe, run = _recipe(
        tmp_path, docs, {"min_chars": 20, "heldout_fraction": 0.5}, embedder=embedder, train={"cpt": {"enabled": False}}
    )
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code != 0
    assert "train.tools: 0 of 3 curated documents are in the training split (curate.heldout_fraction = 0.5)" in _said(
        result
    ), _said(result)
    assert "train.tools.conversation_files" in _said(result) and "train.tools" not in _stages(run)


def test_tool_training_whose_conversations_are_all_too_long_names_seq_len(tmp_path, make_tiny_llm, make_tiny_embedder):
    docs = _prose_docs([f"doc{i:02d}" for i in range(6)])
    texts = [d["text"] for d in docs]
    recipe, run = _recipe(
        tmp_path,
        docs,
        {"min_chars": 20, "heldout_fraction": 0.0},
        embedder=str(make_tiny_embedder(texts)),
        base_model={"path": str(make_tiny_llm(texts))},
        train={"cpt": {"enabled": False}, "tools": {"seq_len": 64, "conversations": 2}},
    )
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code != 0
    assert "conversations are longer than train.tools.seq_len = 64 tokens" in _said(result), _said(result)
    assert "no training rows" not in _said(result) and "train.tools" not in _stages(run)


def test_index_with_no_documents_says_so(tmp_path):
    recipe, run = _recipe(tmp_path, _prose_docs(["a", "b"]), {"min_chars": 20})
    cli = CliRunner()
    assert cli.invoke(app, ["curate", str(recipe)]).exit_code == 0
    (run / "curate/docs.jsonl").write_text("")  # e.g. a curate folder written by an older cogcore
    result = cli.invoke(app, ["index", str(recipe)])
    assert result.exit_code != 0 and "index: curate/docs.jsonl holds no documents" in _said(result), _said(result)
    assert "index" not in _stages(run)


def test_training_split_problem_names_the_counts_and_the_field():
    from cogcore.stages.inputs import training_split_problem

    assert training_split_problem("train.cpt", {"heldout": 40}, 0.999) == (
        "train.cpt: 0 of 40 curated documents are in the training split (curate.heldout_fraction = 0.999)"
    )
    assert training_split_problem("train.cpt", {"train": 1, "heldout": 40}, 0.999) is None


def test_heldout_problem_says_what_eval_cannot_measure():
    from cogcore.stages.inputs import heldout_problem

    none_held_out = heldout_problem({"train": 30}, 0, 0.0)
    assert none_held_out.startswith("eval: 0 of 30 curated documents are held out (curate.heldout_fraction = 0.0)")
    assert "closed-book" in none_held_out
    no_facts = heldout_problem({"train": 30, "heldout": 4}, 0, 0.1)
    assert no_facts.startswith("eval: the 4 held-out documents hold no facts") and "facts.kinds" in no_facts
    assert heldout_problem({"train": 30, "heldout": 4}, 3, 0.1) is None


def test_eval_with_nothing_held_out_warns_and_still_measures_training_recall(
    tmp_path, make_tiny_llm, make_tiny_embedder
):
    docs = _prose_docs([f"doc{i:02d}" for i in range(6)])
    texts = [d["text"] for d in docs]
    recipe, run = _recipe(
        tmp_path,
        docs,
        {"min_chars": 20, "heldout_fraction": 0.0},
        embedder=str(make_tiny_embedder(texts)),
        base_model={"path": str(make_tiny_llm(texts))},
        train={
            "cpt": {"max_steps": 1, "seq_len": 64, "batch_size": 2},
            "tools": {"max_steps": 1, "seq_len": 2048, "batch_size": 2, "conversations": 2},
        },
        eval={
            "questions": 2,
            "perplexity_docs": 1,
            "openbook_passages": 0,
            "agentic_questions": 2,
            "throughput": {"enabled": False},
        },
    )
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    expected = "eval: 0 of 6 curated documents are held out (curate.heldout_fraction = 0.0)"
    assert "warning" in result.output and expected in result.output
    results = json.loads((run / "eval/results.json").read_text())
    assert any(w.startswith(expected) for w in results["warnings"])
    assert "cogcore_train_recall" in results["lm_eval"]["trained"] and "agentic" not in results
