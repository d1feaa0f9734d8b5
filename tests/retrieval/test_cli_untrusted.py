"""`cogcore search` with untrusted input and output: escape sequences in documents (and in the
paths a user types) never reach the terminal raw; an empty or non-UTF-8 query is refused with one
clear line and exit 2, as the search tool refuses it."""

import pytest
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.retrieval import build_index

ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J", "\x9b31m", "\r")
DOC = {
    "id": "evil\x1b[2J-doc",
    "source": "x.md",
    "meta": {"title": "Fees\x1b]0;pwned\x07"},
    "text": "# Fees\x1b[2J\n\nThe card fee is 5 USD.\x1b]0;pwned\x07 It is charged\r yearly.\x9b31m",
}


def cli(*args):
    result = CliRunner().invoke(app, ["search", *(str(a) for a in args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_docs, tiny_embedder):
    run = tmp_path_factory.mktemp("run")
    build_index(tiny_docs + [DOC], run / "index", tiny_embedder, chunk_chars=200, overlap=40, mode="bm25")
    return run


def test_escape_sequences_in_documents_are_shown_escaped(run_dir):
    result = cli(run_dir, "card fee yearly", "-k", 3)
    assert result.exit_code == 0, result.stderr
    assert not any(e in result.stdout for e in ESCAPES)
    assert "evil\\x1b[2J-doc" in result.stdout and "\\x1b]0;pwned\\x07" in result.stdout


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_empty_query_exits_2_with_one_line(run_dir, query):
    result = cli(run_dir, query)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "non-empty" in result.stderr


def test_a_query_that_is_not_utf8_exits_2_with_one_line(run_dir):
    result = cli(run_dir, "fee \udcff")  # how Python hands over argv bytes that are not UTF-8
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "UTF-8" in result.stderr


def test_a_path_with_escapes_is_shown_escaped(tmp_path):
    result = cli(tmp_path / "run\x1b[2J\udcff", "fee")
    assert result.exit_code == 2 and "\x1b" not in result.stderr and "\\x1b[2J\\udcff" in result.stderr
