"""What the valuation tests share: a tiny proxy shape, and a run of two sources (banking sentences
and noise) made from a recipe written here."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

TINY_PROXY = {
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


def _bank(rng: random.Random) -> str:
    return f"The Gold plan costs {rng.randint(1, 99)} USD a month and settles in {rng.randint(1, 9)} days."


@pytest.fixture(scope="session")
def tiny_proxy() -> dict:
    return dict(TINY_PROXY)


@pytest.fixture()
def two_sources(tmp_path, make_tiny_llm, make_tiny_embedder) -> Callable[..., Path]:
    """`make(name, **sections)` writes bank.jsonl, noise.jsonl and target.jsonl (more banking
    sentences, in neither source) and a recipe over them with the given sections; returns its path."""

    def make(name: str, seed: int = 0, **sections) -> Path:
        rng = random.Random(seed)
        files = {
            "bank": [{"id": f"bank{i}", "text": _bank(rng)} for i in range(40)],
            "noise": [
                {"id": f"noise{i}", "text": " ".join(rng.choice(["qx", "zv", "wk"]) * 3 for _ in range(30))}
                for i in range(40)
            ],
            "target": [{"text": _bank(rng)} for _ in range(20)],
        }
        for stem, rows in files.items():
            (tmp_path / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        texts = [r["text"] for r in files["bank"] + files["noise"]]
        recipe = {
            "name": name,
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
            **sections,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        return path

    return make
