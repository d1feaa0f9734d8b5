"""Stage commands on real stages when something goes wrong: a folder cogcore did not write in the
way, a re-run with a bad setting, a stage that cannot resume, an error inside a stage, Ctrl-C.

Each error is one line naming the stage (the traceback only with `--debug` or COGCORE_DEBUG=1), and
nothing cogcore did not write, and no complete earlier output, is lost."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.cli import app

TOPICS = ["wire transfers", "savings accounts", "debit cards", "personal loans", "overdrafts", "branches"]


def _docs() -> list[dict]:
    return [
        {
            "id": f"d{i}",
            "title": topic.title(),
            "text": f"Policy {i} on {topic}: the fee for {topic} is ${i + 5}.00 per month, and requests about "
            f"{topic} are answered within {i + 2} business days by the team in office {100 + i}.",
        }
        for i, topic in enumerate(TOPICS)
    ]


@pytest.fixture(scope="module")
def embedder(make_tiny_embedder) -> str:
    return str(make_tiny_embedder(d["text"] for d in _docs()))


@pytest.fixture
def recipe(tmp_path, embedder, monkeypatch) -> Path:
    """A curate + index recipe with `run_dir: p` relative to the working directory (tmp_path)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in _docs()))
    data = {
        "name": "myproj",
        "run_dir": "p",
        "sources": [{"name": "s", "path": "docs.jsonl", "id_field": "id", "title_field": "title"}],
        "base_model": {"path": "org/unused-model"},
        "curate": {"min_chars": 40, "workers": 1},
        "index": {"embedder": embedder, "chunk_chars": 200, "chunk_overlap": 20},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def one_error_line(result, exit_code: int = 1) -> str:
    """The command failed cleanly: no exception escaped, and stderr's last line is the error."""
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stderr
    return " ".join(result.stderr[result.stderr.index(errors[0]) :].split())


def test_curate_refuses_a_stage_folder_it_did_not_write(recipe, tmp_path):
    mine = tmp_path / "p" / "myproj" / "curate"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("x")
    line = one_error_line(cli("curate", recipe))
    assert "p/myproj/curate exists but was not written by cogcore" in line and "move it" in line
    assert (mine / "notes.txt").read_text() == "x"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_a_failed_rerun_with_a_bad_embedder_keeps_the_good_index(recipe, tmp_path):
    for command in ("curate", "index"):
        assert cli(command, recipe).exit_code == 0
    run = tmp_path / "p" / "myproj"
    manifest = (run / "manifest.json").read_text()
    good = {p.name: p.read_bytes() for p in (run / "index").iterdir() if p.is_file()}
    (tmp_path / "empty").mkdir()
    line = one_error_line(cli("index", recipe, "-o", f"index.embedder={tmp_path / 'empty'}"))
    assert line.startswith("error in stage index:") and "the previous output is kept" in line
    assert {p.name: p.read_bytes() for p in (run / "index").iterdir() if p.is_file()} == good
    assert (run / "manifest.json").read_text() == manifest
    from cogcore.retrieval import SearchIndex

    assert SearchIndex.load(run / "index").search("overdrafts", k=1)
    again = cli("index", recipe)  # the good settings: nothing to redo
    assert again.exit_code == 0 and "[skip] index" in again.output, again.output


def _blank_curated_text(run: Path) -> None:
    """Curated documents whose text is only whitespace: the index stage finds nothing to chunk."""
    docs = [json.loads(line) for line in (run / "curate" / "docs.jsonl").read_text().splitlines()]
    (run / "curate" / "docs.jsonl").write_text("".join(json.dumps({**d, "text": " "}) + "\n" for d in docs))


def test_a_stage_with_no_text_fails_in_one_line_and_debug_shows_the_traceback(recipe, tmp_path):
    assert cli("curate", recipe).exit_code == 0
    _blank_curated_text(tmp_path / "p" / "myproj")
    line = one_error_line(cli("index", recipe))
    assert "error in stage index: ValueError: no text to index" in line and "--debug" in line
    for result in (cli("--debug", "index", recipe), cli("index", recipe, env={"COGCORE_DEBUG": "1"})):
        assert result.exit_code == 1 and "Traceback" in result.stderr and "no text to index" in result.stderr


def test_an_error_the_stage_explains_itself_is_shown_as_it_is(recipe):
    line = one_error_line(cli("curate", recipe, "-o", "curate.min_chars=100000"))  # every document too short
    assert line.startswith("error in stage curate: curate: 0 of 6 documents kept")


def test_a_full_disk_is_one_line(recipe, monkeypatch):
    import cogcore.stages.index

    assert cli("curate", recipe).exit_code == 0

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "p/myproj/index.new/index.faiss")

    monkeypatch.setattr(cogcore.stages.index, "build_index", disk_full)
    line = one_error_line(cli("index", recipe))
    assert "error in stage index: OSError: [Errno 28] No space left on device" in line


def test_ctrl_c_says_run_again_to_resume(recipe, monkeypatch):
    import cogcore.stages.index

    assert cli("curate", recipe).exit_code == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cogcore.stages.index, "build_index", interrupted)
    result = cli("index", recipe)
    assert result.exit_code == 130 and "interrupted; run again to resume" in result.stderr
    assert "Traceback" not in result.output


def test_an_interrupted_index_resumes_from_its_committed_shards(recipe, monkeypatch, tmp_path):
    """Killed after its vectors were committed, the index stage carries on in its folder and embeds
    nothing again; the build folder is gone once it succeeds."""
    import cogcore.retrieval.index

    assert cli("curate", recipe).exit_code == 0
    real = cogcore.retrieval.index.embed_shards

    def killed_after_embedding(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("killed")

    monkeypatch.setattr(cogcore.retrieval.index, "embed_shards", killed_after_embedding)
    assert cli("index", recipe).exit_code == 1
    monkeypatch.setattr(cogcore.retrieval.index, "embed_shards", real)
    again = cli("index", recipe)
    assert again.exit_code == 0, again.output
    assert "[resume] index" in again.output
    index = tmp_path / "p" / "myproj" / "index"
    stats = json.loads((index / "stats.json").read_text())
    assert stats["n_chunks"] > 0 and stats["embedded_chunks"] == 0
    assert not (index / ".build").exists()


def test_stages_declare_whether_they_resume(recipe, tmp_path):
    from cogcore.recipe import load_recipe
    from cogcore.stages import build_stages

    stages = build_stages(load_recipe(recipe).resolved(recipe.parent))
    assert {s.name: s.resumes for s in stages} == {
        "curate": True,
        "index": True,
        "select": True,
        "rephrase": True,
        "train.cpt": True,
        "train.tools": True,
        "eval": False,
        "report": False,
    }


def test_the_real_process_prints_no_traceback(recipe, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "cogcore.cli"]
    assert subprocess.run(command + ["curate", str(recipe)], cwd=tmp_path, env=env, capture_output=True).returncode == 0
    _blank_curated_text(tmp_path / "p" / "myproj")
    done = subprocess.run(command + ["index", str(recipe)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "error in stage index: ValueError: no text to index" in done.stderr
