"""Curation never loses data silently: a step that drops most of what it received warns (or fails,
when the recipe asks), a source that yields nothing warns, and a run that keeps nothing fails."""

import json
import logging

import pytest
from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.curate.pipeline import curate
from cogcore.curate.stats import CurateStats
from cogcore.runner import StageError

PROSE = (
    "The transfer limit for a personal account is set by the branch and it can be raised for a customer "
    "who has held the account for more than a year. Customers ask for a higher limit at the counter and "
    "the branch decides within two days. The fee for a transfer over the limit is charged to the account "
    "that sends it, and it is shown on the monthly statement with the date of the transfer. "
)


def reference_page(i: int) -> str:
    # A short documentation page: under Gopher's published 50-word minimum.
    return f"## Fee table {i}\n\n- Wire transfer: ${i + 5}.00\n- ACH transfer: free\n- Card replacement: $10"


GOPHER = {"gopher_quality": {"enabled": True}}  # the published thresholds: short pages fail them


def docs_corpus(folder, source, pages: int = 9, prose: int = 3, copies: int = 0):
    rows = [{"id": f"page{i}", "text": reference_page(i)} for i in range(pages)]
    rows += [{"id": f"prose{i}", "text": f"Policy {i}. " + PROSE} for i in range(prose)]
    rows += [{"id": f"copy{i}", "text": f"Policy {i % prose}. " + PROSE} for i in range(copies)]
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return source("handbook", str(path), id_field="id")


def _stats(out) -> CurateStats:
    return CurateStats.read(out / "stats.json")


def test_a_step_that_drops_most_documents_warns_naming_share_reason_and_inspect_command(
    tmp_path, caplog, source, bare_plan
):
    run = tmp_path / "runs" / "docs"
    with caplog.at_level(logging.WARNING, logger="cogcore"):
        curate([docs_corpus(tmp_path, source)], run / "curate", bare_plan(min_chars=20, quality=GOPHER))
    (warning,) = _stats(run / "curate").warnings
    assert warning.kind == "step_drop" and warning.step == "gopher_quality"
    assert warning.share == pytest.approx(0.75) and warning.docs_in == 12 and warning.dropped == 9
    assert warning.reason == "gopher_short_doc" and warning.threshold == 0.3
    assert warning.inspect == f"cogcore inspect {run} --reason gopher_short_doc"
    message = warning.message
    assert "gopher_quality" in message and "75.0%" in message and "gopher_short_doc" in message
    assert warning.inspect in message and "curate.quality.gopher_quality" in message
    assert message in caplog.messages  # printed, not only recorded
    shown = CliRunner().invoke(app, warning.inspect.split()[1:])  # the command in the warning works
    assert shown.exit_code == 0 and "--- page0" in shown.output
    summary = CliRunner().invoke(app, ["inspect", str(run)])
    assert "75.0%" in summary.output  # `cogcore inspect RUN` shows the warning too


def test_below_the_threshold_or_with_it_off_there_is_no_warning(tmp_path, caplog, source, bare_plan):
    handbook = docs_corpus(tmp_path, source)
    with caplog.at_level(logging.WARNING, logger="cogcore"):
        curate([handbook], tmp_path / "a" / "curate", bare_plan(min_chars=20, quality=GOPHER, warn_drop_fraction=0.8))
        curate([handbook], tmp_path / "b" / "curate", bare_plan(min_chars=20, quality=GOPHER, warn_drop_fraction=None))
    assert _stats(tmp_path / "a" / "curate").warnings == _stats(tmp_path / "b" / "curate").warnings == []
    assert not caplog.messages


def test_exact_duplicates_do_not_count_against_the_threshold(tmp_path, source, bare_plan):
    # 6 of 9 documents are copies: removing them loses no text, so it is no warning.
    out = tmp_path / "r" / "curate"
    stats = curate([docs_corpus(tmp_path, source, pages=0, prose=3, copies=6)], out, bare_plan(min_chars=20))
    assert {s.step: s.dropped for s in stats.steps}["exact_dedup"] == {"exact_duplicate": 6}
    assert stats.warnings == []


def test_max_drop_fraction_fails_the_run_in_one_line_naming_step_share_reason_and_field(tmp_path, source, bare_plan):
    run = tmp_path / "runs" / "docs"
    plan = bare_plan(min_chars=20, quality=GOPHER, max_drop_fraction=0.5)
    with pytest.raises(StageError) as failed:
        curate([docs_corpus(tmp_path, source)], run / "curate", plan)
    message = str(failed.value)
    assert "\n" not in message
    for part in (
        "gopher_quality",
        "75.0%",
        "gopher_short_doc",
        "curate.max_drop_fraction = 0.5",
        f"cogcore inspect {run} --reason gopher_short_doc",
    ):
        assert part in message, part
    # What it dropped stays inspectable after the failure.
    assert _stats(run / "curate").warnings[0].step == "gopher_quality"
    assert (run / "curate" / "drops" / "gopher_short_doc.jsonl").exists()


def test_a_source_that_yields_no_documents_warns_with_its_path_and_unreadable_reasons(
    tmp_path, caplog, source, bare_plan
):
    slides = tmp_path / "slides"
    slides.mkdir()
    (slides / "q3.pptx").write_bytes(b"PK")
    (slides / "notes.txt").write_bytes(b"")
    sources = [docs_corpus(tmp_path, source, pages=0), source("slides", str(slides))]
    with caplog.at_level(logging.WARNING, logger="cogcore"):
        stats = curate(sources, tmp_path / "r" / "curate", bare_plan(min_chars=20))
    (warning,) = stats.warnings
    assert warning.kind == "empty_source" and warning.source == "slides" and warning.path == str(slides)
    assert warning.unreadable == {"unsupported_format": 1, "empty_file": 1}
    for part in ("slides", str(slides), "unsupported_format", "empty_file"):
        assert part in warning.message, part
    assert warning.message in caplog.messages
    assert stats.docs_out == 3  # the other source still runs


def test_curation_that_keeps_no_document_fails_naming_the_step_that_emptied_it(tmp_path, source, bare_plan):
    run = tmp_path / "runs" / "docs"
    with pytest.raises(StageError) as failed:
        curate([docs_corpus(tmp_path, source, pages=4, prose=0)], run / "curate", bare_plan(min_chars=500))
    message = str(failed.value)
    assert "\n" not in message
    for part in (
        "0 of 4",
        "length_filter",
        "too_short",
        "curate.min_chars",
        f"cogcore inspect {run} --reason too_short",
    ):
        assert part in message, part


def test_sources_that_yield_no_documents_at_all_fail_naming_them_and_their_reasons(tmp_path, source, bare_plan):
    empty = tmp_path / "exports"
    empty.mkdir()
    (empty / "a.pptx").write_bytes(b"PK")
    with pytest.raises(StageError) as failed:
        curate([source("exports", str(empty))], tmp_path / "r" / "curate", bare_plan())
    message = str(failed.value)
    assert "\n" not in message
    for part in ("no documents", "exports", str(empty), "unsupported_format", "sources"):
        assert part in message, part
    assert _stats(tmp_path / "r" / "curate").unreadable[0].reason == "unsupported_format"
