"""The rephrase stage from a recipe, on a tiny random generator: every rewrite is accounted for
(asked = kept + rejected by reason, per style), a second run is skipped, a run killed after its first
shard resumes to the same files, `cogcore inspect --rephrase` shows the verdicts; off, it writes a
one-line record. Recipe errors name the field."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.recipe import RecipeError, validate
from cogcore.rephrase.files import DOCS_FILE, FACTS_FILE, REJECTED_FILE, STATS_FILE, RephraseStats
from cogcore.rephrase.gate import REASONS

PRODUCTS = ["Gold Card", "Silver Account", "Bronze Account", "Blue Saver"]
TEMPLATE = (
    "The {p} charges a monthly fee of ${fee}. Transfers from the {p} settle within {d} business days, "
    "and customers may hold up to {n} of them. Call about ticket #{t} for details."
)


def _docs(n: int = 16) -> list[dict]:
    return [
        {
            "id": f"doc{i:02d}",
            "text": TEMPLATE.format(p=PRODUCTS[i % 4], fee=5 + i, d=2 + i % 5, n=1 + i % 3, t=48000 + 17 * i),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm([d["text"] for d in _docs()])


@pytest.fixture()
def recipe(tmp_path, llm_dir):
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in _docs()))
    data = {
        "name": "reph",
        "run_dir": str(tmp_path / "runs"),
        "sources": [{"name": "bank", "path": "docs.jsonl", "id_field": "id"}],
        "base_model": {"path": str(llm_dir)},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.0,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
        },
        "index": {"embedder": str(llm_dir)},
        "rephrase": {
            "enabled": True,
            "rewrites_per_doc": 2,
            "max_new_tokens": 24,
            "batch_size": 4,
            "shard_docs": 4,
            "rejected_samples": 3,
        },
    }
    path = tmp_path / "reph.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _outputs(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in (DOCS_FILE, FACTS_FILE, REJECTED_FILE)}


def test_every_rewrite_is_accounted_for_by_style_and_reason(recipe, tmp_path):
    assert _cli("curate", recipe).exit_code == 0
    result = _cli("rephrase", recipe)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "reph" / "rephrase"
    stats = RephraseStats.read(folder / STATS_FILE)
    assert stats.documents_in == stats.documents_considered == 16
    assert stats.requested == 16 * 2 == stats.accepted + sum(stats.rejected.values())
    assert set(stats.rejected) <= set(REASONS) and stats.rejected  # a random model's rewrites fail the gate
    assert {s: c["requested"] for s, c in stats.by_style.items()} == {"wikipedia": 11, "qa": 11, "knowledge_list": 10}
    for c in stats.by_style.values():
        assert c["requested"] == c["accepted"] + sum(c["rejected"].values())
    kept = [json.loads(line) for line in (folder / DOCS_FILE).read_text().splitlines()]
    assert len(kept) == stats.accepted
    rejected = [json.loads(line) for line in (folder / REJECTED_FILE).read_text().splitlines()]
    assert len(rejected) == sum(min(n, 3) for n in stats.rejected.values())  # rejected_samples per reason
    assert all(r["reason"] == r["gate"]["reason"] and r["source"].startswith("The ") for r in rejected)
    assert stats.shards == 4 and stats.generated_tokens > 0 and stats.tokens_per_s > 0
    cost = stats.cost_estimate
    assert cost["rewrites"] == 32 and cost["gpu_hours"] > 0 and cost["usd"] > 0 and cost["gpu"] == "h100"

    again = _cli("rephrase", recipe)
    assert again.exit_code == 0 and "[skip] rephrase" in again.output

    shown = _cli("inspect", tmp_path / "runs" / "reph", "--rephrase")
    assert shown.exit_code == 0, shown.output
    assert f"16 of 16 training documents rewritten, 32 rewrites: {stats.accepted} kept" in shown.output
    assert "rejected (samples by reason):" in shown.output and "source : The " in shown.output

    report = _cli("report", tmp_path / "runs" / "reph")
    assert report.exit_code == 0, report.output
    page = (tmp_path / "runs" / "reph" / "report" / "report.md").read_text()
    assert "## Rephrasing" in page and f"{stats.accepted} kept" in page and "GPU-hours" in page


def test_off_it_writes_a_one_line_record_and_train_sees_no_rewrite(recipe, tmp_path):
    assert _cli("curate", recipe).exit_code == 0
    assert _cli("rephrase", recipe, "-o", "rephrase.enabled=false").exit_code == 0
    folder = tmp_path / "runs" / "reph" / "rephrase"
    assert RephraseStats.read(folder / STATS_FILE) == RephraseStats(enabled=False)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [STATS_FILE]
    shown = _cli("inspect", tmp_path / "runs" / "reph", "--rephrase")
    assert "rephrase.enabled is false" in shown.output


def test_a_killed_rephrase_stage_resumes_to_the_same_files(recipe, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cli = [sys.executable, "-m", "cogcore.cli"]
    slow = ["-o", "rephrase.max_new_tokens=300", "-o", "rephrase.shard_docs=2", "-o", "rephrase.batch_size=2"]
    assert subprocess.run([*cli, "curate", str(recipe)], env=env, capture_output=True).returncode == 0
    work = tmp_path / "runs" / "reph" / "rephrase.new" / "work"
    proc = subprocess.Popen(
        [*cli, "rephrase", str(recipe), *slow], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 180
    while not (work / "shard-00000.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = sorted(work.glob("shard-*.json"))
    assert 1 <= len(committed) < 8 and not (work.parent / STATS_FILE).exists()
    first = committed[0].stat().st_mtime_ns
    again = subprocess.run([*cli, "rephrase", str(recipe), *slow], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "[resume] rephrase" in again.stderr
    folder = tmp_path / "runs" / "reph" / "rephrase"
    assert (folder / "work" / "shard-00000.json").stat().st_mtime_ns == first  # not generated again
    stats = RephraseStats.read(folder / STATS_FILE)
    assert stats.shards == 8 and stats.shards_resumed == len(committed)
    assert stats.requested == 32 == stats.accepted + sum(stats.rejected.values())
    resumed = _outputs(folder)
    fresh = subprocess.run([*cli, "rephrase", str(recipe), *slow, "--force", "rephrase"], env=env, capture_output=True)
    assert fresh.returncode == 0, fresh.stderr
    assert _outputs(folder) == resumed


def _recipe(tmp_path: Path, **rephrase) -> dict:
    (tmp_path / "m").mkdir(exist_ok=True)
    return {
        "name": "r",
        "sources": [{"name": "s", "path": "x.jsonl"}],
        "base_model": {"path": str(tmp_path / "m")},
        "index": {"embedder": str(tmp_path / "m")},
        "rephrase": {"enabled": True, **rephrase},
    }


@pytest.mark.parametrize(
    "section, message",
    [
        ({"styles": ["wikipedia", "poem"]}, r"rephrase: .*prompts: style 'poem' has no default prompt"),
        ({"prompts": {"qa": "Rewrite this."}}, r"rephrase: .*prompts\.qa: .*\{passage\}"),
        ({"prompts": {"haiku": "{passage}"}}, r"rephrase: .*prompts: \['haiku'\] are not in styles"),
        ({"rewrites_per_doc": 4}, r"rephrase: .*rewrites_per_doc: .*raise temperature"),
        ({"gpu": "tpu9"}, r"rephrase: .*gpu: unknown GPU profile 'tpu9'"),
        ({"gate": {"min_length_ratio": 2, "max_length_ratio": 1}}, r"rephrase\.gate: .*min_length_ratio"),
        ({"documents": "low_score"}, r"rephrase\.documents: low_score .*enable select"),
        ({"ratio": 0}, r"rephrase\.ratio: "),
    ],
)
def test_recipe_errors_name_the_field(tmp_path, section, message):
    with pytest.raises(RecipeError, match=message):
        validate(_recipe(tmp_path, **section))


def test_a_style_of_ones_own_with_its_prompt_is_valid(tmp_path):
    recipe = validate(_recipe(tmp_path, styles=["qa", "faq"], prompts={"faq": "Write an FAQ of:\n{passage}"}))
    assert (
        recipe.rephrase.style_prompts()["faq"].endswith("{passage}") and "Q: " in recipe.rephrase.style_prompts()["qa"]
    )


def test_low_score_takes_the_lowest_ranked_share_and_share_a_seeded_one(tmp_path, curated_writer):
    from cogcore.stages.rephrase import chosen_positions, lowest_scored
    from cogcore.stages.training_corpus import CuratedIndex
    from cogcore.valuation.selection_files import SCORES_FILE, write_scores

    run = tmp_path / "run"
    docs = [{"id": f"d{i}", "text": f"text {i}", "source": "s", "meta": {"split": "train"}} for i in range(10)]
    curated_writer(run / "curate", docs, [])
    ranks = [0.5, float("nan"), 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4]
    (run / "select").mkdir()
    write_scores(run / "select" / SCORES_FILE, {"doc_id": [d["id"] for d in docs], "rank": ranks})
    index = CuratedIndex.build(run / "curate", "train")
    assert lowest_scored(run / "select", index, "rank", 0.3) == [1, 3, 7]  # NaN (outside the band) lowest
    with pytest.raises(ValueError, match=r"rephrase\.score: 'importance' is not a column"):
        lowest_scored(run / "select", index, "importance", 0.3)
    recipe = validate(_recipe(tmp_path, documents="share", share=0.4))
    chosen = chosen_positions(recipe, run, index)
    assert len(chosen) == 4 and chosen == sorted(chosen) and chosen == chosen_positions(recipe, run, index)
