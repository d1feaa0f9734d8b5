"""Continued-pretraining rows: fact masks checked token by token, packing, and masks reaching the loss."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.train.cpt_data import build_cpt_rows, fact_label_mask, tokenize_document
from cogcore.train.trainer import pad_collator

DOCS = [
    {"id": "fees", "text": "The standard account costs 5 USD per month. Premium accounts cost 12 USD per "
                           "month and include travel insurance from 1 March 2024."},
    {"id": "cards", "text": "Call 555-0100 at any hour to block a card. A new card arrives within 5 "
                            "working days; the café desk opens at 9 am."},
    {"id": "plain", "text": "Branches are open on weekdays and on Saturday mornings."},
]


def _span(doc_id: str, value: str, nth: int = 0) -> tuple[int, int]:
    text = next(d["text"] for d in DOCS if d["id"] == doc_id)
    start = -1
    for _ in range(nth + 1):
        start = text.index(value, start + 1)
    return start, start + len(value)


def _fact(doc_id: str, value: str, nth: int = 0) -> dict:
    start, end = _span(doc_id, value, nth)
    return {"doc_id": doc_id, "start": start, "end": end}


# Listed out of order and with an overlap: the masker must sort, and may not assume disjoint spans.
FACTS = [
    _fact("fees", "1 March 2024"), _fact("fees", "5 USD"), _fact("fees", "12 USD"), _fact("fees", "USD per month", 1),
    _fact("cards", "555-0100"), _fact("cards", "Call"), _fact("cards", "café"), _fact("cards", "9 am"),
]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm([d["text"] for d in DOCS] * 2)


@pytest.fixture(scope="module")
def tok(llm_dir):
    return AutoTokenizer.from_pretrained(llm_dir)


def _offsets(tok, text):
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _overlaps(offset, spans) -> bool:
    start, end = offset
    return any(s < end and start < e for s, e in spans)


@pytest.mark.parametrize("doc", DOCS, ids=[d["id"] for d in DOCS])
def test_mask_covers_exactly_the_tokens_overlapping_facts(tok, doc):
    spans = [(f["start"], f["end"]) for f in FACTS if f["doc_id"] == doc["id"]]
    ids, labels = tokenize_document(tok, doc["text"], spans, "mask")
    ref_ids, offsets = _offsets(tok, doc["text"])
    assert ids == ref_ids and len(labels) == len(ids)
    for token, label, offset in zip(ids, labels, offsets):
        if _overlaps(offset, spans):
            assert label == -100, (tok.decode([token]), offset)
        else:
            assert label == token, (tok.decode([token]), offset)
    masked_chars = "".join(doc["text"][s:e] for (s, e), label in zip(offsets, labels) if label == -100)
    for s, e in spans:  # every character of every fact is inside a masked token
        assert all(any(a <= i < b for (a, b), label in zip(offsets, labels) if label == -100) for i in range(s, e))
    if spans:
        assert 0 < len(masked_chars) < len(doc["text"])
    else:
        assert labels == ids


def test_fact_label_mask_edge_cases():
    offsets = [(0, 3), (3, 4), (4, 8), (8, 8), (8, 12), (12, 20)]
    assert fact_label_mask(offsets, []) == [False] * 6
    assert fact_label_mask(offsets, [(0, 1)]) == [True, False, False, False, False, False]
    # A span ending exactly where a token starts does not touch it; the zero-width token is never masked.
    assert fact_label_mask(offsets, [(3, 8)]) == [False, True, True, False, False, False]
    # A span inside one token masks that token only; a nested span changes nothing.
    assert fact_label_mask(offsets, [(5, 6), (5, 6)]) == [False, False, True, False, False, False]
    assert fact_label_mask(offsets, [(0, 20), (2, 3)]) == [True, True, True, False, True, True]
    assert fact_label_mask(offsets, [(2, 3), (9, 13)]) == [True, False, False, False, True, True]


def test_keep_trains_every_token(tok):
    rows, counts = build_cpt_rows(tok, DOCS, FACTS, seq_len=1000, strategy="keep")
    assert counts["masked_tokens"] == 0 and counts["strategy"] == "keep"
    assert len(rows) == 1 and rows[0]["labels"] == rows[0]["input_ids"]


def _joined(tok, docs, strategy="mask", facts=FACTS):
    ids, labels = [], []
    for d in docs:
        spans = [(f["start"], f["end"]) for f in facts if f["doc_id"] == d["id"]]
        i, lab = tokenize_document(tok, d["text"], spans, strategy)
        ids += i + [tok.eos_token_id]
        labels += lab + [tok.eos_token_id]
    return ids, labels


@pytest.mark.parametrize("seq_len", [16, 37, 64])
def test_packing_keeps_every_token_in_rows_of_seq_len(tok, seq_len):
    doc_tokens = sum(len(_offsets(tok, d["text"])[0]) for d in DOCS)
    ids, labels = _joined(tok, DOCS)
    assert len(ids) % seq_len > 1  # no 1-token tail to drop in these cases
    rows, counts = build_cpt_rows(tok, DOCS, FACTS, seq_len=seq_len, strategy="mask")
    assert sum(len(r["input_ids"]) for r in rows) == doc_tokens + len(DOCS) == counts["tokens"]
    assert all(len(r["input_ids"]) == seq_len for r in rows[:-1]) and 0 < len(rows[-1]["input_ids"]) <= seq_len
    assert [t for r in rows for t in r["input_ids"]] == ids
    assert [t for r in rows for t in r["labels"]] == labels
    assert counts["masked_tokens"] == labels.count(-100) > 0
    assert counts["docs"] == len(DOCS) and counts["rows"] == len(rows)
    # One EOS closes each document, trained (the model must learn where documents end).
    assert ids.count(tok.eos_token_id) == len(DOCS)


def test_rows_with_nothing_to_predict_are_dropped(tok):
    # A long document that is one fact from end to end: its rows have no trainable label.
    secret = {"id": "secret", "text": "Account 4417 8812 9034 0021 holds 1,250,000 USD and 4417 8812 9034 0022 "
                                      "holds 980,000 USD, both opened on 1 March 2024 at 9 am in branch 555-0100."}
    docs = [DOCS[2], secret, DOCS[2]]
    facts = [{"doc_id": "secret", "start": 0, "end": len(secret["text"])}]
    seq_len = 8
    ids, labels = _joined(tok, docs, facts=facts)
    unpacked = [labels[i:i + seq_len] for i in range(0, len(ids), seq_len)]
    empty = [n for n, row in enumerate(unpacked) if all(t == -100 for t in row[1:])]
    assert len(empty) >= 2  # the test exercises the drop
    rows, counts = build_cpt_rows(tok, docs, facts, seq_len=seq_len, strategy="mask")
    assert len(rows) == len(unpacked) - len(empty) == counts["rows"]
    kept = [row for n, row in enumerate(unpacked) if n not in empty]
    assert [r["labels"] for r in rows] == kept
    assert all(any(t != -100 for t in r["labels"][1:]) for r in rows)


def test_one_token_tail_is_dropped(tok):
    ids, _ = _joined(tok, DOCS)
    rows, _ = build_cpt_rows(tok, DOCS, FACTS, seq_len=len(ids) - 1, strategy="mask")
    # Its only label sits at position 0, which no logit predicts: the loss would be NaN.
    assert len(rows) == 1 and rows[0]["input_ids"] == ids[:-1]


def test_masks_reach_the_loss(tok, llm_dir):
    """The model reads the facts but gets no gradient towards producing them."""
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    rows, _ = build_cpt_rows(tok, DOCS[:2], FACTS, seq_len=48, strategy="mask")
    batch = pad_collator(tok.pad_token_id)(rows[:3])  # what the Trainer feeds the model, padding included
    labels = batch["labels"]
    assert (labels == -100).any() and (labels != -100).any()

    def loss_and_grads(labels):
        model.zero_grad()
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        out.logits.retain_grad()
        out.loss.backward()
        return out, out.logits.grad.clone(), [p.grad.clone() for p in model.parameters()]

    out, logit_grad, grads = loss_and_grads(labels)
    # (a) the loss is the mean cross-entropy over the unmasked (shifted) positions only
    logits, target = out.logits[:, :-1].detach(), labels[:, 1:]
    keep = target != -100
    by_hand = torch.nn.functional.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(out.loss.detach(), by_hand)
    # (b) no gradient reaches a logit that would predict a masked (fact or padding) token ...
    predicts_masked = torch.zeros_like(labels, dtype=torch.bool)
    predicts_masked[:, :-1] = labels[:, 1:] == -100
    assert logit_grad[predicts_masked].abs().max() == 0
    assert (logit_grad[:, :-1][keep].abs().sum(-1) > 0).all()
    # ... while with the facts unmasked the same batch gives a different gradient.
    unmasked = torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100)
    assert (unmasked != labels).any()
    _, logit_grad_full, grads_full = loss_and_grads(unmasked)
    assert logit_grad_full[predicts_masked & batch["attention_mask"].bool()].abs().max() > 0
    assert any(not torch.allclose(a, b) for a, b in zip(grads, grads_full))


def test_masks_reach_the_trainers_loss(tok, llm_dir, tmp_path):
    """Through the real Trainer: the first logged loss is the cross-entropy over unmasked tokens only."""
    from cogcore.train.trainer import TrainSettings, train

    rows, _ = build_cpt_rows(tok, DOCS[:1], FACTS, seq_len=1000, strategy="mask")
    (row,) = rows
    assert row["labels"].count(-100) > 3
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    target = labels[0, 1:]
    masked_ce = torch.nn.functional.cross_entropy(logits[target != -100], target[target != -100]).item()
    full_ce = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    # Identical rows, so the first batch is known whatever the shuffle; the step-1 loss precedes any update.
    settings = TrainSettings(method="full", max_steps=1, batch_size=2, save_steps=100)
    metrics = train(model, tok, [row, row], tmp_path, settings, label="test")
    assert metrics["first_loss"] == pytest.approx(masked_ce, rel=1e-5)
    assert metrics["first_loss"] != pytest.approx(full_ce, rel=1e-3)
