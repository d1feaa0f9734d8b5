"""`cogcore validate RECIPE`: one line per problem, naming the field and what is allowed; exit code 2;
never a traceback. Most cases go through typer's CliRunner (fast); one runs the real process."""

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cogcore.cli import app

REPO = Path(__file__).resolve().parents[1]


def write_recipe(folder: Path, **sections) -> Path:
    """A minimal valid recipe whose every path exists, with `sections` merged over it."""
    (folder / "docs.jsonl").write_text('{"text": "hello"}\n')
    (folder / "embedder").mkdir(exist_ok=True)
    (folder / "model").mkdir(exist_ok=True)
    data = {
        "name": "tiny",
        "sources": [{"name": "docs", "path": "docs.jsonl"}],
        "base_model": {"path": "model"},
        "index": {"embedder": "embedder"},
    }
    data.update(sections)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def error_lines(result) -> list[str]:
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("error ") for line in lines), result.stderr
    return [line[len("error ") :] for line in lines]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so that anything written to the working directory would be seen


def test_valid_recipe_exits_0_and_writes_nothing(tmp_path):
    path = write_recipe(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = cli("validate", path)
    assert result.exit_code == 0, result.stderr
    assert "recipe 'tiny' is valid" in result.stdout and result.stderr == ""
    assert sorted(tmp_path.rglob("*")) == before  # validate checks and nothing else: no run folder


def test_shipped_demo_recipe_validates_when_its_packages_are_installed():
    result = cli("validate", REPO / "recipes" / "demo.yaml")
    if result.exit_code and "is not installed" in result.stderr:
        pytest.skip("demo packages not installed (make test installs them)")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: tiny\nsources: [\n", "YAML syntax error (line 3, column 1)"),
        ("", "the file is empty"),
        ("- name\n", "the top level must be a mapping of fields, got list"),
    ],
)
def test_unusable_recipe_file(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    result = cli("validate", path)
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith(f"{path}: {expected}"), line


def test_missing_and_undecodable_recipe_files(tmp_path):
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and error_lines(result) == [f"{tmp_path / 'nope.yaml'}: no such recipe file"]
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    result = cli("validate", bad)
    assert result.exit_code == 2 and "cannot read the file" in error_lines(result)[0]


@pytest.mark.parametrize(
    "sections, field, allowed",
    [
        ({"train": {"cpt": {"max_step": 3}}}, "train.cpt.max_step", "max_steps"),  # nested typo
        ({"index": {"embedder": "embedder", "chunk_size": 10}}, "index.chunk_size", "chunk_chars"),
        ({"train": {"cpt": {"method": "dora"}}}, "train.cpt.method", "use 'lora', 'full' or 'qlora'"),
        ({"facts": {"strategy": "drop"}}, "facts.strategy", "use 'keep', 'mask' or 'toolcall'"),
        ({"sources": "docs.jsonl"}, "sources", "valid list"),
        ({"seed": "zero"}, "seed", "valid integer"),
        ({"curate": {"heldout_fraction": 1.5}}, "curate.heldout_fraction", "less than or equal to 0.5"),
        ({"curate": {"workers": 1000000}}, "curate.workers", "less than or equal to 1024"),
        ({"train": {"cpt": {"lr": float("inf")}}}, "train.cpt.lr", "finite number"),
        ({"seed": 10**30}, "seed", "less than or equal to 4294967295"),
    ],
)
def test_schema_problem_is_one_line_with_field_path(tmp_path, sections, field, allowed):
    result = cli("validate", write_recipe(tmp_path, **sections))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = error_lines(result)
    assert line.startswith(f"{field}: ") and allowed in line, line


def test_several_problems_give_one_line_each(tmp_path):
    path = write_recipe(tmp_path, train={"cpt": {"max_step": 3, "method": "dora"}, "tools": {"lr": -1}})
    result = cli("validate", path)
    assert result.exit_code == 2
    fields = sorted(line.split(":")[0] for line in error_lines(result))
    assert fields == ["train.cpt.max_step", "train.cpt.method", "train.tools.lr"]


def test_paths_that_do_not_exist(tmp_path):
    path = write_recipe(
        tmp_path,
        sources=[
            {"name": "a", "path": "gone/*.jsonl"},
            {"name": "b", "path": "package:cogcore_absent_pkg/x.json"},
            {"name": "c", "path": "package:cogcore/absent.json"},
        ],
        base_model={"path": "./no-model"},
        index={"embedder": "no-embedder"},
    )
    result = cli("validate", path)
    assert result.exit_code == 2
    lines = error_lines(result)
    assert [line.split(":")[0] for line in lines] == [
        "sources.0.path",
        "sources.1.path",
        "sources.2.path",
        "index.embedder",
        "base_model.path",
    ]
    assert "matches no file" in lines[0]
    assert "not installed" in lines[1] and "pip install" in lines[1]
    assert "not in package 'cogcore'" in lines[2]
    assert "'no-embedder' does not exist" in lines[3]


def test_overrides_apply_and_bad_ones_error(tmp_path):
    path = write_recipe(tmp_path)
    assert cli("validate", path, "-o", "train.cpt.max_steps=3").exit_code == 0
    result = cli("validate", path, "-o", "train.cpt.max_steps=0")
    assert result.exit_code == 2 and error_lines(result)[0].startswith("train.cpt.max_steps: ")
    result = cli("validate", path, "-o", "train.cpt.max_step=3")
    assert result.exit_code == 2 and error_lines(result)[0].startswith("train.cpt.max_step: unknown field")
    result = cli("validate", path, "-o", "train.cpt.max_steps")
    assert result.exit_code == 2 and "expected dotted.key=value" in error_lines(result)[0]
    result = cli("validate", path, "--override", "sources.0.path=elsewhere.jsonl")
    assert result.exit_code == 2 and error_lines(result) == ["sources.0.path: 'elsewhere.jsonl' does not exist"]


def test_unknown_force_stage_exits_2_before_running_anything(tmp_path):
    path = write_recipe(tmp_path)
    result = cli("run", path, "--force", "bogus")
    assert result.exit_code == 2
    assert "--force bogus: unknown stage" in result.stderr and "curate" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_real_process_exit_code_and_no_traceback(tmp_path):
    path = write_recipe(tmp_path, train={"cpt": {"max_step": 3}}, index={"embedder": "no-embedder"})
    proc = subprocess.run(
        [sys.executable, "-m", "cogcore.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error train.cpt.max_step: unknown field") and "max_steps" in line


def billion_laughs() -> str:
    """Nine levels of ten aliases each: 10^9 strings once expanded, from under 400 bytes."""
    names = "abcdefghi"
    lines = ["a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    lines += [f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]" for prev, cur in zip(names, names[1:])]
    return "\n".join(lines) + "\nname: *i\n"


def test_billion_laughs_is_refused_fast_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    limit = 1 << 30  # 1 GiB of address space; before the alias cap, validate climbed past 5 GB here

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cogcore.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        preexec_fn=cap_memory,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert time.monotonic() - t0 < 30
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error {path}: ") and "aliases" in line and len(line) < 400, line


def test_a_recipe_over_the_size_cap_is_one_line(tmp_path):
    path = write_recipe(tmp_path)
    with path.open("a") as f:
        f.write(("# padding\n") * 200_000)  # ~2 MB
    result = cli("validate", path)
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith(f"{path}: ") and "1 MiB" in line


def test_a_long_value_in_an_error_line_is_cut_short(tmp_path):
    result = cli("validate", write_recipe(tmp_path, name=["x" * 50] * 5000))
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("name: ") and "..." in line and len(line) < 400, len(line)


def test_seq_len_over_the_local_models_positions(tmp_path):
    path = write_recipe(tmp_path, train={"cpt": {"seq_len": 20000}})
    (tmp_path / "model" / "config.json").write_text('{"model_type": "llama", "max_position_embeddings": 8192}')
    result = cli("validate", path)
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("train.cpt.seq_len: ") and "20000" in line and "8192" in line, line
