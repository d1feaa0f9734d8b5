"""Exact resume: a run killed (SIGKILL) after a checkpoint and started again trains the very batches,
in the very order, that an uninterrupted run trains after that step, across epoch ends and with
gradient accumulation, and stops at the same global step with the same losses."""

from __future__ import annotations

import json
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
from cogcore.recipe import CptTrainConfig
from cogcore.train.cpt_data import build_cpt_rows
from cogcore.train.metrics import TrainMetrics
from cogcore.train.trainer import TrainSettings, train

SEQ_LEN = 16
TEXTS = [f"Locker {n} at branch {n % 4} costs {n * 2} USD a year and opens with code {n * 7 % 100}." for n in range(30)]
# 12 rows, batches of 2, 2 batches per step: 3 steps an epoch, so 8 steps cross two epoch ends.
SECTION = {
    "method": "lora",
    "lora": {"r": 4, "alpha": 8},
    "max_steps": 8,
    "save_steps": 2,
    "batch_size": 2,
    "grad_accum": 2,
    "lr": 1e-2,
}  # a train.cpt recipe section
SEED = 3

RECORDING_RUN = """
import json, sys, time
from pathlib import Path
from cogcore.models import ModelSpec
from cogcore.recipe import CptTrainConfig
from cogcore.train.trainer import TrainSettings, train

rows = json.loads(Path(sys.argv[1]).read_text())
ids = {tuple(r["input_ids"]): n for n, r in enumerate(rows)}
spec = ModelSpec(sys.argv[2], "float32", trust_remote_code=False)
model, tok = spec.load()
log = open(sys.argv[4], "a")

def record(module, args, kwargs):  # every forward: which rows it got; slow, so the test can kill mid-run
    log.write(json.dumps([ids[tuple(r)] for r in kwargs["input_ids"].tolist()]) + "\\n")
    log.flush()
    time.sleep(0.2)

model.register_forward_pre_hook(record, with_kwargs=True)
settings = TrainSettings.from_section(CptTrainConfig(**json.loads(sys.argv[5])), seed=int(sys.argv[6]))
train(model, tok, rows, out_dir=Path(sys.argv[3]), settings=settings, label="test", model_spec=spec)
"""


def _settings(**changes) -> TrainSettings:
    return TrainSettings.from_section(CptTrainConfig(**{**SECTION, **changes}), seed=SEED)


def _spec(llm_dir) -> ModelSpec:
    return ModelSpec(path=str(llm_dir), dtype="float32", trust_remote_code=False)


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS)


@pytest.fixture(scope="module")
def rows(llm_dir):
    tok = AutoTokenizer.from_pretrained(llm_dir)
    docs = [{"id": str(n), "text": t} for n, t in enumerate(TEXTS)]
    rows, _ = build_cpt_rows(tok, docs, [], seq_len=SEQ_LEN, strategy="keep", packing=True)
    rows = [r for r in rows if len(r["input_ids"]) == SEQ_LEN][:12]
    assert len(rows) == 12 and len({tuple(r["input_ids"]) for r in rows}) == 12  # each row identifiable
    return rows


def _recorded_train(llm_dir, rows, out: Path) -> tuple[TrainMetrics, list[list[int]]]:
    ids = {tuple(r["input_ids"]): n for n, r in enumerate(rows)}
    seen: list[list[int]] = []
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    model.register_forward_pre_hook(
        lambda m, a, kw: seen.append([ids[tuple(r)] for r in kw["input_ids"].tolist()]), with_kwargs=True
    )
    tok = AutoTokenizer.from_pretrained(llm_dir)
    metrics = train(model, tok, rows, out_dir=out, settings=_settings(), label="test", model_spec=_spec(llm_dir))
    return metrics, seen


def _run_and_kill(llm_dir, rows, out: Path, log: Path) -> int:
    """Start a recording run in a subprocess, SIGKILL it once a checkpoint is complete; return that step."""
    rows_file = out.parent / "rows.json"
    rows_file.write_text(json.dumps(rows))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RECORDING_RUN,
            str(rows_file),
            str(llm_dir),
            str(out),
            str(log),
            json.dumps(SECTION),
            str(SEED),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):  # written last: complete
                time.sleep(0.3)  # let it go on past the checkpoint, so the kill lands mid-way
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (out / "model").exists()
    done = [int(p.parent.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*/trainer_state.json")]
    return max(done)


def test_resume_after_sigkill_continues_the_data_order(llm_dir, rows, tmp_path):
    straight, straight_batches = _recorded_train(llm_dir, rows, tmp_path / "straight")
    per_step = SECTION["grad_accum"]
    assert straight.steps == 8 and len(straight_batches) == 8 * per_step
    # Shuffled, and every epoch in a new order: resuming at the right place is not trivial.
    epochs = [sorted(i for b in straight_batches[e * 6 : (e + 1) * 6] for i in b) for e in range(2)]
    assert epochs == [list(range(12))] * 2
    assert straight_batches[:6] != straight_batches[6:12]

    out, log = tmp_path / "killed", tmp_path / "killed.jsonl"
    step = _run_and_kill(llm_dir, rows, out, log)
    killed_batches = [json.loads(line) for line in log.read_text().splitlines()]
    assert killed_batches[: step * per_step] == straight_batches[: step * per_step]
    assert len(killed_batches) > step * per_step  # it had gone past the checkpoint: those batches are redone

    resumed, resumed_batches = _recorded_train(llm_dir, rows, out)
    assert resumed.resumed_from == str(out / "checkpoints" / f"checkpoint-{step}")
    assert resumed.steps == 8
    assert resumed_batches == straight_batches[step * per_step :]
    assert [h.step for h in resumed.log_history] == list(range(1, 9))
    assert [h.loss for h in resumed.log_history] == pytest.approx([h.loss for h in straight.log_history], rel=1e-5)


def test_a_run_killed_after_its_last_step_is_not_trained_further(llm_dir, rows, tmp_path):
    """Killed while merging or saving: the last checkpoint is the end. Resumed there, transformers
    would train one step more; train() loads that end state and saves the same model."""
    settings = _settings(max_steps=2)
    tok = AutoTokenizer.from_pretrained(llm_dir)
    first = train(
        AutoModelForCausalLM.from_pretrained(llm_dir),
        tok,
        rows,
        out_dir=tmp_path,
        settings=settings,
        label="test",
        model_spec=_spec(llm_dir),
    )
    weights = AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict()
    shutil.rmtree(tmp_path / "model")
    again = train(
        AutoModelForCausalLM.from_pretrained(llm_dir),
        tok,
        rows,
        out_dir=tmp_path,
        settings=settings,
        label="test",
        model_spec=_spec(llm_dir),
    )
    assert again.steps == first.steps == 2 and again.resumed_from.endswith("checkpoint-2")
    assert again.log_history == first.log_history
    for name, tensor in AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict().items():
        assert torch.equal(tensor, weights[name]), name
