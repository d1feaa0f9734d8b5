"""One writing command per run directory: a second `cogcore curate` while another process holds the
run is refused in one line naming the holder's pid, and touches nothing; the lock dies with its
holder, even one killed with SIGKILL. Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HOLD = """
import sys
from pathlib import Path
from cogcore.runner import RunDir

with RunDir(Path(sys.argv[1])).lock():
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


@pytest.fixture
def recipe(tmp_path) -> Path:
    docs = [
        {
            "id": f"d{i}",
            "text": f"Policy {i}: the monthly fee for account type {i} is ${i + 5}.00, billed "
            f"on the first business day of each month.",
        }
        for i in range(6)
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "embedder").mkdir()
    (tmp_path / "r.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "shared",
                "run_dir": str(tmp_path / "runs"),
                "sources": [{"name": "s", "path": "docs.jsonl", "id_field": "id"}],
                "base_model": {"path": "org/unused-model"},
                "index": {"embedder": "embedder"},
                "curate": {"min_chars": 40, "workers": 1},
            }
        )
    )
    return tmp_path / "r.yaml"


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _hold(run: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _curate(recipe: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cogcore.cli", "curate", str(recipe)],
        cwd=recipe.parent,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def test_a_second_command_is_refused_naming_the_holder_then_runs_once_it_is_gone(recipe, tmp_path):
    run = tmp_path / "runs" / "shared"
    holder = _hold(run)
    try:
        refused = _curate(recipe)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert line.startswith("error") and f"is in use by another cogcore command (pid {holder.pid})" in line
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written, not even the recipe
    done = _curate(recipe)
    assert done.returncode == 0, done.stderr
    assert (run / "curate" / "docs.jsonl").exists()


def test_the_lock_goes_with_a_killed_holder(recipe, tmp_path):
    holder = _hold(tmp_path / "runs" / "shared")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    done = _curate(recipe)
    assert done.returncode == 0, done.stderr


def test_read_only_commands_need_no_lock(recipe, tmp_path):
    assert _curate(recipe).returncode == 0
    run = tmp_path / "runs" / "shared"
    holder = _hold(run)
    try:
        inspected = subprocess.run(
            [sys.executable, "-m", "cogcore.cli", "inspect", str(run)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=300,
        )
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert inspected.returncode == 0 and "documents in" in inspected.stdout, inspected.stderr
