"""The whole chain, end to end, on a tiny model, a tiny embedder and a corpus made here.

Real stages throughout: curation, a faiss index, LoRA training steps, lm-eval's harness, the
agentic loop with the real search tool, and the report; then the skip and re-run logic.
"""

from __future__ import annotations

import json
import random

import yaml
from typer.testing import CliRunner

from cogcore.cli import app

COLORS = ["Blue", "Green", "Silver", "Gold", "Coral", "Indigo", "Amber", "Onyx", "Teal", "Ruby"]


def _corpus(n: int = 40) -> list[dict]:
    rng = random.Random(7)
    docs = []
    for i in range(n):
        color = COLORS[i % len(COLORS)]
        fee, days, rate = rng.randint(2, 90), rng.randint(3, 60), rng.choice([0.5, 1.25, 2.5, 3.75])
        text = (
            f"## {color} account rules, part {i}\n\n"
            f"The monthly fee for the {color} account is ${fee}.00 unless the balance stays high. "
            f"Transfers from the {color} account settle within {days} business days after approval. "
            f"Savings linked to the {color} account earn {rate}% a year, paid every month."
        )
        docs.append({"id": f"doc{i:02d}", "title": f"{color} account {i}", "content": text})
    docs.append({"id": "dup", "title": "copy", "content": docs[0]["content"].upper()})  # exact duplicate
    docs.append({"id": "short", "title": "stub", "content": "Too short."})
    return docs


def _recipe(tmp_path, make_tiny_llm, make_tiny_embedder) -> tuple:
    docs = _corpus()
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    texts = [d["content"] for d in docs]
    recipe = {
        "name": "tiny",
        "run_dir": str(tmp_path / "runs"),
        "seed": 0,
        "sources": [
            {
                "name": "policies",
                "path": "docs.json",
                "format": "json",
                "text_field": "content",
                "id_field": "id",
                "title_field": "title",
            }
        ],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {"min_chars": 40, "heldout_fraction": 0.3},
        "index": {"embedder": str(make_tiny_embedder(texts)), "chunk_chars": 200, "chunk_overlap": 20},
        "train": {
            "cpt": {"max_steps": 3, "seq_len": 64, "batch_size": 2, "save_steps": 2},
            "tools": {"max_steps": 2, "seq_len": 1024, "batch_size": 2, "conversations": 6, "save_steps": 2},
        },
        "eval": {
            "questions": 8,
            "perplexity_docs": 4,
            "agentic_questions": 3,
            "max_new_tokens": 8,
            "bfcl": {"enabled": True, "categories": ["simple", "irrelevance"], "limit": 1, "max_new_tokens": 8},
            "fact_sets": {"questions": 2, "models": ["trained", "base"]},
        },
        "report": {"gpus": ["h100", "cpu-2core"]},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, tmp_path / "runs" / "tiny"


def test_run_end_to_end_then_skip_then_rerun_changed_stage(tmp_path, make_tiny_llm, make_tiny_embedder):
    recipe, run = _recipe(tmp_path, make_tiny_llm, make_tiny_embedder)
    cli = CliRunner()

    first = cli.invoke(app, ["run", str(recipe)])
    assert first.exit_code == 0, first.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["stages"]) == {
        "curate",
        "index",
        "select",
        "rephrase",
        "train.cpt",
        "train.tools",
        "eval",
        "report",
    }
    assert all(e["status"] == "complete" and e["outputs"] for e in manifest["stages"].values())

    stats = json.loads((run / "curate/stats.json").read_text())
    assert stats["docs_in"] == 42 and stats["docs_out"] == 40
    dropped = {r: n for s in stats["steps"] for r, n in s["dropped"].items()}
    assert dropped == {"too_short": 1, "exact_duplicate": 1}

    cpt = json.loads((run / "train/cpt/metrics.json").read_text())
    assert cpt["steps"] == 3 and cpt["data"]["masked_tokens"] > 0 and len(cpt["log_history"]) == 3
    assert (run / "train/tools/model/model.safetensors").exists()
    assert "<tool_call>" in (run / "train/tools/model/chat_template.jinja").read_text()

    results = json.loads((run / "eval/results.json").read_text())
    for model in ("trained", "base"):
        assert 0 <= results["lm_eval"][model]["cogcore_closedbook"]["acc"] <= 1
        assert results["lm_eval"][model]["cogcore_heldout_ppl"]["word_perplexity"] > 1
    assert results["agentic"]["n"] == 3
    fact_sets = results["fact_sets"]
    assert fact_sets["questions"] == {"train": 2, "heldout": 2, "changed": 2}
    for model in ("trained", "base"):
        for mode in ("closed_book", "tools"):
            assert set(fact_sets["scores"][model][mode]) == {"train", "heldout", "changed"}
    transcripts = [json.loads(line) for line in (run / "eval/fact_sets.jsonl").read_text().splitlines()]
    assert len(transcripts) == 2 * 2 * 3 * 2 and all(t["stale"] for t in transcripts if t["set"] == "changed")
    assert (run / "eval/changed-index/index.json").exists()
    assert set(results["bfcl"]) >= {"simple_python", "irrelevance"}  # real BFCL entries, scored
    assert (run / "eval/tasks/cogcore_closedbook.yaml").exists()
    measured = results["measured_throughput"]
    assert measured["prefill_tokens_per_s"] > 0 and measured["decode_tokens_per_s"] > 0

    html = (run / "report/report.html").read_text()
    assert "Measured throughput beside the estimate" in html
    assert (
        "BFCL" in html and "cogcore_closedbook" in html and "data:image/png;base64," in html and "H100" in html.upper()
    )

    asked = cli.invoke(app, ["ask", str(run), "What is the monthly fee for the Blue account?", "--max-new-tokens", "8"])
    assert asked.exit_code == 0 and "answer" in asked.output, asked.output

    view = cli.invoke(app, ["inspect", str(run), "--doc", "doc01"])
    assert view.exit_code == 0 and "strategy=mask" in view.output and "⟦" in view.output, view.output

    again = cli.invoke(app, ["run", str(recipe)])
    assert again.exit_code == 0, again.output
    assert again.output.count("[skip]") == 8

    changed = cli.invoke(app, ["run", str(recipe), "-o", "eval.agentic_questions=2"])
    assert changed.exit_code == 0, changed.output
    assert changed.output.count("[skip]") == 6  # curate, index, select, rephrase, train.cpt, train.tools
    assert json.loads((run / "eval/results.json").read_text())["agentic"]["n"] == 2


def test_stage_command_needs_its_upstream(tmp_path, make_tiny_llm, make_tiny_embedder):
    recipe, _ = _recipe(tmp_path, make_tiny_llm, make_tiny_embedder)
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 1
    assert "needs curate" in result.output
