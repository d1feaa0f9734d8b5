"""train.cpt reads the rephrase stage's kept rewrites as training text like any other: after the
original text, up to `rephrase.ratio` times its tokens, their facts (as the stage detected them)
masked under `mask` and preceded by a search call under `toolcall`, a group of their own under the
online mixture; with the stage off, the rows are the original text's alone. The rewrites are written
here by hand, as the stage writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cogcore.curate.facts import FactDetector
from cogcore.models import ModelSpec
from cogcore.recipe import validate
from cogcore.rephrase.files import DOCS_FILE, FACTS_FILE, GROUP, STATS_FILE, RephraseStats
from cogcore.stages.cpt import rows_by_group, sharded_encoder, training_rows
from cogcore.stages.rephrased_rows import RephrasedText
from cogcore.stages.training_corpus import CuratedIndex, StreamedCorpus
from cogcore.train.packing import IGNORE_INDEX

ORIGINALS = [f"Branch {n} opens early on weekdays and helps customers with their questions." for n in range(6)]
REWRITES = [
    "Q: What is the monthly fee of the Gold Card?\nA: The Gold Card costs $45 a month.",
    "Q: How fast do transfers settle?\nA: Transfers settle within 3 business days.",
]


@pytest.fixture(scope="module")
def tok(make_tiny_llm):
    folder = make_tiny_llm(ORIGINALS + REWRITES)
    return folder, ModelSpec(path=str(folder), dtype="float32", trust_remote_code=False).load_tokenizer()


def _run(tmp_path: Path, tok, curated_writer, strategy: str, enabled: bool = True, ratio: float = 10.0):
    folder, tokenizer = tok
    run = tmp_path / "runs" / "t"
    docs = [{"id": f"o{n}", "text": t, "source": "s", "meta": {"split": "train"}} for n, t in enumerate(ORIGINALS)]
    curated_writer(run / "curate", docs, [])  # no fact in the originals: every mask or call is a rewrite's
    rephrase = run / "rephrase"
    rephrase.mkdir(parents=True)
    detector = FactDetector()
    rewrites = [
        {
            "id": f"o{n}~qa0",
            "text": t,
            "source": GROUP,
            "meta": {"split": "train", "rephrased_from": f"o{n}", "style": "qa"},
        }
        for n, t in enumerate(REWRITES)
    ]
    (rephrase / DOCS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rewrites))
    facts = [f for r in rewrites for f in detector.detect(r)]
    assert {f["text"] for f in facts} >= {"$45", "3 business days"}
    (rephrase / FACTS_FILE).write_text("".join(json.dumps(f) + "\n" for f in facts))
    RephraseStats(enabled=True, requested=2, accepted=2).write(rephrase / STATS_FILE)
    recipe = validate(
        {
            "name": "t",
            "run_dir": str(tmp_path / "runs"),
            "sources": [{"name": "s", "path": "x.jsonl"}],
            "base_model": {"path": str(folder)},
            "index": {"embedder": str(folder)},
            "facts": {"strategy": strategy},
            "rephrase": {"enabled": enabled, "ratio": ratio},
            "train": {"cpt": {"seq_len": 64, "data_workers": 1}},
        }
    )
    stage = run / "train" / "cpt"
    stage.mkdir(parents=True)
    counts: dict = {}
    rows = list(training_rows(recipe, run, stage, None, tokenizer, stage / "shards", counts))
    return recipe, run, rows, counts


def _masked_text(rows: list[dict], tokenizer) -> str:
    ids = [i for r in rows for i, label in zip(r["input_ids"], r["labels"]) if label == IGNORE_INDEX]
    return tokenizer.decode(ids)


def test_rewrites_train_after_the_originals_with_their_facts_masked(tmp_path, tok, curated_writer):
    _, rows, counts = _run(tmp_path, tok, curated_writer, "mask")[1:]
    used = counts["rephrased"]
    assert counts["docs"] == len(ORIGINALS) and counts["masked_tokens"] == 0  # the originals: no fact
    assert used["available"] == used["docs"] == 2 and used["masked_tokens"] > 0 and used["ratio"] > 0
    masked = _masked_text(rows, tok[1])
    # the facts (the names among them), not the words around them; a document's first token has no label either
    assert "$45" in masked and "3 business days" in masked and "Gold Card" in masked
    assert not any(w in masked for w in ("monthly fee", "costs", "settle", "How fast"))
    assert "Transfers settle within" in tok[1].decode([i for r in rows for i in r["input_ids"]])


def test_rewrites_facts_are_preceded_by_a_search_call_under_toolcall(tmp_path, tok, curated_writer):
    _, rows, counts = _run(tmp_path, tok, curated_writer, "toolcall")[1:]
    text = tok[1].decode([i for r in rows for i in r["input_ids"]])
    assert text.count('"name": "search"') >= 2  # only the rewrites have facts to call for
    assert text.index('"name": "search"') < text.index("$45")


def test_the_ratio_caps_the_rewritten_tokens(tmp_path, tok, curated_writer):
    counts = _run(tmp_path, tok, curated_writer, "mask", ratio=0.01)[3]
    used = counts["rephrased"]
    assert used["docs"] == 1 and used["target_tokens"] == round(0.01 * counts["tokens"]) > 0


def test_off_the_rows_are_the_original_text_alone(tmp_path, tok, curated_writer):
    rows, counts = _run(tmp_path, tok, curated_writer, "mask", enabled=False)[2:]
    assert "rephrased" not in counts and "$45" not in _masked_text(rows, tok[1])
    assert "Gold Card" not in tok[1].decode([i for r in rows for i in r["input_ids"]])


def test_under_the_online_mixture_the_rewrites_are_a_group_of_their_own(tmp_path, tok, curated_writer):
    recipe, run, _, _ = _run(tmp_path, tok, curated_writer, "mask")
    index = CuratedIndex.build(run / "curate", "train")
    encoder = sharded_encoder(recipe, tok[1], run / "train" / "cpt" / "online-shards")
    counts = {"tokens": 0}
    rephrased = RephrasedText(run / "rephrase", ratio=1.0, enabled=True)
    rows = list(rows_by_group(recipe, StreamedCorpus(index, range(len(index))), encoder, counts, rephrased))
    assert {r["group"] for r in rows} == {"s", GROUP} and counts["rephrased"]["docs"] >= 1
