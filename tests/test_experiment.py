"""`cogcore experiment`: a core and a memorizer from one recipe, on as many training tokens, both
evaluated on the three fact sets, and a comparison whose first table states the claim."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.report.run_files import read_train_metrics

COLORS = ["Blue", "Green", "Silver", "Gold", "Coral", "Indigo", "Amber", "Onyx"]


def _recipe(tmp_path, make_tiny_llm, make_tiny_embedder):
    docs = [
        {
            "id": f"doc{i:02d}",
            "title": f"{COLORS[i % 8]} account {i}",
            "content": f"The monthly fee for the {COLORS[i % 8]} account is ${i + 3}.00 unless the balance is high. "
            f"Transfers settle within {i % 9 + 2} business days after approval, every time.",
        }
        for i in range(30)
    ]
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    texts = [d["content"] for d in docs]
    recipe = {
        "name": "tinyexp",
        "run_dir": str(tmp_path / "runs"),
        "sources": [
            {
                "name": "kb",
                "path": "docs.json",
                "format": "json",
                "text_field": "content",
                "id_field": "id",
                "title_field": "title",
            }
        ],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {"min_chars": 40, "heldout_fraction": 0.3, "dedup": {"minhash": {"enabled": False}}},
        "index": {"embedder": str(make_tiny_embedder(texts)), "chunk_chars": 200, "chunk_overlap": 20},
        "train": {
            "cpt": {"max_steps": 2, "seq_len": 64, "batch_size": 2, "save_steps": 10},
            "tools": {"max_steps": 2, "seq_len": 1024, "batch_size": 2, "conversations": 4, "save_steps": 10},
        },
        "eval": {
            "questions": 4,
            "perplexity_docs": 2,
            "openbook_passages": 0,
            "agentic_questions": 0,
            "max_new_tokens": 8,
            "throughput": {"enabled": False},
            "fact_sets": {"questions": 2},
        },
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_the_experiment_trains_both_arms_on_as_many_tokens_and_states_the_claim(
    tmp_path, make_tiny_llm, make_tiny_embedder
):
    result = CliRunner().invoke(app, ["experiment", str(_recipe(tmp_path, make_tiny_llm, make_tiny_embedder))])
    assert result.exit_code == 0, result.output
    runs = tmp_path / "runs"
    core, memorizer = runs / "tinyexp-core", runs / "tinyexp-memorizer"
    core_tokens = sum(read_train_metrics(core, s).tokens_trained for s in ("cpt", "tools"))
    memorizer_cpt = read_train_metrics(memorizer, "cpt")
    assert read_train_metrics(memorizer, "tools").skipped and memorizer_cpt.max_tokens == core_tokens
    for run, strategy in ((core, "toolcall"), (memorizer, "keep")):
        recipe = yaml.safe_load((run / "recipe.resolved.yaml").read_text())
        assert recipe["facts"]["strategy"] == strategy
        scores = json.loads((run / "eval/results.json").read_text())["fact_sets"]["scores"]["trained"]
        assert set(scores) == {"closed_book", "tools"} and set(scores["tools"]) == {"train", "heldout", "changed"}
    md = (runs / "tinyexp-compare" / "compare.md").read_text()
    assert md.index("The claim") < md.index("Quality")
    assert "held-out facts answered" in md and ("This run supports" in md or "This run does not support" in md)
