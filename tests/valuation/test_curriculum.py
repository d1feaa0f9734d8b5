"""Curricula order documents by value; annealing reads the best again at the end; a short run keeps
the part the curriculum weighs; the stage records it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.valuation.curriculum import curriculum_order, trim

DOCS = [{"id": f"d{i}"} for i in range(10)]
RANKS = {f"d{i}": float(i) for i in range(10)} | {"d3": float("nan")}
TOKENS = {f"d{i}": 10 for i in range(10)}


def test_ascending_puts_the_most_valuable_last_and_unvalued_first():
    docs, record = curriculum_order(DOCS, RANKS, TOKENS, "ascending", anneal_fraction=0.2, seed=0)
    assert [d["id"] for d in docs][:2] == ["d3", "d0"] and docs[-1]["id"] == "d9" and record["docs"] == 10
    docs, _ = curriculum_order(DOCS, RANKS, TOKENS, "descending", anneal_fraction=0.2, seed=0)
    assert docs[0]["id"] == "d9" and docs[-1]["id"] == "d3"


def test_anneal_reads_the_best_again_for_the_last_share_of_tokens():
    docs, record = curriculum_order(DOCS, RANKS, TOKENS, "anneal", anneal_fraction=0.2, seed=0)
    tail = docs[10:]
    assert [d["id"] for d in tail] == ["d9", "d8", "d7"]  # 100 tokens shuffled, then >= 25 of the best
    assert record["anneal_tokens"] / (100 + record["anneal_tokens"]) >= 0.2
    assert sorted(d["id"] for d in docs[:10]) == sorted(d["id"] for d in DOCS)


def test_a_short_run_keeps_what_the_curriculum_weighs():
    assert list(trim(10, 4, "ascending")) == [6, 7, 8, 9]
    assert list(trim(10, 4, "anneal")) == [6, 7, 8, 9]
    assert list(trim(10, 4, "descending")) == [0, 1, 2, 3]
    assert list(trim(10, 40, "anneal")) == list(range(10))


def test_the_cpt_stage_trains_in_curriculum_order_and_records_it(tmp_path, make_tiny_llm, make_tiny_embedder):
    import random

    import yaml

    rng = random.Random(0)
    docs = [
        {
            "id": f"d{i}",
            "text": f"The Gold plan costs {rng.randint(1, 99)} USD a month; transfers settle in "
            f"{rng.randint(1, 9)} days. " * 2,
        }
        for i in range(40)
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    texts = [d["text"] for d in docs]
    recipe = {
        "name": "cur",
        "run_dir": str(tmp_path / "runs"),
        "sources": [{"name": "bank", "path": "docs.jsonl", "id_field": "id"}],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.2,
            "boilerplate": {"enabled": False},
            "dedup": {"exact": False, "minhash": {"enabled": False}},
            "warn_drop_fraction": None,
        },
        "index": {"embedder": str(make_tiny_embedder(texts))},
        "select": {
            "enabled": True,
            "importance": {"enabled": True},
            "fraction": 1.0,
            "curriculum": "anneal",
            "anneal_fraction": 0.25,
        },
        "train": {
            "cpt": {"max_steps": 2, "seq_len": 32, "batch_size": 2, "packing": False},
            "tools": {"enabled": False},
        },
    }
    path = tmp_path / "cur.yaml"
    path.write_text(yaml.safe_dump(recipe))
    for command in ("curate", "index", "train"):
        result = CliRunner().invoke(app, [command, str(path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "runs" / "cur" / "train" / "cpt" / "metrics.json").read_text())["data"]
    assert data["curriculum"]["kind"] == "anneal" and data["curriculum"]["anneal_docs"] > 0
    assert data["curriculum"]["rows_read"] == 4  # 2 steps x 2 rows: the annealed end of the order
