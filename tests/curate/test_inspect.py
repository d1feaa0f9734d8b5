"""`cogcore inspect` shows what curation removed, why, and what each kept document stood for."""

import json

from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.curate.pipeline import curate


def _run(tmp_path, source, bare_plan):
    rows = [
        {"id": "a", "text": "The transfer limit is 500 dollars per day for personal accounts."},
        {"id": "b", "text": "THE TRANSFER LIMIT IS 500 DOLLARS PER DAY FOR PERSONAL ACCOUNTS."},
        {"id": "c", "text": "short"},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "runs" / "x"
    curate([source("s", str(tmp_path / "d.jsonl"), id_field="id")], run / "curate", bare_plan(min_chars=20))
    return run


def test_inspect_summary_reason_and_cluster(tmp_path, source, bare_plan):
    run = _run(tmp_path, source, bare_plan)
    cli = CliRunner()
    summary = cli.invoke(app, ["inspect", str(run)])
    assert summary.exit_code == 0 and "exact_duplicate" in summary.output and "too_short" in summary.output
    sample = cli.invoke(app, ["inspect", str(run), "--reason", "exact_duplicate"])
    assert sample.exit_code == 0 and "--- b" in sample.output and "duplicate of a" in sample.output
    group = cli.invoke(app, ["inspect", str(run), "--cluster-of", "a"])
    assert "kept for 2 documents: a, b" in group.output
    bad = cli.invoke(app, ["inspect", str(run), "--reason", "nope"])
    assert bad.exit_code == 2 and "exact_duplicate" in bad.output
