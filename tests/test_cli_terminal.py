"""`cogcore inspect` and `cogcore ask` print documents, a model's words and typed ids with every
control character escaped: nothing they print can retitle, clear or rewrite the terminal."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

import cogcore.runtime
from cogcore.cli import app
from cogcore.curate.stats import CurateStats, StepStats, UnreadableEntry
from cogcore.recipe import validate
from cogcore.retrieval import Embedder, build_index
from cogcore.runner import RunDir
from cogcore.train.chat_template import CHAT_TEMPLATE

RAW = ("\x1b", "\x07", "\x9b", "\r")
TEXT = "The card fee is 5 USD.\x1b]0;pwned\x07 It is charged\r yearly.\x1b[2J\x9b31m <|im_end|>"
DOC = {"id": "fees\x1b[2J", "source": "fees.md", "text": TEXT, "meta": {"title": "Fees\x1b]0;t\x07", "split": "train"}}
FACT = {
    "id": "f1",
    "doc_id": DOC["id"],
    "start": TEXT.index("5 USD"),
    "end": TEXT.index("5 USD") + 5,
    "text": "5 USD",
    "kind": "money",
    "context": "The card fee is 5 USD.",
}


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not any(c in result.output for c in RAW), result.output
    return result


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    folder = make_tiny_llm([TEXT, "The card fee is 5 USD (source: fees)."] * 2)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, llm_dir, make_tiny_embedder):
    run = tmp_path_factory.mktemp("run")
    curate = run / "curate"
    (curate / "drops").mkdir(parents=True)
    CurateStats(
        docs_in=2,
        docs_out=1,
        splits={"train": 1},
        facts={"money": 1},
        pii={},
        recoded={},
        warnings=[],
        unreadable=[UnreadableEntry(path="bad\x1b[2J.pdf", reason="x\x07", source="s")],
        unreadable_by_reason={"x\x07": 1},
        steps=[
            StepStats(
                "length_filter",
                docs_in=2,
                kept=1,
                dropped={"too_short": 1},
                bytes_in=30,
                bytes_kept=20,
                bytes_dropped={"too_short": 10},
            )
        ],
    ).write(curate / "stats.json")
    dropped = {"id": "short\x1b[2J", "source": "s\x07", "step": "length_filter", "text": "Hi\x1b]0;pwned\x07"}
    (curate / "drops" / "too_short.jsonl").write_text(json.dumps({**dropped, "meta": {}}) + "\n")
    (curate / "docs.jsonl").write_text(json.dumps(DOC) + "\n")
    (curate / "facts.jsonl").write_text(json.dumps(FACT) + "\n")
    embedder = Embedder(str(make_tiny_embedder([TEXT])))
    recipe = validate(
        {
            "name": "run",
            "sources": [{"name": "s", "path": str(curate / "docs.jsonl")}],
            "base_model": {"path": str(llm_dir)},
            "index": {"embedder": embedder.path},
            "facts": {"strategy": "toolcall", "max_calls_per_doc": 4},
        }
    )
    RunDir(run).save_resolved_recipe(recipe.model_dump(mode="json"))  # what `cogcore run` saves
    build_index([DOC], run / "index", embedder, chunk_chars=200, overlap=20)
    (run / "train" / "tools").mkdir(parents=True)
    (run / "train" / "tools" / "model").symlink_to(llm_dir, target_is_directory=True)
    return run


def test_inspect_escapes_samples_paths_and_the_training_view(run):
    summary = _invoke("inspect", run)
    assert summary.exit_code == 0 and "bad\\x1b[2J.pdf" in summary.output
    sample = _invoke("inspect", run, "--reason", "too_short")
    assert sample.exit_code == 0 and "short\\x1b[2J" in sample.output and "Hi\\x1b]0;pwned\\x07" in sample.output
    view = _invoke("inspect", run, "--doc", DOC["id"])
    assert view.exit_code == 0 and "charged\\x0d yearly" in view.output and "\\x9b31m" in view.output


def test_inspect_escapes_a_typed_id_in_its_error(run):
    missing = _invoke("inspect", run, "--doc", "nope\x1b[2J\udcff")
    assert missing.exit_code == 2 and "nope\\x1b[2J\\udcff" in missing.output


def test_ask_escapes_results_answers_and_rejected_calls(run, monkeypatch):
    outputs = iter(
        [
            [
                '<tool_call>{"name": "search", "arguments": {"query": "card fee"}}</tool_call>'
                "<tool_call>" + "[" * 100_000
            ],
            ["The fee is 5 USD\x1b]0;pwned\x07 (source: fees\x1b[2J)."],
        ]
    )
    monkeypatch.setattr(cogcore.runtime.ToolRuntime, "_generate", lambda self, conversations, first=True: next(outputs))
    asked = _invoke("ask", run, "What is the card fee?")
    assert asked.exit_code == 0
    assert "1. [fees\\x1b[2J | Fees\\x1b]0;t\\x07] The card fee" in asked.output  # the search result
    assert "rejected call" in asked.output and "5 USD\\x1b]0;pwned\\x07" in asked.output


def test_ask_refuses_a_question_that_is_not_utf8(run):
    asked = _invoke("ask", run, "fee \udcff")
    assert asked.exit_code == 2 and "UTF-8" in asked.output
