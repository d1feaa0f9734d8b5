"""The select stage from a recipe: scores every training document, spends the budget with every
document accounted for, ranks target-like documents above junk, train.cpt trains on what it chose,
and a select stage killed half-way (SIGKILL) resumes to the same output."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.valuation.selection_files import SCORES_FILE, STATS_FILE, SelectStats, read_scores

BANK = "The {p} plan costs {n} USD a month; transfers from it settle within {d} business days of the request."
JUNK = "Home | About | Careers | Blog | Contact | Sign in | Register | Cookie settings | Sitemap {n} {d}"


def _docs() -> list[dict]:
    rng = random.Random(3)
    docs = []
    for i in range(60):
        junk = i % 3 == 0
        template = JUNK if junk else BANK
        text = "\n".join(
            template.format(p=rng.choice(["Blue", "Gold"]), n=rng.randint(1, 99), d=rng.randint(1, 30))
            for _ in range(3)
        )
        docs.append({"id": f"{'junk' if junk else 'bank'}{i:02d}", "text": text})
    return docs


@pytest.fixture()
def recipe(tmp_path, make_tiny_llm, make_tiny_embedder, tiny_proxy):
    docs = _docs()
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    texts = [d["text"] for d in docs]
    data = {
        "name": "sel",
        "run_dir": str(tmp_path / "runs"),
        "sources": [{"name": "web", "path": "docs.jsonl", "id_field": "id"}],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.3,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
        },
        "index": {"embedder": str(make_tiny_embedder(texts)), "chunk_chars": 200, "chunk_overlap": 20},
        "select": {
            "enabled": True,
            "importance": {"enabled": True},
            "classifier": {"enabled": True},
            "excess_loss": {"enabled": True},
            "proxy": {**tiny_proxy, "steps": 20},
            "rank_by": "classifier",
            "fraction": 0.5,
        },
        "train": {"cpt": {"max_steps": 2, "seq_len": 64, "batch_size": 2, "save_steps": 2}},
    }
    path = tmp_path / "sel.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_select_scores_accounts_and_prefers_target_like_documents(recipe, tmp_path):
    assert _cli("curate", recipe).exit_code == 0
    result = _cli("select", recipe)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "sel" / "select"
    stats = SelectStats.read(folder / STATS_FILE)
    table = read_scores(folder / SCORES_FILE)
    assert stats.docs_in == len(table["doc_id"]) == stats.selected + sum(stats.not_selected.values())
    assert set(table) >= {"importance", "classifier", "excess_loss", "selected", "reason", "tokens"}
    chosen = [d for d, s in zip(table["doc_id"], table["selected"]) if s]
    junk_share_pool = sum(d.startswith("junk") for d in table["doc_id"]) / len(table["doc_id"])
    assert sum(d.startswith("junk") for d in chosen) / len(chosen) < junk_share_pool / 2
    assert stats.scorers["excess_loss"]["proxy"]["final_loss"] < stats.scorers["excess_loss"]["proxy"]["first_loss"]

    assert _cli("index", recipe).exit_code == 0
    trained = _cli("train", recipe, "-o", "train.tools.enabled=false")
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "runs" / "sel" / "train" / "cpt" / "metrics.json").read_text())
    assert metrics["data"]["docs"] == stats.selected  # continued pretraining saw only what was chosen
    report = _cli("report", tmp_path / "runs" / "sel")
    assert report.exit_code == 0, report.output
    page = (tmp_path / "runs" / "sel" / "report" / "report.md").read_text()
    assert "## Data valuation" in page and f"{stats.selected} selected" in page


def test_a_killed_select_stage_resumes_to_the_same_output(recipe, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    slow = ["-o", "select.proxy.steps=400"]
    command = [sys.executable, "-m", "cogcore.cli", "select", str(recipe), *slow]
    assert (
        subprocess.run(
            [sys.executable, "-m", "cogcore.cli", "curate", str(recipe)], env=env, capture_output=True
        ).returncode
        == 0
    )
    staging = tmp_path / "runs" / "sel" / "select.new"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (staging / "scores-classifier.npy").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (staging / "scores-importance.npy").exists() and not (staging / STATS_FILE).exists()
    before = (staging / "scores-importance.npy").stat().st_mtime_ns
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "[resume] select" in again.stderr
    folder = tmp_path / "runs" / "sel" / "select"
    assert (folder / "scores-importance.npy").stat().st_mtime_ns == before  # not computed again
    resumed = read_scores(folder / SCORES_FILE)
    fresh = subprocess.run([*command, "--force", "select"], env=env, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert read_scores(folder / SCORES_FILE) == resumed


def test_inspect_shows_what_was_selected_and_what_was_left(recipe, tmp_path):
    assert _cli("curate", recipe).exit_code == 0
    assert _cli("select", recipe, "-o", "select.excess_loss.enabled=false").exit_code == 0
    shown = _cli("inspect", tmp_path / "runs" / "sel", "--selection")
    assert shown.exit_code == 0, shown.output
    assert "best selected:" in shown.output and "not selected (over_budget), best first:" in shown.output
    assert "classifier=" in shown.output and ("The Blue plan" in shown.output or "The Gold plan" in shown.output)
