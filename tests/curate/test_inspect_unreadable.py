"""`cogcore inspect` on curate files cut off mid-write or of the wrong shape: one error line naming
the file and why, exit code 2, no traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.curate.stats import CurateStats, StepStats


def _run(tmp_path):
    curate = tmp_path / "runs" / "x" / "curate"
    (curate / "drops").mkdir(parents=True)
    step = StepStats(
        "length_filter",
        docs_in=2,
        kept=1,
        dropped={"too_short": 1},
        bytes_in=70,
        bytes_kept=65,
        bytes_dropped={"too_short": 5},
        tokens_in=12,
        tokens_kept=11,
        tokens_dropped={"too_short": 1},
    )
    CurateStats(
        docs_in=2,
        docs_out=1,
        steps=[step],
        splits={"train": 1},
        facts={},
        pii={},
        unreadable=[],
        unreadable_by_reason={},
        recoded={},
        warnings=[],
    ).write(curate / "stats.json")
    (curate / "drops" / "too_short.jsonl").write_text(
        json.dumps({"id": "c", "source": "s", "step": "length_filter", "text": "short"}) + "\n"
    )
    (curate / "clusters.jsonl").write_text(json.dumps({"kind": "exact", "kept": "a", "members": ["a", "b"]}) + "\n")
    return curate.parent


@pytest.mark.parametrize(
    "name,text,args,why",
    [
        ("stats.json", '{"docs_in": 2, "do', [], "not valid JSON"),
        ("stats.json", "[1, 2]", [], "expected a JSON object, found a list"),
        (
            "stats.json",
            '{"docs_in": 2, "docs_out": 1, "steps": []}',
            [],
            "missing fields splits, facts",
        ),  # an older shape
        ("drops/too_short.jsonl", '{"id": "c", "sou', ["--reason", "too_short"], "line 1 is not valid JSON"),
        ("clusters.jsonl", '{"kind": "exact", "ke', ["--cluster-of", "a"], "line 1 is not valid JSON"),
    ],
)
def test_an_unreadable_curate_file_is_one_error_line_naming_it(tmp_path, name, text, args, why):
    run = _run(tmp_path)
    assert CliRunner().invoke(app, ["inspect", str(run), *args]).exit_code == 0  # readable, it works
    (run / "curate" / name).write_text(text)
    result = CliRunner().invoke(app, ["inspect", str(run), *args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), result.stderr
    assert f"curate/{name}" in " ".join(result.stderr.split()) and why in " ".join(result.stderr.split())
