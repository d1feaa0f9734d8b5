"""`cogcore search RUN "query"`: the index's own mode by default, `--mode` to pick another."""

import pytest
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.retrieval import build_index


def cli(*args):
    result = CliRunner().invoke(app, ["search", *(str(a) for a in args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_docs, form_docs, tiny_embedder):
    """A run whose recipe asked for BM25 search."""
    run = tmp_path_factory.mktemp("run")
    build_index(tiny_docs + form_docs, run / "index", tiny_embedder, chunk_chars=200, overlap=40, mode="bm25")
    return run


def test_default_is_the_index_mode(run_dir):
    result = cli(run_dir, "form VB-88310", "-k", 2)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "mode: bm25"
    assert lines[1].startswith("1. score ") and "form-1" in lines[1] and "Forms" in lines[1]
    assert sum(line[:3] in ("1. ", "2. ") for line in lines) == 2


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_mode_option(run_dir, mode):
    result = cli(run_dir, "customers of the branch", "--mode", mode, "-k", 3)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"mode: {mode}"
    assert sum(line[:3] in ("1. ", "2. ", "3. ") for line in result.stdout.splitlines()) == 3


def test_hybrid_still_finds_the_identifier(run_dir):
    result = cli(run_dir, "which form is ZT-55092", "--mode", "hybrid", "-k", 1)
    assert result.exit_code == 0 and "form-3" in result.stdout.splitlines()[1]


def test_bad_mode_exits_2_naming_the_option(run_dir):
    result = cli(run_dir, "fee", "--mode", "sparse")
    assert result.exit_code == 2
    assert "--mode" in result.stderr and "hybrid, dense or bm25" in result.stderr
    assert result.stdout == ""


def test_missing_index_exits_2(tmp_path):
    result = cli(tmp_path, "fee")
    assert result.exit_code == 2 and "has no finished index" in " ".join(result.stderr.split())


def test_an_index_from_before_bm25_exits_2_naming_what_to_rebuild(tmp_path, tiny_docs, tiny_embedder):
    """An index from before BM25 (index.json without "lexical" and "search") is refused in one line."""
    import json

    build_index(tiny_docs, tmp_path / "index", tiny_embedder, chunk_chars=120, overlap=30)
    info_path = tmp_path / "index" / "index.json"
    info = json.loads(info_path.read_text())
    del info["lexical"], info["search"]
    info_path.write_text(json.dumps(info))
    result = cli(tmp_path, "fee", "--mode", "bm25")
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and result.stdout == "" and "missing fields lexical, search" in said
    assert "--force index" in said
