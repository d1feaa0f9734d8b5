"""The training loop on a tiny model: LoRA merged into a plain HF folder, a full fine-tune, metrics,
the padding collator, and resuming after the process is killed."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.models import ModelSpec
from cogcore.train.cpt_data import build_cpt_rows
from cogcore.train.metrics import TrainMetrics
from cogcore.train.trainer import pad_collator, train

SEQ_LEN = 24
TEXTS = [f"Account {n} costs {n * 3} USD per month and settles within {n % 7 + 1} business days." for n in range(1, 30)]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


@pytest.fixture(scope="module")
def spec(llm_dir) -> ModelSpec:
    return ModelSpec(path=str(llm_dir), dtype="float32", trust_remote_code=False)


@pytest.fixture(scope="module")
def rows(llm_dir):
    tok = AutoTokenizer.from_pretrained(llm_dir)
    docs = [{"id": str(n), "text": t} for n, t in enumerate(TEXTS)]
    rows, _ = build_cpt_rows(tok, docs, [], seq_len=SEQ_LEN, strategy="keep")
    return [r for r in rows if len(r["input_ids"]) == SEQ_LEN]  # equal rows: a known token count per step


def _load(llm_dir):
    return AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32), AutoTokenizer.from_pretrained(llm_dir)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()


def _speed_matches(metrics: TrainMetrics, tokens: int) -> bool:
    """tokens_per_s == tokens / seconds, allowing for seconds being rounded to 0.01 s."""
    seconds = metrics.seconds
    return tokens / (seconds + 0.005) - 0.05 <= metrics.tokens_per_s <= tokens / max(seconds - 0.005, 1e-9) + 0.05


def test_pad_collator_pads_ids_masks_and_labels():
    batch = pad_collator(pad_id=9)(
        [{"input_ids": [1, 2, 3], "labels": [1, -100, 3]}, {"input_ids": [4], "labels": [4]}]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["labels"].tolist() == [[1, -100, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_lora_training_saves_a_merged_plain_model(llm_dir, spec, rows, tmp_path, train_settings):
    model, tok = _load(llm_dir)
    settings = train_settings(
        method="lora", lora={"r": 4, "alpha": 8}, max_steps=3, batch_size=2, lr=1e-2, save_steps=3
    )
    metrics = train(model, tok, rows, out_dir=tmp_path, settings=settings, label="test", model_spec=spec)

    folder = tmp_path / "model"
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert not list(folder.glob("adapter*"))  # merged, no adapter left
    merged = _weights(folder)
    base = _weights(llm_dir)
    assert set(merged) == set(base) and not any("lora" in k for k in merged)
    assert any(not torch.equal(merged[k], base[k]) for k in base)  # training changed the weights
    assert AutoTokenizer.from_pretrained(folder)("USD")["input_ids"] == tok("USD")["input_ids"]

    # The saved weights are exactly the base plus the last checkpoint's adapter, merged.
    from peft import PeftModel

    adapter = tmp_path / "checkpoints" / "checkpoint-3"
    by_peft = PeftModel.from_pretrained(_load(llm_dir)[0], adapter).merge_and_unload().state_dict()
    for k in base:
        torch.testing.assert_close(merged[k], by_peft[k])

    assert TrainMetrics.read(tmp_path / "metrics.json") == metrics
    assert metrics.method == "lora" and metrics.steps == 3 and metrics.resumed_from is None
    assert [h.step for h in metrics.log_history] == [1, 2, 3]
    assert all(math.isfinite(h.loss) for h in metrics.log_history)
    assert metrics.first_loss == metrics.log_history[0].loss
    assert metrics.final_loss == metrics.log_history[-1].loss
    assert metrics.tokens_trained == 3 * 2 * SEQ_LEN
    assert _speed_matches(metrics, metrics.tokens_trained)
    assert 0 < metrics.trainable_params < metrics.total_params


def test_full_fine_tune(llm_dir, spec, rows, tmp_path, train_settings):
    model, tok = _load(llm_dir)
    metrics = train(
        model,
        tok,
        rows,
        out_dir=tmp_path,
        settings=train_settings(method="full", max_steps=2, batch_size=2, lr=1e-3),
        label="test",
        model_spec=spec,
    )
    assert metrics.method == "full" and metrics.steps == 2
    assert metrics.trainable_params == metrics.total_params
    trained, base = _weights(tmp_path / "model"), _weights(llm_dir)
    assert set(trained) == set(base)
    changed = [k for k in base if not torch.equal(trained[k], base[k])]
    assert any("mlp" in k for k in changed) and any("embed" in k for k in changed)


def test_no_rows_is_an_error_naming_the_stage(llm_dir, spec, tmp_path, train_settings):
    model, tok = _load(llm_dir)
    with pytest.raises(ValueError, match="train.cpt: no training rows"):
        train(model, tok, [], out_dir=tmp_path, settings=train_settings(), label="train.cpt", model_spec=spec)


KILLED_RUN = """
import json, sys, time
from pathlib import Path
import cogcore.train.trainer as trainer
from cogcore.models import ModelSpec
from cogcore.recipe import CptTrainConfig

rows = json.loads(Path(sys.argv[1]).read_text())
spec = ModelSpec(sys.argv[2], "float32", trust_remote_code=False)
model, tok = spec.load()
plain = trainer.pad_collator

def slow_collator(pad_id):  # slow steps, so that the test can kill the run between checkpoints
    collate = plain(pad_id)
    return lambda batch: (time.sleep(0.25), collate(batch))[1]

trainer.pad_collator = slow_collator
settings = trainer.TrainSettings.from_section(CptTrainConfig(**json.loads(sys.argv[4])), seed=0)
trainer.train(model, tok, rows, out_dir=Path(sys.argv[3]), settings=settings, label="test", model_spec=spec)
"""

RESUME_SETTINGS = {
    "method": "lora",
    "lora": {"r": 4, "alpha": 8},
    "max_steps": 6,
    "save_steps": 2,
    "batch_size": 2,
    "lr": 1e-2,
}  # a train.cpt recipe section


def _kill_after_first_checkpoint(llm_dir, rows, out: Path) -> str:
    rows_file = out.parent / f"{out.name}-rows.json"
    rows_file.write_text(json.dumps(rows))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(rows_file), str(llm_dir), str(out), json.dumps(RESUME_SETTINGS)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoints = out / "checkpoints"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            # trainer_state.json is the last file a checkpoint gets: its presence means complete.
            done = sorted(checkpoints.glob("checkpoint-*/trainer_state.json"))
            if done:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (out / "model").exists() and not (out / "metrics.json").exists()
    complete = sorted(p.parent.name for p in checkpoints.glob("checkpoint-*/trainer_state.json"))
    assert complete in (["checkpoint-2"], ["checkpoint-4"], ["checkpoint-2", "checkpoint-4"])
    return complete[-1]


def test_resume_after_kill(llm_dir, spec, rows, tmp_path, train_settings):
    out = tmp_path / "killed"
    last = _kill_after_first_checkpoint(llm_dir, rows, out)
    done_at = int(last.split("-")[1])

    model, tok = _load(llm_dir)
    metrics = train(
        model, tok, rows, out_dir=out, settings=train_settings(**RESUME_SETTINGS), label="test", model_spec=spec
    )
    assert metrics.resumed_from == str(out / "checkpoints" / last)
    assert metrics.steps == 6
    # The history is continuous: the killed run's steps come from the checkpoint, the rest from here.
    assert [h.step for h in metrics.log_history] == [1, 2, 3, 4, 5, 6]
    # tokens_trained counts all six steps; the speed only the steps this process trained.
    assert metrics.tokens_trained == 6 * 2 * SEQ_LEN
    assert _speed_matches(metrics, (6 - done_at) * 2 * SEQ_LEN)
    assert (out / "model" / "model.safetensors").exists()

    # The Trainer skips the batches the killed run consumed and restores optimizer, scheduler and RNG
    # state; with the adapter's init seeded too, the resumed run retraces an uninterrupted one.
    straight = train(
        *_load(llm_dir),
        rows,
        out_dir=tmp_path / "straight",
        settings=train_settings(**RESUME_SETTINGS),
        label="test",
        model_spec=spec,
    )
    resumed_losses = [h.loss for h in metrics.log_history]
    assert resumed_losses == pytest.approx([h.loss for h in straight.log_history], rel=1e-5)


def test_partial_checkpoint_is_skipped_on_resume(llm_dir, spec, rows, tmp_path, train_settings):
    """A run killed while writing a checkpoint leaves a folder without trainer_state.json."""
    settings = dict(RESUME_SETTINGS, max_steps=2)
    train(*_load(llm_dir), rows, out_dir=tmp_path, settings=train_settings(**settings), label="test", model_spec=spec)
    checkpoints = tmp_path / "checkpoints"
    partial = checkpoints / "checkpoint-4"
    shutil.copytree(checkpoints / "checkpoint-2", partial)
    (partial / "trainer_state.json").unlink()  # killed before the state, which is written last
    (checkpoints / "checkpoint-5").mkdir()  # killed right after the folder was made
    metrics = train(
        *_load(llm_dir),
        rows,
        out_dir=tmp_path,
        settings=train_settings(**RESUME_SETTINGS),
        label="test",
        model_spec=spec,
    )
    assert metrics.resumed_from == str(checkpoints / "checkpoint-2")
    assert metrics.steps == 6 and [h.step for h in metrics.log_history] == [1, 2, 3, 4, 5, 6]


def test_qlora_merges_into_the_base_reloaded_from_its_spec_unquantized(llm_dir, tmp_path):
    """QLoRA's adapter goes onto the base loaded again as the stage's ModelSpec says (path, remote
    code), but unquantized, in bf16. Run on a plain LoRA model: the spec asks for 4-bit weights,
    which this CPU could not load, so the merge must drop that."""
    from peft import LoraConfig, get_peft_model

    from cogcore.train.trainer import _merge_onto_bf16_base

    torch.manual_seed(0)
    model = get_peft_model(
        _load(llm_dir)[0], LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # B starts at zero: any merge would look right
    spec = ModelSpec(path=str(llm_dir), dtype="float32", trust_remote_code=False, quantize_4bit=True)
    merged = _merge_onto_bf16_base(model, tmp_path, spec).state_dict()
    reference = model.merge_and_unload().state_dict()
    assert set(merged) == set(reference) and all(t.dtype == torch.bfloat16 for t in merged.values())
    for key in reference:
        torch.testing.assert_close(merged[key].float(), reference[key].float(), atol=2e-2, rtol=2e-2)
