"""Rho-1's token-level selection: a reference fine-tuned on the target, the top share of trainable
tokens by excess loss keep their labels, masked facts stay masked, the stage records it."""

from __future__ import annotations

import json

import numpy as np
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.train.packing import IGNORE_INDEX
from cogcore.train.token_selection import select_tokens, token_losses


def test_the_top_share_by_excess_loss_keeps_its_labels_and_masked_tokens_stay_masked(make_tiny_llm):
    path = make_tiny_llm(["the fee is five dollars a month"] * 4)
    base = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(1)
    reference = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # another model: the excess losses differ token by token
    ids = list(range(3, 23))
    rows = [
        {"input_ids": ids, "labels": ids[:10] + [IGNORE_INDEX] * 10, "position_ids": list(range(20))},
        {"input_ids": ids, "labels": list(ids), "position_ids": list(range(10)) * 2},
    ]
    labels, record = select_tokens(base, reference, rows, keep=0.5)
    assert record["trainable_tokens"] == 30
    assert all(lab == IGNORE_INDEX for lab in labels[0][10:])  # masked before, masked after
    assert 12 <= record["kept_tokens"] <= 16  # about half of the 28 predictable trainable tokens
    losses = token_losses(base, rows[1:])[0]
    assert np.isnan(losses[0]) and np.isnan(losses[10])  # each packed document's first token


def test_the_cpt_stage_trains_on_the_selected_tokens(tmp_path, make_tiny_llm, make_tiny_embedder):
    import random

    import yaml

    rng = random.Random(0)
    docs = [
        {
            "id": f"d{i}",
            "text": f"The Gold plan costs {rng.randint(1, 99)} USD a month; transfers settle in "
            f"{rng.randint(1, 9)} days.",
        }
        for i in range(30)
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    texts = [d["text"] for d in docs]
    recipe = {
        "name": "rho1",
        "run_dir": str(tmp_path / "runs"),
        "sources": [{"name": "bank", "path": "docs.jsonl", "id_field": "id"}],
        "base_model": {"path": str(make_tiny_llm(texts))},
        "curate": {
            "min_chars": 20,
            "heldout_fraction": 0.3,
            "boilerplate": {"enabled": False},
            "dedup": {"minhash": {"enabled": False}},
            "warn_drop_fraction": None,
        },
        "index": {"embedder": str(make_tiny_embedder(texts))},
        "train": {
            "cpt": {
                "max_steps": 2,
                "seq_len": 64,
                "batch_size": 2,
                "token_selection": {"enabled": True, "keep": 0.5, "reference_steps": 2},
            },
            "tools": {"enabled": False},
        },
    }
    path = tmp_path / "rho1.yaml"
    path.write_text(yaml.safe_dump(recipe))
    for command in ("curate", "index", "train"):
        result = CliRunner().invoke(app, [command, str(path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "rho1" / "train" / "cpt"
    record = json.loads((folder / "metrics.json").read_text())["data"]["token_selection"]
    assert 0.4 <= record["kept_tokens"] / record["trainable_tokens"] <= 0.55
    assert record["reference_steps"] == 2 and not (folder / "token-reference").exists()
