"""What curation's stats say about reading: records lost per file and why, in bounded size;
recoded files; caps and `follow_links` set in the recipe reach the readers; nothing readable at all
is a clear error naming the sources, not a TypeError."""

from __future__ import annotations

import json
import os

import pytest

from cogcore.curate.pipeline import curate
from cogcore.curate.readers import EXAMPLES_PER_REASON, ReadLimits
from cogcore.curate.stats import CurateStats, UnreadableEntry
from cogcore.recipe import Source, validate
from cogcore.runner import StageError
from cogcore.stages import build_stages

LONG = "Branches open at nine and close after eight hours on weekdays; call the front desk for more. "


def records(n: int, bad: set[int], bad_line: bytes = b"{broken") -> bytes:
    return b"\n".join(bad_line if i in bad else json.dumps({"text": f"{i} {LONG}"}).encode() for i in range(n))


def test_stats_count_lost_records_per_file_in_bounded_size(tmp_path, source, bare_plan):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jsonl").write_bytes(records(300, set(range(50, 250))))
    (tmp_path / "src" / "b.jsonl").write_bytes(records(300, {100}, b'{"text": "caf\xe9"}'))
    (tmp_path / "src" / "c.txt").write_bytes(("Caf\u00e9 cr\u00e8me \u2013 " + LONG).encode("cp1252"))
    stats = curate([source("s", str(tmp_path / "src"))], tmp_path / "out", bare_plan(min_chars=10))
    assert stats.docs_in == 100 + 299 + 1
    listed = [u for u in stats.unreadable if u.path.startswith("a.jsonl")]
    assert len(listed) == EXAMPLES_PER_REASON + 1  # examples, then one count: not 200 entries
    assert listed[-1] == UnreadableEntry(
        path="a.jsonl",
        reason=f"bad_jsonl: {200 - EXAMPLES_PER_REASON} more records of this file (200 in all)",
        source="s",
        count=200 - EXAMPLES_PER_REASON,
    )
    assert listed[-1].to_json()["count"] == 200 - EXAMPLES_PER_REASON and "count" not in listed[0].to_json()
    assert [(u.path, u.kind) for u in stats.unreadable if u.path.startswith("b.")] == [("b.jsonl#100", "bad_encoding")]
    assert stats.unreadable_by_reason == {"bad_jsonl": 200, "bad_encoding": 1}
    assert stats.recoded == {str(tmp_path / "src" / "c.txt"): "cp1252"}
    kept = [json.loads(line) for line in (tmp_path / "out" / "docs.jsonl").read_text().splitlines()]
    assert [d["meta"]["encoding"] for d in kept if d["meta"].get("encoding")] == ["cp1252"]


def test_meta_nested_too_deep_is_one_lost_record_not_a_failed_run(tmp_path, source, bare_plan):
    nested = "[" * 600 + "]" * 600
    (tmp_path / "a.jsonl").write_text(f'{{"text": "{LONG}", "m": 1}}\n{{"text": "{LONG} 2", "m": {nested}}}\n')
    stats = curate(
        [source("s", str(tmp_path / "a.jsonl"), meta_fields=["m"])], tmp_path / "out", bare_plan(min_chars=10)
    )
    assert stats.docs_out == 1 and stats.unreadable_by_reason == {"too_deeply_nested": 1}


def test_nothing_readable_in_any_source_is_a_clear_error(tmp_path, source, bare_plan):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.txt").write_bytes(b"PK\x03\x04\x00\x00binary\x00")
    (tmp_path / "bin" / "b.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "empty.jsonl").write_text("\n")
    sources = [source("blobs", str(tmp_path / "bin")), source("nothing", str(tmp_path / "empty.jsonl"))]
    with pytest.raises(StageError) as e:
        curate(sources, tmp_path / "out", bare_plan())
    message = str(e.value)
    assert "yielded no documents" in message
    assert f"blobs ({tmp_path / 'bin'})" in message and f"nothing ({tmp_path / 'empty.jsonl'})" in message
    assert "binary_content" in message and "unsupported_format" in message and "empty_file" in message


def test_the_recipe_sets_follow_links_and_the_caps(tmp_path):
    assert Source(name="a", path="x").follow_links is False
    assert "outside" in Source.model_fields["follow_links"].description
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir()
    outside.mkdir()
    (corpus / "a.jsonl").write_bytes(records(3, set()) + b"\n" + json.dumps({"text": "x" * 3000}).encode() + b"\n")
    (outside / "b.txt").write_text(LONG)
    os.symlink(outside / "b.txt", corpus / "b.txt")
    (tmp_path / "emb").mkdir()

    def run_curate(follow: bool) -> CurateStats:
        recipe = validate(
            {
                "name": f"r{follow}",
                "run_dir": str(tmp_path / "runs"),
                "base_model": {"path": "org/model"},
                "sources": [{"name": "c", "path": str(corpus), "follow_links": follow}],
                "index": {"embedder": str(tmp_path / "emb")},
                "curate": {"min_chars": 10, "limits": {"max_record_bytes": 2000}},
            }
        )
        assert recipe.curate.limits.max_document_bytes == ReadLimits.max_document_bytes
        (stage,) = [s for s in build_stages(recipe.resolved(tmp_path)) if s.name == "curate"]
        out = tmp_path / f"out{follow}"
        out.mkdir()
        stage.run(out)
        return CurateStats.read(out / "stats.json")

    closed = run_curate(False)
    assert closed.docs_in == 3
    assert closed.unreadable_by_reason == {"record_too_large": 1, "link_outside_root": 1}
    opened = run_curate(True)
    assert opened.docs_in == 4 and opened.unreadable_by_reason == {"record_too_large": 1}
