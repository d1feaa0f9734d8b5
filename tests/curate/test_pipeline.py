"""The curation pipeline on a planted corpus: every document accounted for at every step, drop
samples kept, unreadable files listed, a deterministic held-out split, and exact fact spans."""

import gzip
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from cogcore.curate.accounting import SAMPLES_PER_REASON, check_accounting
from cogcore.curate.pipeline import curate
from cogcore.curate.stats import CurateStats, StepStats

GOOD = 600  # more than two batches, so that dedup and id checks must carry state across batches
DUPLICATES, SHORT, EMPTY, REUSED_IDS = 30, 7, 4, 5


def good_text(i: int) -> str:
    # Extra spaces on purpose: normalization changes the text, and facts must index the new one.
    return (
        f"Policy {i}:  the wire fee for tier T{i} is ${i + 2}.00 and   disputes take {i % 20 + 2} days. "
        f"Quote ACC-{10000 + i} when calling about this policy."
    )


def planted_corpus(folder: Path, source) -> list:
    rows = [{"id": f"p{i}", "body": good_text(i), "team": "ops"} for i in range(GOOD)]
    rows += [{"id": f"copy{i}", "body": "  " + good_text(i).upper().replace(" ", "   ")} for i in range(DUPLICATES)]
    rows += [{"id": f"short{i}", "body": f"Short {i}."} for i in range(SHORT)]
    rows += [{"id": f"empty{i}", "body": " \n\t "} for i in range(EMPTY)]
    rows += [
        {"id": f"p{i}", "body": f"A different document that reuses the id of policy number {i}, " * 2}
        for i in range(REUSED_IDS)
    ]
    rows += [{"id": "no-text", "title": "record without the text field"}]
    (folder / "records.jsonl.gz").write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    notes = folder / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Handbook\n\nBranches open at 9:00 am and close after 8 hours on weekdays.\n")
    (notes / "b.txt").write_text("Lost cards are replaced within 5 business days for a $10 fee, customers say.\n")
    (notes / "broken.json.gz").write_bytes(b"not gzip at all")
    (notes / "binary.txt").write_bytes(b"\x00\x01\x02 looks like text \x00")
    (notes / "slides.pptx").write_bytes(b"PK")
    return [
        source("records", str(folder / "records.jsonl.gz"), text_field="body", id_field="id", meta_fields=["team"]),
        source("notes", str(notes)),
    ]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory, source, bare_plan):
    root = tmp_path_factory.mktemp("curate")
    sources = planted_corpus(root, source)
    out = root / "out"
    stats = curate(
        sources,
        out,
        bare_plan(
            min_chars=40,
            heldout_fraction=0.2,
            batch_size=64,
            kinds=("money", "duration", "identifier", "date", "time", "number"),
        ),
    )
    return sources, out, stats


def test_accounting_identity_holds_at_every_step(run):
    _, _, stats = run
    total = GOOD + DUPLICATES + SHORT + EMPTY + REUSED_IDS + 2  # + the two notes
    assert stats.docs_in == total
    n = total
    for step in stats.steps:
        assert step.docs_in == n == step.kept + sum(step.dropped.values()), step
        n = step.kept
    assert stats.docs_out == n == GOOD + 2
    assert {s.step: s.dropped for s in stats.steps} == {
        "unique_ids": {"duplicate_id": REUSED_IDS},
        "normalize": {},
        "length_filter": {"too_short": SHORT, "empty": EMPTY},
        "exact_dedup": {"exact_duplicate": DUPLICATES},
    }


def test_outputs_match_the_stats(run):
    _, out, stats = run
    docs = read_jsonl(out / "docs.jsonl")
    assert len(docs) == stats.docs_out
    assert json.loads((out / "stats.json").read_text()) == stats.to_json()
    assert CurateStats.read(out / "stats.json").to_json() == stats.to_json()
    assert not list(out.glob("*.tmp"))
    by_id = {d["id"]: d for d in docs}
    assert len(by_id) == len(docs)
    assert by_id["p3"]["text"] == " ".join(good_text(3).split())  # normalized, the first of the copies
    assert by_id["p3"]["source"] == "records" and by_id["p3"]["meta"]["team"] == "ops"
    assert sorted(d["source"] for d in docs if d["source"] == "notes") == ["notes", "notes"]


def test_drop_samples_are_kept_per_reason(run):
    _, out, _ = run
    files = {p.stem: read_jsonl(p) for p in (out / "drops").glob("*.jsonl")}
    assert set(files) == {"too_short", "empty", "duplicate_id", "exact_duplicate"}
    assert len(files["too_short"]) == SHORT and len(files["exact_duplicate"]) == SAMPLES_PER_REASON
    dup = files["exact_duplicate"][0]
    assert dup["id"] == "copy0" and dup["step"] == "exact_dedup" and dup["meta"]["duplicate_of"] == "p0"
    assert {r["step"] for r in files["duplicate_id"]} == {"unique_ids"}
    assert all(r["text"].startswith("A different document") for r in files["duplicate_id"])


def test_unreadable_files_and_records_are_listed_and_the_run_goes_on(run):
    _, _, stats = run
    # The reason's kind (before any ": detail"), per file: details come from the libraries.
    reasons = {Path(u.path).name: (u.kind, u.source) for u in stats.unreadable}
    assert reasons == {
        "records.jsonl.gz#" + str(GOOD + DUPLICATES + SHORT + EMPTY + REUSED_IDS): ("missing_text_field", "records"),
        "broken.json.gz": ("corrupt_gzip", "notes"),
        "binary.txt": ("binary_content", "notes"),
        "slides.pptx": ("unsupported_format", "notes"),
    }


def test_heldout_split_is_deterministic_and_near_the_fraction(run, tmp_path, bare_plan):
    sources, out, stats = run
    docs = read_jsonl(out / "docs.jsonl")
    splits = {d["id"]: d["meta"]["split"] for d in docs}
    assert Counter(splits.values()) == Counter(stats.splits)
    assert 0.14 < stats.splits["heldout"] / len(docs) < 0.26
    curate(sources, tmp_path / "again", bare_plan(min_chars=40, heldout_fraction=0.2, kinds=("money",)))
    assert {d["id"]: d["meta"]["split"] for d in read_jsonl(tmp_path / "again" / "docs.jsonl")} == splits
    curate(sources, tmp_path / "seed1", bare_plan(min_chars=40, heldout_fraction=0.2, kinds=("money",), seed=1))
    assert {d["id"]: d["meta"]["split"] for d in read_jsonl(tmp_path / "seed1" / "docs.jsonl")} != splits
    curate(sources, tmp_path / "none", bare_plan(min_chars=40, heldout_fraction=0.0, kinds=("money",)))
    assert CurateStats.read(tmp_path / "none" / "stats.json").splits == {"train": len(docs)}


def test_fact_spans_index_the_curated_text_exactly(run):
    _, out, stats = run
    docs = {d["id"]: d for d in read_jsonl(out / "docs.jsonl")}
    facts = read_jsonl(out / "facts.jsonl")
    for fact in facts:
        text = docs[fact["doc_id"]]["text"]
        assert text[fact["start"] : fact["end"]] == fact["text"]
        assert fact["context"] in text
    assert Counter(f["kind"] for f in facts) == Counter(stats.facts)
    planted = {(f["doc_id"], f["kind"], f["text"]) for f in facts}
    for i in (0, 299, 599):
        assert (f"p{i}", "money", f"${i + 2}.00") in planted
        assert (f"p{i}", "duration", f"{i % 20 + 2} days") in planted
        assert (f"p{i}", "identifier", f"ACC-{10000 + i}") in planted
    notes = [f for f in facts if docs[f["doc_id"]]["source"] == "notes"]
    assert sorted((f["kind"], f["text"]) for f in notes) == [
        ("duration", "5 business days"),
        ("duration", "8 hours"),
        ("money", "$10"),
        ("time", "9:00 am"),
    ]
    # per policy: one fee, one duration, one ACC id, and "Policy i" as a number ("T5" is no fact)
    assert stats.facts == {"money": GOOD + 1, "duration": GOOD + 2, "identifier": GOOD, "number": GOOD, "time": 1}


def test_check_accounting_fails_loudly_on_a_broken_count():
    step = StepStats(
        "a",
        docs_in=3,
        kept=2,
        dropped=Counter(x=1),
        bytes_in=30,
        bytes_kept=20,
        bytes_dropped=Counter(x=10),
        bytes_delta=-5,
        tokens_in=6,
        tokens_kept=4,
        tokens_dropped=Counter(x=2),
        tokens_delta=-1,
    )
    check_accounting([step], 3, 2)
    with pytest.raises(AssertionError, match="document accounting broken at step a"):
        check_accounting([replace(step, dropped=Counter())], 3, 2)
    with pytest.raises(AssertionError, match="bytes accounting broken"):
        check_accounting([replace(step, bytes_dropped=Counter(x=9))], 3, 2)
    with pytest.raises(AssertionError, match="last step kept"):
        check_accounting([step], 3, 3)
    after = replace(
        step,
        step="b",
        docs_in=2,
        kept=2,
        dropped=Counter(),
        bytes_in=20,
        bytes_kept=20,
        bytes_dropped=Counter(),
        tokens_in=4,
        tokens_kept=4,
        tokens_dropped=Counter(),
    )
    with pytest.raises(AssertionError, match="bytes entering b"):
        check_accounting([step, after], 3, 2)  # step a left 15 bytes (20 kept - 5 rewritten), not 20


def test_step_stats_of_two_batches_add_up_to_those_of_both():
    a = StepStats(
        "length_filter",
        docs_in=3,
        kept=2,
        dropped=Counter(too_short=1),
        bytes_in=30,
        bytes_kept=25,
        bytes_dropped=Counter(too_short=5),
        tokens_in=6,
        tokens_kept=5,
        tokens_dropped=Counter(too_short=1),
    )
    b = StepStats(
        "length_filter",
        docs_in=2,
        kept=1,
        dropped=Counter(empty=1),
        bytes_in=9,
        bytes_kept=9,
        tokens_in=2,
        tokens_kept=2,
    )
    total = sum([a, b], start=StepStats("length_filter"))
    assert (total.docs_in, total.kept, total.bytes_in, total.tokens_kept) == (5, 3, 39, 7)
    assert total.dropped == {"too_short": 1, "empty": 1} and total.bytes_dropped == {"too_short": 5}
    assert a.docs_in == 3 and a.dropped == {"too_short": 1}  # the parts are left as they were
    with pytest.raises(ValueError, match="cannot add"):
        a + StepStats("normalize")
