"""Learned group weights reach training: the select stage learns them on a proxy, train.cpt
resamples each source's documents to them; RegMix's weights and source ablations from a recipe."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.valuation.ablation import NOISE_ROW
from cogcore.valuation.mixture import resample_by_weight
from cogcore.valuation.selection_files import MIXTURE_FILE, MixtureRecord


def _run(*commands) -> None:
    for command in commands:
        result = CliRunner().invoke(app, [str(c) for c in command], catch_exceptions=False)
        assert result.exit_code == 0, result.output


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


def test_a_learned_mixture_reaches_continued_pretraining(two_sources, tiny_proxy, tmp_path):
    path = two_sources(
        "mix",
        select={
            "enabled": True,
            "target": "source:bank",
            "proxy": tiny_proxy,
            "mixture": {"method": "alignment", "every": 5, "floor": 0.1},
        },
        train={"cpt": {"max_steps": 1, "seq_len": 64, "batch_size": 2}, "tools": {"enabled": False}},
    )
    _run(["curate", path], ["index", path], ["train", path], ["report", tmp_path / "runs" / "mix"])
    record = MixtureRecord.read(tmp_path / "runs" / "mix" / "select" / MIXTURE_FILE)
    assert record.weights["bank"] > record.natural["bank"] and min(record.weights.values()) >= 0.1 - 1e-9
    assert len(record.trajectory) == 1 + tiny_proxy["steps"] // 5
    metrics = json.loads((tmp_path / "runs" / "mix" / "train" / "cpt" / "metrics.json").read_text())
    mixed = metrics["data"]["mixture"]
    assert mixed["bank"]["tokens_after"] / (mixed["bank"]["tokens_after"] + mixed["noise"]["tokens_after"]) > 0.55
    assert "Mixture weights (alignment)" in (tmp_path / "runs" / "mix" / "report" / "report.md").read_text()


def test_regmix_weights_from_short_runs_reach_the_report(two_sources, tiny_proxy, tmp_path):
    path = two_sources(
        "reg",
        select={
            "enabled": True,
            "target": "source:bank",
            "proxy": tiny_proxy,
            "mixture": {"method": "regmix", "runs": 6, "run_steps": 10},
        },
    )
    _run(["curate", path], ["select", path], ["report", tmp_path / "runs" / "reg"])
    record = MixtureRecord.read(tmp_path / "runs" / "reg" / "select" / MIXTURE_FILE)
    assert record.method == "regmix" and len(record.runs) == 6 and record.weights["bank"] > record.natural["bank"]
    assert "Mixture weights (regmix)" in (tmp_path / "runs" / "reg" / "report" / "report.md").read_text()


def test_ablation_by_source_reports_what_each_source_contributes(two_sources, tiny_proxy, tmp_path):
    path = two_sources("abl", select={"target": "target.jsonl", "proxy": tiny_proxy})
    early = CliRunner().invoke(app, ["ablate", str(path)], catch_exceptions=False)
    assert early.exit_code == 2 and "cogcore curate" in early.output
    _run(["curate", path], ["ablate", path, "--by", "source"])
    rows = {
        r["group"]: r for r in json.loads((tmp_path / "runs" / "abl" / "ablate" / "source.json").read_text())["rows"]
    }
    # the target is banking text: leaving banking out hurts, leaving the noise out does not
    assert rows["bank"]["contribution"] > 0.2 > rows["noise"]["contribution"]
    assert abs(rows[NOISE_ROW]["contribution"]) < rows["bank"]["contribution"]  # another seed: a smaller change
    _run(["report", tmp_path / "runs" / "abl"])
    assert "### Ablation by source" in (tmp_path / "runs" / "abl" / "report" / "report.md").read_text()


def test_the_bi_level_loop_runs_inside_continued_pretraining(two_sources, tiny_proxy, tmp_path):
    path = two_sources(
        "online",
        select={
            "enabled": True,
            "target": "target.jsonl",
            "proxy": tiny_proxy,
            "mixture": {"method": "alignment", "where": "training", "every": 2, "floor": 0.1, "eta": 2.0},
        },
        train={"cpt": {"max_steps": 6, "seq_len": 64, "batch_size": 2, "save_steps": 100}, "tools": {"enabled": False}},
    )
    _run(["curate", path], ["index", path], ["train", path])
    run = tmp_path / "runs" / "online"
    assert not (run / "select" / MIXTURE_FILE).exists()  # learned in training, not on a proxy
    online = json.loads((run / "train" / "cpt" / "metrics.json").read_text())["data"]["online_mixture"]
    assert online["groups"] == ["bank", "noise"] and len(online["trajectory"]) == 1 + 6 // 2
    assert online["trajectory"][-1] != online["trajectory"][0]  # the outer loop moved the weights
    assert min(min(w) for w in online["trajectory"]) >= 0.1 - 1e-9
    assert sum(online["rows_drawn"].values()) == 6 * 2
    _run(["report", run])
    assert "moved during continued pretraining" in (run / "report" / "report.md").read_text()


def test_the_online_mixture_refuses_what_it_cannot_do(two_sources, tiny_proxy):
    from cogcore.recipe import RecipeError, load_recipe

    mixture = {"method": "alignment", "where": "training"}
    for extra, message in [
        ({"curriculum": "anneal", "importance": {"enabled": True}, "fraction": 1.0}, "pick one"),
        ({}, "one process"),
    ]:
        train = {"distributed": {"processes": 2}} if message == "one process" else {}
        path = two_sources("bad", select={"enabled": True, "mixture": mixture, **extra}, train=train)
        try:
            load_recipe(path)
        except RecipeError as e:
            assert message in str(e)
        else:
            raise AssertionError(f"accepted a recipe that should fail with {message!r}")


def test_ablation_by_cluster_groups_documents_by_their_embeddings(two_sources, tiny_proxy, tmp_path):
    path = two_sources(
        "ablc",
        select={"target": "target.jsonl", "proxy": tiny_proxy},
        curate={
            "min_chars": 20,
            "heldout_fraction": 0.2,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
            "rebalance": {"clusters": 2},
        },
    )
    _run(["curate", path], ["ablate", path, "--by", "cluster"])
    data = json.loads((tmp_path / "runs" / "ablc" / "ablate" / "cluster.json").read_text())
    groups = [r["group"] for r in data["rows"]]
    assert groups[:2] == ["(all)", NOISE_ROW] and set(groups[2:]) <= {"cluster-0", "cluster-1"} and len(groups) == 4
    assert sum(r["documents"] for r in data["rows"][2:]) == data["rows"][0]["documents"]


def test_ablation_by_filter_adds_back_what_each_filter_dropped(two_sources, tiny_proxy, tmp_path):
    path = two_sources(
        "ablf",
        select={"target": "target.jsonl", "proxy": tiny_proxy},
        curate={
            "min_chars": 20,
            "heldout_fraction": 0.2,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
            "quality": {"gopher_repetition": {"enabled": True}},
        },
    )
    _run(["curate", path], ["ablate", path, "--by", "filter"], ["report", tmp_path / "runs" / "ablf"])
    run = tmp_path / "runs" / "ablf"
    rows = {r["group"]: r for r in json.loads((run / "ablate" / "filter.json").read_text())["rows"]}
    stats = json.loads((run / "curate" / "stats.json").read_text())
    by_step = {s["step"]: sum(s["dropped"].values()) for s in stats["steps"]}
    filters = {g.removeprefix("filter:"): r["documents"] for g, r in rows.items() if g.startswith("filter:")}
    # the replay drops exactly what curation dropped, step by step
    assert filters and all(by_step[name] == n for name, n in filters.items())
    curated = rows["(only (curated))"]
    assert rows["(all)"]["documents"] == curated["documents"] + sum(filters.values())
    # the filters drop the noise: the curated documents alone model the banking target better
    assert curated["contribution"] < 0
    assert "Ablation by filter" in (run / "report" / "report.md").read_text()
