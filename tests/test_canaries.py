"""Canaries: made and planted reproducibly; exposure computed, and raised by training on a canary
(and not when its secret is a masked fact)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.canaries import exposure, make_canaries, plant


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and lose 10x on a shared CPU where OpenMP threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


DOCS = [
    {
        "id": "fees",
        "text": "The standard account costs 5 USD per month.\nPremium accounts cost 12 USD per month.",
        "meta": {"title": "Fees"},
    },
    {
        "id": "cards",
        "text": "Call the bank at any hour to block a card.\nA new card arrives within 5 working days.",
        "meta": {},
    },
    {"id": "plain", "text": "Branches are open on weekdays and on Saturday mornings.", "meta": {}},
    {"id": "empty", "text": "", "meta": {}},
]


def test_make_canaries_is_reproducible_and_distinct():
    canaries = make_canaries(20, seed=3)
    assert canaries == make_canaries(20, seed=3) and canaries != make_canaries(20, seed=4)
    assert len({c["secret"] for c in canaries}) == len({c["template"] for c in canaries}) == 20
    for n, c in enumerate(canaries):
        assert c["id"] == f"canary-{n:03d}" and len(c["secret"]) == 6 and c["secret"].isdigit()
        assert c["text"] == c["template"].replace("{secret}", c["secret"])
        assert c["text"].startswith("The vault access code for branch ") and "{" not in c["text"]
    assert len(make_canaries(2, digits=4)[0]["secret"]) == 4
    with pytest.raises(ValueError, match="must contain"):
        make_canaries(1, template="no secret here")


def test_plant_inserts_whole_lines_and_records_where():
    canaries = make_canaries(3, seed=0)
    originals = [dict(d) for d in DOCS]
    docs, placements = plant(DOCS, canaries, seed=1, repeats=2)
    assert [dict(d) for d in DOCS] == originals  # the input is not changed
    assert plant(DOCS, canaries, seed=1, repeats=2) == (docs, placements)
    assert len(placements) == 6
    by_id = {d["id"]: d for d in docs}
    for c in canaries:
        where = [p for p in placements if p["canary_id"] == c["id"]]
        assert len({p["doc_id"] for p in where}) == 2  # two distinct documents
        for p in where:
            text = by_id[p["doc_id"]]["text"]
            assert text[p["start"] : p["end"]] == c["text"]
            assert p["start"] == 0 or text[p["start"] - 1] == "\n"  # on a line of its own
            assert text[p["end"]] == "\n"
            assert c["id"] in by_id[p["doc_id"]]["meta"]["canaries"]
    for original, new in zip(DOCS, docs):
        held = [p for p in placements if p["doc_id"] == original["id"]]
        if not held:
            assert new is original
            continue
        # removing the canary lines gives back the original text
        text = new["text"]
        for p in sorted(held, key=lambda p: -p["start"]):
            text = text[: p["start"]] + text[p["end"] + 1 :]
        assert text.rstrip("\n") == original["text"].rstrip("\n")
    with pytest.raises(ValueError, match="no documents"):
        plant([], canaries)


@pytest.fixture(scope="module")
def tiny_dir(make_tiny_llm):
    # The tokenizer never sees the secrets, so no secret is a single learned token.
    return make_tiny_llm([d["text"] for d in DOCS] * 3 + ["The vault access code for branch is kept safe."])


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def test_exposure_is_computed_and_deterministic(tiny_dir):
    model, tok = _load(tiny_dir)
    canary = make_canaries(1, seed=0)[0]
    result = exposure(model, tok, canary, candidates=200, seed=0)
    assert result == exposure(model, tok, canary, candidates=200, seed=0, batch_size=7)
    assert result["candidates"] == 200 and result["space"] == 10**6
    assert 0 <= result["exposure"] <= math.log2(10**6) and 0 <= result["exposure_fit"] <= math.log2(10**6)
    rank = 1 + (10**6 - 1) * result["beaten_by"] / 200
    assert result["exposure"] == pytest.approx(math.log2(10**6) - math.log2(rank))
    # explicit candidates: the true secret among them is skipped
    explicit = exposure(model, tok, canary, candidates=[canary["secret"], "000000", "999999"])
    assert explicit["candidates"] == 2


def _train(path, tmp_path, texts, strategy):
    from cogcore.curate.facts import FactDetector
    from cogcore.models import ModelSpec
    from cogcore.recipe import CptTrainConfig
    from cogcore.train.cpt_data import build_cpt_rows
    from cogcore.train.trainer import TrainSettings, train

    model, tok = _load(path)
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    facts = [f for d in docs for f in FactDetector().detect(d)]
    rows, _ = build_cpt_rows(tok, docs, facts, seq_len=64, strategy=strategy)
    section = CptTrainConfig(method="full", max_steps=30, batch_size=4, lr=3e-3, warmup_ratio=0.0, save_steps=1000)
    train(
        model,
        tok,
        rows,
        out_dir=tmp_path / strategy,
        settings=TrainSettings.from_section(section, seed=0),
        label="test",
        model_spec=ModelSpec(path=str(path), dtype="float32", trust_remote_code=False),
    )
    return model, tok


def test_training_on_a_canary_raises_its_exposure_unless_its_secret_is_masked(tiny_dir, tmp_path):
    planted, control = make_canaries(2, seed=5)
    texts = [planted["text"]] * 4 + [d["text"] for d in DOCS[:3]]
    base, tok = _load(tiny_dir)
    before = exposure(base, tok, planted, candidates=300)["exposure"]
    kept, _ = _train(tiny_dir, tmp_path, texts, "keep")
    after = exposure(kept, tok, planted, candidates=300)
    unplanted = exposure(kept, tok, control, candidates=300)["exposure"]
    assert after["exposure"] > before + 5 and after["exposure"] > unplanted + 5
    assert after["beaten_by"] == 0 and after["exposure_fit"] > 9  # ranked first of 300: beyond log2(300)
    # the secret is a `number` fact: under `mask` the model reads it but is never trained to write it
    masked, _ = _train(tiny_dir, tmp_path, texts, "mask")
    assert exposure(masked, tok, planted, candidates=300)["exposure"] < after["exposure"] - 5


def test_plant_in_training_moves_facts_and_marks_secrets_as_facts():
    from cogcore.canaries import plant_in_training
    from cogcore.curate.facts import FactDetector

    detector = FactDetector()
    docs = [
        {"id": f"d{i}", "text": f"Title {i}\nThe fee is $2{i}.50 per month.\nIt is due within 30 days.", "meta": {}}
        for i in range(6)
    ]
    facts = [f for d in docs for f in detector.detect(d)]
    new_docs, new_facts, record = plant_in_training(
        docs, facts, detector, count=2, controls=3, repeats=2, strategy="mask", seed=3
    )
    assert len(record.planted) == 2 and len(record.controls) == 3 and record.strategy == "mask"
    assert {c["secret"] for c in record.planted}.isdisjoint(c["secret"] for c in record.controls)
    assert all(record.secret_is_fact.values()) and len(record.placements) == 4
    text_of = {d["id"]: d["text"] for d in new_docs}
    # every curated fact still points at its own text in the new documents
    moved = [f for f in new_facts if "canary_id" not in f]
    assert len(moved) == len(facts)
    assert all(text_of[f["doc_id"]][f["start"] : f["end"]] == f["text"] for f in new_facts)
    # and the secret of every placement is a fact
    secrets = {c["id"]: c["secret"] for c in record.planted}
    for p in record.placements:
        assert any(f["text"] == secrets[p["canary_id"]] and f["doc_id"] == p["doc_id"] for f in new_facts)
    plain = [{k: v for k, v in f.items() if k != "canary_id"} for f in new_facts]
    assert plain == detector_facts_sorted(new_docs, detector)


def detector_facts_sorted(docs, detector):
    """What curation would have found in the planted texts: the same spans, fact for fact."""
    out = [f for d in docs for f in detector.detect(d)]
    return sorted(out, key=lambda f: (f["doc_id"], f["start"]))


def test_the_canary_record_round_trips_and_refuses_another_shape(tmp_path):
    from dataclasses import asdict

    from cogcore.canaries import CanaryRecord, plant_in_training
    from cogcore.curate.facts import FactDetector
    from cogcore.stage_files import RunFileError

    docs = [{"id": f"d{i}", "text": f"Line {i}\nThe fee is $2{i}.50 per month.", "meta": {}} for i in range(4)]
    _, _, record = plant_in_training(docs, [], FactDetector(), count=1, controls=1, repeats=2, strategy="keep")
    record.write(tmp_path / "canaries.json")
    assert CanaryRecord.read(tmp_path / "canaries.json") == record
    assert record.max_exposure() == pytest.approx(math.log2(10**6))
    assert CanaryRecord.read(tmp_path / "missing.json") is None
    older = {k: v for k, v in asdict(record).items() if k != "strategy"}  # as a version without the field wrote it
    with pytest.raises(RunFileError, match=r"canaries.json: missing fields strategy: .*re-run train.cpt"):
        CanaryRecord.from_json(older, where="run/train/cpt/canaries.json")
    damaged = {**asdict(record), "planted": [{"id": "canary-000"}]}
    with pytest.raises(RunFileError, match="every entry of planted must hold id, template, secret, text"):
        CanaryRecord.from_json(damaged)
