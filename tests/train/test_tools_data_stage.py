"""The train.tools stage on a tiny run: synthesized kinds, a user file, the recipe's tools, the base
model's own template kept and recorded, and the files `cogcore ask` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from cogcore.recipe import validate
from cogcore.retrieval import Embedder, build_index
from cogcore.runner import RunDir
from cogcore.stages import build_stages
from cogcore.train.metrics import TrainMetrics

RATE = {
    "name": "exchange_rate",
    "description": "Exchange rate between two currencies.",
    "parameters": {
        "type": "object",
        "properties": {"base": {"type": "string"}, "quote": {"type": "string"}},
        "required": ["base", "quote"],
    },
    "python": "bank_rates:rate",
}
FILE_LINES = [
    {
        "messages": [
            {"role": "user", "content": "Rate EUR to USD?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "exchange_rate", "arguments": '{"base": "EUR", "quote": "USD"}'},
                    }
                ],
            },
            {"role": "tool", "content": "1 EUR = 1.08 USD"},
            {"role": "assistant", "content": "1 EUR is 1.08 USD today."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "List files"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": "shell", "arguments": '{"cmd": "ls"}'}}],
            },
        ]
    },
]


def _docs() -> tuple[list[dict], list[dict]]:
    docs, facts = [], []
    for i in range(10):
        text = f"Plan {i} costs {i + 3} USD per month and its daily card limit is {100 * (i + 1)} USD for holders."
        docs.append(
            {
                "id": f"d{i}",
                "text": text,
                "source": "plans.md",
                "meta": {"title": f"Plan {i}", "split": "train" if i < 8 else "heldout"},
            }
        )
        for value in (f"{i + 3} USD", f"{100 * (i + 1)} USD"):
            start = text.index(value)
            facts.append(
                {
                    "id": f"d{i}-{start}",
                    "doc_id": f"d{i}",
                    "start": start,
                    "end": start + len(value),
                    "text": value,
                    "kind": "money",
                    "context": text,
                }
            )
    return docs, facts


@pytest.fixture(scope="module")
def run(make_tiny_llm, make_tiny_embedder, tmp_path_factory, curated_writer):
    import trl

    qwen = Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja"
    if not qwen.exists():
        pytest.skip("trl no longer ships qwen2_5.jinja")
    root = tmp_path_factory.mktemp("tools-stage")
    docs, facts = _docs()
    run = root / "runs" / "stage"
    curated_writer(run / "curate", docs, facts)
    texts = [d["text"] for d in docs]
    embedder = make_tiny_embedder(texts)
    build_index(docs, run / "index", Embedder(str(embedder)))
    base = make_tiny_llm(texts + ["<tool_call> </tool_call> <tool_response> </tool_response>"])
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = qwen.read_text()  # a base model with its own hermes tool template
    tok.save_pretrained(base)
    (root / "convs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in FILE_LINES))
    recipe = validate(
        {
            "name": "stage",
            "run_dir": str(root / "runs"),
            "sources": [{"name": "a", "path": str(root)}],
            "base_model": {"path": str(base)},
            "index": {"embedder": str(embedder)},
            "tools": [RATE],
            "train": {
                "cpt": {"enabled": False},
                "tools": {
                    "conversations": 12,
                    "max_steps": 2,
                    "batch_size": 2,
                    "seq_len": 4096,
                    "save_steps": 2,
                    "conversation_files": [str(root / "convs.jsonl")],
                },
            },
        }
    )
    resolved = recipe.resolved(root)
    RunDir(run).save_resolved_recipe(resolved.model_dump(mode="json"))  # as `cogcore run` does; ask reads it
    (stage,) = [s for s in build_stages(resolved) if s.name == "train.tools"]
    assert stage.config["recipe_tools"] == [RATE] and stage.config["files"][0]["path"].endswith("convs.jsonl")
    folder = run / "train" / "tools"
    folder.mkdir(parents=True)
    stage.run(folder)
    return run, qwen.read_text()


def test_metrics_count_kinds_files_and_the_template(run):
    run, _ = run
    metrics = TrainMetrics.read(run / "train/tools/metrics.json")
    data = metrics.data
    assert metrics.chat_template["template"] == "base" and metrics.steps == 2
    assert data["conversation_files"]["kept"] == 1 and data["conversation_files"]["skipped"] == {"undeclared_tool": 1}
    assert sum(v["requested"] for v in data["requested"].values()) == 12
    assert data["kinds"] == {k: v["made"] for k, v in data["requested"].items() if v["made"]} | {"file": 1}
    assert data["conversations"] == data["rows"] == sum(data["kinds"].values())
    written = [json.loads(line) for line in (run / "train/tools/conversations.jsonl").read_text().splitlines()]
    assert len(written) == data["conversations"]


def test_the_model_ships_the_base_template_and_the_tools_file(run):
    run, qwen = run
    assert (run / "train/tools/model/chat_template.jinja").read_text() == qwen
    assert json.loads((run / "train/tools/tools.json").read_text()) == [RATE]


def test_ask_needs_the_recipe_tools_implementation_and_then_answers(run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cogcore.cli import app

    run, _ = run
    missing = CliRunner().invoke(app, ["ask", str(run), "What does plan 3 cost?", "--max-new-tokens", "4"])
    assert missing.exit_code == 2 and "tool 'exchange_rate': cannot load 'bank_rates:rate'" in missing.output
    (tmp_path / "bank_rates.py").write_text("def rate(args):\n    return '1 EUR = 1.08 USD'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(
        app, ["ask", str(run), "What does plan 3 cost?", "--max-new-tokens", "4", "--max-rounds", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "answer" in result.output
    import sys

    sys.modules.pop("bank_rates", None)
