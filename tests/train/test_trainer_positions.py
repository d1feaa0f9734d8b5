"""Rows longer than the base model has positions for stop a training stage before it trains (and
before it launches workers), naming the recipe field and the model's maximum. Validation checks
the same only where the model's config is on disk; a hub id is first read here."""

from __future__ import annotations

import pytest
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM

from cogcore.models import ModelSpec
from cogcore.train.distributed import DistributedPlan
from cogcore.train.launch import launch_stage
from cogcore.train.trainer import check_positions, train

NOT_LOADED = ModelSpec(path="never-loaded", dtype="float32", trust_remote_code=False)  # the tests pass the model


def tiny_model(max_positions: int) -> LlamaForCausalLM:
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=max_positions,
        )
    )


def rows(n: int, length: int) -> list[dict]:
    ids = [i % 60 + 1 for i in range(length)]
    return [{"input_ids": ids, "labels": ids} for _ in range(n)]


@pytest.mark.parametrize("as_dataset", [False, True])
def test_rows_over_the_models_positions_stop_training_before_it_starts(tmp_path, as_dataset, train_settings):
    data = rows(3, 40)
    with pytest.raises(ValueError) as e:
        train(
            tiny_model(32),
            None,
            Dataset.from_list(data) if as_dataset else data,
            out_dir=tmp_path,
            settings=train_settings(max_steps=1),
            label="train.cpt",
            model_spec=NOT_LOADED,
        )
    message = str(e.value)
    assert message.startswith("train.cpt.seq_len: ") and "40 tokens" in message, message
    assert "32" in message and "max_position_embeddings" in message
    assert not (tmp_path / "checkpoints").exists()


def test_the_launcher_checks_before_it_writes_or_starts_anything(tmp_path, train_settings):
    with pytest.raises(ValueError, match=r"^train\.tools\.seq_len: .*40 tokens.*32"):
        launch_stage(
            tiny_model(32),
            None,
            rows(2, 40),
            folder=tmp_path,
            settings=train_settings(),
            label="train.tools",
            plan=DistributedPlan(processes=2),
            model_spec=NOT_LOADED,
        )
    assert list(tmp_path.iterdir()) == []


def test_rows_that_fit_pass_the_check():
    check_positions(tiny_model(32), rows(2, 32), "train.cpt")
    check_positions(tiny_model(32), Dataset.from_list(rows(2, 32) + rows(1, 5)), "train.cpt")


def test_no_rows_names_the_held_out_share_as_a_cause(tmp_path, train_settings):
    with pytest.raises(ValueError) as e:
        train(
            tiny_model(32),
            None,
            [],
            out_dir=tmp_path,
            settings=train_settings(),
            label="train.cpt",
            model_spec=NOT_LOADED,
        )
    assert str(e.value).startswith("train.cpt: no training rows") and "curate.heldout_fraction" in str(e.value)
