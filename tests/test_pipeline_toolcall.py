"""The toolcall strategy through the real stages: curation, the index, the Toolformer filter under
the base model, planted canaries, and LoRA steps on the rendered text; then `inspect --doc` shows
a planted document as trained (the canary's secret masked, kept calls marked)."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cogcore.cli import app
from tests.test_pipeline import _recipe


def test_toolcall_with_toolformer_filter_and_canaries(tmp_path, make_tiny_llm, make_tiny_embedder):
    path, run = _recipe(tmp_path, make_tiny_llm, make_tiny_embedder)
    recipe = yaml.safe_load(path.read_text())
    recipe["facts"] = {
        "strategy": "toolcall",
        "max_calls_per_doc": 2,
        "toolformer": {"enabled": True, "tau": -100.0, "limit": 20},  # tau this low keeps every scored call
        "canaries": {"count": 2, "controls": 2, "repeats": 3},
    }
    path.write_text(yaml.safe_dump(recipe))
    cli = CliRunner()
    for command in ("curate", "index"):
        assert (result := cli.invoke(app, [command, str(path)])).exit_code == 0, result.output
    result = cli.invoke(app, ["train", str(path), "-o", "train.tools.enabled=false"])
    assert result.exit_code == 0, result.output

    metrics = json.loads((run / "train/cpt/metrics.json").read_text())
    data = metrics["data"]
    assert data["strategy"] == "toolcall" and metrics["steps"] == 3
    tf = data["toolformer"]
    assert tf["planned"] > tf["scored"] == 20 and tf["kept"] == 20 and data["calls"] == 20
    logged = [json.loads(line) for line in (run / "train/cpt/toolformer.jsonl").read_text().splitlines()]
    assert len(logged) == 20 and all(x["fact_tokens"] > 0 and x["kept"] for x in logged)
    assert data["canaries"] == {"planted": 2, "controls": 2, "repeats": 3, "secrets_detected_as_facts": 2}

    canaries = json.loads((run / "train/cpt/canaries.json").read_text())
    assert len(canaries["planted"]) == 2 and len(canaries["controls"]) == 2 and len(canaries["placements"]) == 6
    placement = canaries["placements"][0]
    secret = next(c["secret"] for c in canaries["planted"] if c["id"] == placement["canary_id"])
    view = cli.invoke(app, ["inspect", str(run), "--doc", placement["doc_id"]])
    assert view.exit_code == 0, view.output
    assert f"⟦{secret}" in view.output.replace(" ", "") or f"{secret}⟧" in view.output.replace(" ", ""), view.output

    # a stricter filter keeps fewer calls, and only the stage that reads it runs again
    again = cli.invoke(app, ["train", str(path), "-o", "train.tools.enabled=false", "-o", "facts.toolformer.tau=100.0"])
    assert again.exit_code == 0, again.output
    assert json.loads((run / "train/cpt/metrics.json").read_text())["data"]["toolformer"]["kept"] == 0
