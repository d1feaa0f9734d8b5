"""The domain's proper names, learned from the corpus: product names that recur in running text are
names; headings, bold labels, dictionary phrases, acronyms and the corpus's own brand are not; the
detector matches them as written and curation records them for review."""

from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from cogcore.cli import app
from cogcore.curate import names as names_module
from cogcore.curate.executors import LocalExecutor
from cogcore.curate.facts import FactDetector
from cogcore.curate.names import NAMES_FILE, NameCounts, NameSettings, count_names, learn_names, names_of
from cogcore.curate.pipeline import curate

PRODUCTS = [
    "Silver Account",
    "Sky Blue",
    "BNPL Bronze",
    "EveryonePay",
    "Cobalt Saver",
    "Gold Plus",
    "Navy Card",
    "Emerald Saver",
    "Zoom Card",
    "Hunter Green",
    "Purple Account",
    "Diamond Elite",
]


def corpus(n: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        product = PRODUCTS[i % len(PRODUCTS)]
        texts.append(
            f"## Limit Increase Rules\n**Fee Schedule:** see below.\n"
            f"Customers who hold the {product} pay a fee of ${rng.randint(2, 40)} at a foreign ATM. "
            f"The Annual Percentage Yield is shown monthly, and the annual percentage yield can change. "
            f"Our customer service team answers every day. Ask Customer Service about it. "
            f"Every Acme-Bank branch can help."
        )
    return texts


def test_recurring_product_names_are_learned_and_labels_are_not():
    learned = {n.text: n for n in learn_names(corpus())}
    assert set(PRODUCTS) <= set(learned)
    # headings and bold labels; a phrase also written in lower case; an acronym; the brand in every document
    for label in ("Limit Increase Rules", "Fee Schedule", "Annual Percentage Yield", "Customer Service", "ATM"):
        assert label not in learned
    assert "Acme-Bank" not in learned and "Acme" not in learned
    assert learned["Sky Blue"].docs == 4  # documents 1, 13, 25 and 37


def test_a_name_seen_in_one_document_only_is_not_learned():
    texts = corpus() + ["Only here do we mention the Zircon Plan by name."]
    assert "Zircon Plan" not in {n.text for n in learn_names(texts)}
    assert "Zircon Plan" in {n.text for n in learn_names(texts + texts[-1:], NameSettings(min_docs=2))}


def test_learned_names_match_as_written_and_side_by_side_names_join():
    detector = FactDetector(names=["Silver", "Bronze", "Saver"])
    facts = detector.detect({"id": "d", "text": "Your Silver APY beats silver coins; the Bronze Saver pays 2%."})
    assert [(f["text"], f["kind"]) for f in facts] == [("Silver", "name"), ("Bronze Saver", "name"), ("2%", "percent")]
    # without learned names, a capitalized run is a name: the rule the learned names replace
    plain = FactDetector().detect({"id": "d", "text": "Ask about the Preconditions and Validation step."})
    assert [f["text"] for f in plain] == ["Preconditions and Validation"]
    assert (
        FactDetector(names=["Silver"]).detect({"id": "d", "text": "Ask about the Preconditions and Validation."}) == []
    )


def test_fact_forms_found_trying_to_break_the_detector():
    cases = {
        "A 6\u2011month CD pays more.": [("6\u2011month", "duration")],  # a non-breaking hyphen
        "Reapply within $135 days.": [("135 days", "duration")],  # a stray $ before a duration
        "Earn $5.00 points per dollar.": [("5.00 points", "quantity")],
        "Rules: (2) the fee is $25.": [("$25", "money")],  # a bracketed list marker
        "Call 1-800-RHO-BANK today.": [("1-800-RHO-BANK", "identifier")],
        "Settles in 2 day(s).": [("2 day(s)", "duration")],
        "From the 12th billing cycle, after 12 billing cycles, 0 fees.": [
            ("12th", "number"),
            ("12 billing cycles", "duration"),
            ("0", "number"),
        ],
    }
    detector = FactDetector()
    for text, expected in cases.items():
        assert [(f["text"], f["kind"]) for f in detector.detect({"id": "d", "text": text})] == expected, text


def test_curation_learns_names_records_them_and_finds_them_as_facts(tmp_path, bare_plan, source):
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(corpus())]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run" / "curate"
    out.mkdir(parents=True)
    curate([source("s", str(tmp_path / "docs.jsonl"))], out, bare_plan())
    names = json.loads((out / NAMES_FILE).read_text())
    assert set(PRODUCTS) <= {n["text"] for n in names["names"]}
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert {f["text"] for f in facts if f["kind"] == "name"} == set(PRODUCTS)
    shown = CliRunner().invoke(app, ["inspect", str(tmp_path / "run"), "--names"])
    assert shown.exit_code == 0 and "Sky Blue  (4 documents" in shown.output


def test_names_counted_shard_by_shard_are_the_names_of_the_whole_corpus():
    texts = corpus(60, seed=3)
    counts = NameCounts()
    for shard in (texts[:7], texts[7:30], texts[30:]):  # as the workers count them, added up in order
        counts.update(count_names(shard))
    assert names_of(counts) == learn_names(texts)


def test_the_names_learned_are_capped_leaving_out_a_tie_at_the_cut(monkeypatch):
    learned = learn_names(corpus())  # 4 names in 4 documents, then 8 in 3
    assert [n.docs for n in learned] == [4] * 4 + [3] * 8
    monkeypatch.setattr(names_module, "MAX_NAMES", 12)
    assert learn_names(corpus()) == learned
    monkeypatch.setattr(names_module, "MAX_NAMES", 6)  # the cut falls among the 3s: all of them out
    assert learn_names(corpus()) == learned[:4]
    monkeypatch.setattr(names_module, "MAX_NAMES", 2)  # ...and among the 4s: none kept
    assert learn_names(corpus()) == []


def test_curation_on_two_workers_learns_and_finds_what_one_worker_does(tmp_path, bare_plan, source):
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(corpus(60, seed=1))]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = bare_plan(batch_size=7)
    for workers in (1, 2):
        curate([source("s", str(tmp_path / "docs.jsonl"))], tmp_path / f"w{workers}", plan, LocalExecutor(workers))
    for name in ("docs.jsonl", "facts.jsonl", NAMES_FILE):
        assert (tmp_path / "w2" / name).read_text() == (tmp_path / "w1" / name).read_text(), name
    assert not (tmp_path / "w2" / "work" / "p3").exists()  # the last pass's shards, once written out
