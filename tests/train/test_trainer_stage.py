"""The train.cpt stage as `cogcore run` builds it: packing, a token budget and replay text from the
recipe, tokens cached in the stage folder (a second run loads them), counts in metrics.json, and the
replay files in the stage's fingerprint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cogcore.recipe import validate
from cogcore.stages import build_stages
from cogcore.train.metrics import TrainMetrics

TEXTS = [f"Account {n} costs {n * 3} USD per month and settles within {n % 7 + 1} business days." for n in range(24)]
GENERAL = [f"The river runs past the old mill number {n} and on to the sea." for n in range(50)]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS + GENERAL)


def _setup(tmp_path: Path, llm_dir: Path, cpt: dict, write_curated):
    (tmp_path / "general.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in GENERAL))
    docs = [{"id": str(n), "text": t, "source": "s", "meta": {"split": "train"}} for n, t in enumerate(TEXTS)]
    start = TEXTS[1].index("3 USD")
    write_curated(
        tmp_path / "runs" / "t" / "curate",
        docs,
        [
            {
                "id": "f",
                "doc_id": "1",
                "start": start,
                "end": start + 5,
                "text": "3 USD",
                "kind": "amount",
                "context": TEXTS[1],
            }
        ],
    )
    recipe = validate(
        {
            "name": "t",
            "run_dir": str(tmp_path / "runs"),
            "sources": [{"name": "s", "path": "general.jsonl"}],
            "base_model": {"path": str(llm_dir)},
            "index": {"embedder": str(llm_dir)},
            "train": {"cpt": cpt},
        }
    )
    (stage,) = [s for s in build_stages(recipe.resolved(tmp_path)) if s.name == "train.cpt"]
    return recipe, stage, tmp_path / "runs" / "t"


def test_cpt_stage_packs_budgets_replays_and_caches_tokens(llm_dir, tmp_path, curated_writer):
    cpt = {
        "method": "full",
        "seq_len": 32,
        "batch_size": 2,
        "max_tokens": 3 * 2 * 32,
        "save_steps": 100,
        "replay": {"path": "general.jsonl", "format": "jsonl", "ratio": 0.2},
    }
    recipe, stage, run = _setup(tmp_path, llm_dir, cpt, curated_writer)
    assert stage.config["replay_files"][0]["path"].endswith("general.jsonl")
    assert stage.config["cpt"]["replay"]["path"] == str(tmp_path / "general.jsonl")  # resolved beside the recipe
    folder = run / "train" / "cpt"
    folder.mkdir(parents=True)
    stage.run(folder)
    metrics = TrainMetrics.read(folder / "metrics.json")
    data = metrics.data
    mean_row = (data["tokens"] + data["replay_tokens"]) / data["rows"]  # every row full but the last
    assert metrics.steps == math.ceil(192 / (2 * mean_row)) and mean_row < 32
    assert metrics.packed is True and metrics.max_tokens == 192
    assert data["tokens_cached"] is False and data["docs"] == len(TEXTS) and data["masked_tokens"] > 0
    assert data["replay_tokens"] == data["replay_target_tokens"] == round(data["tokens"] * 0.2 / 0.8)
    assert data["replay_docs"] < len(GENERAL)
    assert (folder / "model" / "model.safetensors").exists()
    (cached,) = folder.glob("tokens-*")

    (folder / "metrics.json").unlink()
    stage.run(folder)  # a re-run (as after a kill) loads the rows instead of tokenizing again
    again = TrainMetrics.read(folder / "metrics.json")
    assert again.data["tokens_cached"] is True and list(folder.glob("tokens-*")) == [cached]
    assert {k: v for k, v in again.data.items() if k not in ("tokens_cached",)} == {
        k: v for k, v in data.items() if k not in ("tokens_cached",)
    }
    assert again.steps == metrics.steps  # resumed from its last checkpoint: already done


def test_qlora_stage_fails_at_its_start_naming_the_field(llm_dir, curated_writer, tmp_path):
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes"):
        pytest.skip("this machine can run qlora")
    recipe, stage, run = _setup(tmp_path, llm_dir, {"method": "qlora"}, curated_writer)
    folder = run / "train" / "cpt"
    folder.mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"^train\.cpt\.method: qlora"):
        stage.run(folder)
    assert not list(folder.iterdir())  # nothing loaded, tokenized or written
