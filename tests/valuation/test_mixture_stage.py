"""Learned group weights reach training: the select stage learns them on a proxy, train.cpt
resamples each source's documents to them."""

from __future__ import annotations

import json
import random

import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.valuation.mixture import resample_by_weight
from cogcore.valuation.selection_files import MIXTURE_FILE, MixtureRecord

PROXY = {
    "hidden": 32,
    "layers": 2,
    "heads": 2,
    "intermediate": 64,
    "seq_len": 32,
    "vocab_size": 300,
    "steps": 30,
    "batch_size": 8,
    "lr": 0.01,
}


def test_resampling_moves_token_shares_to_the_weights_within_the_repeat_cap():
    docs = [{"id": f"a{i}", "source": "a"} for i in range(40)] + [{"id": f"b{i}", "source": "b"} for i in range(10)]
    tokens = [10] * 50
    out, report = resample_by_weight(
        docs, tokens, {"a": 0.5, "b": 0.5}, group_of=lambda d: d["source"], seed=0, max_repeat=4
    )
    assert report["a"]["tokens_after"] == 250 and report["b"]["tokens_after"] == 250  # 500 tokens, half each
    assert sum(d["source"] == "b" for d in out) == 25  # ten documents, two and a half times
    _, capped = resample_by_weight(
        docs, tokens, {"a": 0.05, "b": 0.95}, group_of=lambda d: d["source"], seed=0, max_repeat=2
    )
    assert capped["b"]["tokens_after"] == 200  # at most twice its 100 tokens


def test_a_learned_mixture_reaches_continued_pretraining(tmp_path, make_tiny_llm, make_tiny_embedder):
    rng = random.Random(0)
    bank = [
        {
            "id": f"bank{i}",
            "text": f"The Gold plan costs {rng.randint(1, 99)} USD a month and settles in "
            f"{rng.randint(1, 9)} days; fees for the Blue plan are {rng.randint(1, 9)} USD.",
        }
        for i in range(40)
    ]
    noise = [
        {"id": f"noise{i}", "text": " ".join(rng.choice(["qx", "zv", "wk"]) * 3 for _ in range(30))} for i in range(40)
    ]
    (tmp_path / "bank.jsonl").write_text("".join(json.dumps(d) + "\n" for d in bank))
    (tmp_path / "noise.jsonl").write_text("".join(json.dumps(d) + "\n" for d in noise))
    texts = [d["text"] for d in bank + noise]
    recipe = {
        "name": "mix",
        "run_dir": str(tmp_path / "runs"),
        "sources": [
            {"name": "bank", "path": "bank.jsonl", "id_field": "id"},
            {"name": "noise", "path": "noise.jsonl", "id_field": "id"},
        ],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.2,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
            "quality": {},
        },
        "index": {"embedder": str(make_tiny_embedder(texts)), "chunk_chars": 200, "chunk_overlap": 20},
        "select": {
            "enabled": True,
            "target": "source:bank",
            "proxy": PROXY,
            "mixture": {"method": "alignment", "every": 5, "floor": 0.1},
        },
        "train": {"cpt": {"max_steps": 1, "seq_len": 64, "batch_size": 2}, "tools": {"enabled": False}},
    }
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(recipe))
    cli = CliRunner()
    for command in ("curate", "index", "train"):
        result = cli.invoke(app, [command, str(path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    record = MixtureRecord.read(tmp_path / "runs" / "mix" / "select" / MIXTURE_FILE)
    assert record.weights["bank"] > record.natural["bank"] and min(record.weights.values()) >= 0.1 - 1e-9
    assert len(record.trajectory) == 1 + PROXY["steps"] // 5
    metrics = json.loads((tmp_path / "runs" / "mix" / "train" / "cpt" / "metrics.json").read_text())
    mixed = metrics["data"]["mixture"]
    assert mixed["bank"]["tokens_after"] / (mixed["bank"]["tokens_after"] + mixed["noise"]["tokens_after"]) > 0.55
    report = cli.invoke(app, ["report", str(tmp_path / "runs" / "mix")], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    assert "Mixture weights (alignment)" in (tmp_path / "runs" / "mix" / "report" / "report.md").read_text()


def test_ablation_by_source_reports_what_each_source_contributes(tmp_path, make_tiny_llm, make_tiny_embedder):
    rng = random.Random(1)
    bank = [
        {
            "id": f"bank{i}",
            "text": f"The Gold plan costs {rng.randint(1, 99)} USD a month and settles in {rng.randint(1, 9)} days.",
        }
        for i in range(40)
    ]
    noise = [
        {"id": f"noise{i}", "text": " ".join(rng.choice(["qx", "zv", "wk"]) * 3 for _ in range(30))} for i in range(40)
    ]
    (tmp_path / "bank.jsonl").write_text("".join(json.dumps(d) + "\n" for d in bank))
    (tmp_path / "noise.jsonl").write_text("".join(json.dumps(d) + "\n" for d in noise))
    target = [
        {"text": f"The Gold plan costs {rng.randint(1, 99)} USD a month and settles in {rng.randint(1, 9)} days."}
        for _ in range(20)
    ]
    (tmp_path / "target.jsonl").write_text("".join(json.dumps(d) + "\n" for d in target))
    texts = [d["text"] for d in bank + noise]
    recipe = {
        "name": "abl",
        "run_dir": str(tmp_path / "runs"),
        "sources": [
            {"name": "bank", "path": "bank.jsonl", "id_field": "id"},
            {"name": "noise", "path": "noise.jsonl", "id_field": "id"},
        ],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.3,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
        },
        "index": {"embedder": str(make_tiny_embedder(texts))},
        "select": {"target": "target.jsonl", "proxy": PROXY},
    }
    path = tmp_path / "abl.yaml"
    path.write_text(yaml.safe_dump(recipe))
    cli = CliRunner()
    early = cli.invoke(app, ["ablate", str(path)], catch_exceptions=False)
    assert early.exit_code == 2 and "cogcore curate" in early.output
    assert cli.invoke(app, ["curate", str(path)], catch_exceptions=False).exit_code == 0
    result = cli.invoke(app, ["ablate", str(path), "--by", "source"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {
        r["group"]: r for r in json.loads((tmp_path / "runs" / "abl" / "ablate" / "source.json").read_text())["rows"]
    }
    # the target is banking text: leaving banking out hurts, leaving the noise out does not
    assert rows["bank"]["contribution"] > 0.2 > rows["noise"]["contribution"]
    assert cli.invoke(app, ["report", str(tmp_path / "runs" / "abl")], catch_exceptions=False).exit_code == 0
    assert "### Ablation by source" in (tmp_path / "runs" / "abl" / "report" / "report.md").read_text()


def test_regmix_weights_from_short_runs_reach_the_report(tmp_path, make_tiny_llm, make_tiny_embedder):
    rng = random.Random(2)
    bank = [
        {
            "id": f"bank{i}",
            "text": f"The Gold plan costs {rng.randint(1, 99)} USD a month and settles in {rng.randint(1, 9)} days.",
        }
        for i in range(40)
    ]
    noise = [
        {"id": f"noise{i}", "text": " ".join(rng.choice(["qx", "zv", "wk"]) * 3 for _ in range(30))} for i in range(40)
    ]
    (tmp_path / "bank.jsonl").write_text("".join(json.dumps(d) + "\n" for d in bank))
    (tmp_path / "noise.jsonl").write_text("".join(json.dumps(d) + "\n" for d in noise))
    texts = [d["text"] for d in bank + noise]
    recipe = {
        "name": "reg",
        "run_dir": str(tmp_path / "runs"),
        "sources": [
            {"name": "bank", "path": "bank.jsonl", "id_field": "id"},
            {"name": "noise", "path": "noise.jsonl", "id_field": "id"},
        ],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.2,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
        },
        "index": {"embedder": str(make_tiny_embedder(texts))},
        "select": {
            "enabled": True,
            "target": "source:bank",
            "proxy": PROXY,
            "mixture": {"method": "regmix", "runs": 6, "run_steps": 10},
        },
    }
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump(recipe))
    cli = CliRunner()
    for command in (["curate", str(path)], ["select", str(path)], ["report", str(tmp_path / "runs" / "reg")]):
        result = cli.invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    record = MixtureRecord.read(tmp_path / "runs" / "reg" / "select" / MIXTURE_FILE)
    assert record.method == "regmix" and len(record.runs) == 6 and record.weights["bank"] > record.natural["bank"]
    assert "Mixture weights (regmix)" in (tmp_path / "runs" / "reg" / "report" / "report.md").read_text()
