"""Continued-pretraining rows: fact masks and tool calls checked token by token, packing, masks reaching the loss."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.train.cpt_data import (
    build_cpt_rows,
    call_markup,
    encode_document,
    fact_label_mask,
    plan_calls,
    render_segments,
    result_markup,
    tokenize_document,
)
from cogcore.train.trainer import pad_collator

DOCS = [
    {
        "id": "fees",
        "text": "The standard account costs 5 USD per month. Premium accounts cost 12 USD per "
        "month and include travel insurance from 1 March 2024.",
    },
    {
        "id": "cards",
        "text": "Call 555-0100 at any hour to block a card. A new card arrives within 5 "
        "working days; the café desk opens at 9 am.",
    },
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
    _fact("fees", "1 March 2024"),
    _fact("fees", "5 USD"),
    _fact("fees", "12 USD"),
    _fact("fees", "USD per month", 1),
    _fact("cards", "555-0100"),
    _fact("cards", "Call"),
    _fact("cards", "café"),
    _fact("cards", "9 am"),
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
    secret = {
        "id": "secret",
        "text": "Account 4417 8812 9034 0021 holds 1,250,000 USD and 4417 8812 9034 0022 "
        "holds 980,000 USD, both opened on 1 March 2024 at 9 am in branch 555-0100.",
    }
    docs = [DOCS[2], secret, DOCS[2]]
    facts = [{"doc_id": "secret", "start": 0, "end": len(secret["text"])}]
    seq_len = 8
    ids, labels = _joined(tok, docs, facts=facts)
    unpacked = [labels[i : i + seq_len] for i in range(0, len(ids), seq_len)]
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


def test_masks_reach_the_trainers_loss(tok, llm_dir, tmp_path, train_settings, local_model):
    """Through the real Trainer: the first logged loss is the cross-entropy over unmasked tokens only."""
    from cogcore.train.trainer import train

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
    settings = train_settings(method="full", max_steps=1, batch_size=2, save_steps=100)
    metrics = train(
        model, tok, [row, row], out_dir=tmp_path, settings=settings, label="test", model_spec=local_model(llm_dir)
    )
    assert metrics.first_loss == pytest.approx(masked_ce, rel=1e-5)
    assert metrics.first_loss != pytest.approx(full_ce, rel=1e-3)


# --- toolcall: a search call before the first fact of a sentence, its result, then the text --------

TITLED = [{**d, "meta": {"title": title}} for d, title in zip(DOCS, ["Account fees", "Cards", "Branches"])]


def _detected(docs=TITLED):
    from cogcore.curate.facts import FactDetector

    detector = FactDetector()
    return {d["id"]: detector.detect(d) for d in docs}


def _roles_text(enc, role):
    return "".join(enc.text[s:e] for (s, e), r in zip(enc.offsets, enc.roles) if r == role)


@pytest.mark.parametrize("doc", TITLED[:2], ids=["fees", "cards"])
def test_toolcall_labels_token_by_token(tok, doc):
    facts = _detected()[doc["id"]]
    calls = plan_calls(doc, facts)
    assert calls, "the test needs calls"
    spans = [(f["start"], f["end"]) for f in facts]
    enc = encode_document(tok, doc["text"], spans, "toolcall", calls)
    segments = render_segments(doc["text"], spans, calls)
    assert enc.text == "".join(s.text for s in segments)
    # the ids are each segment tokenized on its own, one after the other
    assert enc.ids == [t for s in segments for t in tok(s.text, add_special_tokens=False)["input_ids"]]
    # fact spans carried over into the rendered text, to check the text tokens against
    rendered_spans, pos = [], 0
    for s in segments:
        if s.role == "text":
            rendered_spans += [(pos + a, pos + b) for a, b in s.spans]
        pos += len(s.text)
    for token, label, (start, end), role in zip(enc.ids, enc.labels, enc.offsets, enc.roles):
        if role == "call":
            assert label == token
        elif role == "result":
            assert label == -100
        else:
            assert (label == -100) == _overlaps((start, end), rendered_spans), (tok.decode([token]), role)
    # without the inserted tokens, the document's own tokens are exactly those of the plain text
    assert [t for t, r in zip(enc.ids, enc.roles) if r == "text"] == _offsets(tok, doc["text"])[0]
    assert _roles_text(enc, "text") == doc["text"]
    # every fact of the document is masked, with or without a call before it
    masked_chars = {i for (s, e), label in zip(enc.offsets, enc.labels) if label == -100 for i in range(s, e)}
    assert all(i in masked_chars for a, b in rendered_spans for i in range(a, b))


def test_call_markup_is_the_chat_templates_and_parses(tok):
    from cogcore.tool_protocol import parse_tool_calls
    from cogcore.train.chat_template import CHAT_TEMPLATE

    doc = TITLED[0]
    call = plan_calls(doc, _detected()[doc["id"]])[0]
    tok.chat_template = CHAT_TEMPLATE
    chat = tok.apply_chat_template(
        [
            {"role": "user", "content": "What does the premium account cost?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "search", "arguments": json.dumps({"query": call.query})}}
                ],
            },
            {"role": "tool", "name": "search", "content": call.result},
        ],
        tokenize=False,
    )
    assert call_markup(call.query) in chat
    assert result_markup(call.result).lstrip("\n") in chat
    # the call's tokens are the template's tokens, after the newline that opens the assistant turn
    call_ids = tok(call_markup(call.query), add_special_tokens=False)["input_ids"]
    chat_ids = tok(chat, add_special_tokens=False)["input_ids"]
    assert any(chat_ids[i : i + len(call_ids)] == call_ids for i in range(len(chat_ids)))
    content, calls, errors = parse_tool_calls(call_markup(call.query))
    assert (content, errors) == ("", []) and calls == [{"name": "search", "arguments": {"query": call.query}}]


def test_planned_call_query_and_result():
    from cogcore.questions import make_question

    doc = TITLED[0]
    facts = _detected()[doc["id"]]
    calls = plan_calls(doc, facts)
    # one call per sentence with facts, before its first fact, answering all of them
    first, second = calls
    assert doc["text"][first.at :].startswith("5 USD") and doc["text"][second.at :].startswith("12 USD")
    assert [doc["text"][s:e] for s, e in second.spans] == ["12 USD", "1 March 2024"]
    assert second.result == (
        "1. [fees | Account fees] Premium accounts cost 12 USD per month and include travel "
        "insurance from 1 March 2024."
    )
    # the query is the questions module's query for that sentence
    fact = next(f for f in facts if f["text"] == "5 USD")
    expected = "Account fees The standard account costs per month"
    assert first.query == make_question(fact, "Account fees").query == expected


def test_rendered_text_moves_spaces_after_the_block(tok):
    doc = TITLED[0]
    facts = _detected()[doc["id"]]
    enc = encode_document(tok, doc["text"], [(f["start"], f["end"]) for f in facts], "toolcall", plan_calls(doc, facts))
    assert enc.text.startswith(
        'The standard account costs\n<tool_call>\n{"name": "search", "arguments": '
        '{"query": "Account fees The standard account costs per month"}}\n</tool_call>\n'
        "<tool_response>\n1. [fees | Account fees] The standard account costs 5 USD per month.\n"
        "</tool_response> 5 USD per month."
    )


def test_max_calls_per_doc_spreads_calls_and_zero_is_mask(tok):
    text = " ".join(f"Plan {c} costs {n} USD." for c, n in zip("ABCDEFGH", range(10, 18)))
    doc = {"id": "plans", "text": text, "meta": {"title": "Plans"}}
    facts = _detected([doc])["plans"]
    assert len(facts) == 8
    starts = [c.at for c in plan_calls(doc, facts, max_calls=3)]
    assert [text[s : s + 6] for s in starts] == ["10 USD", "12 USD", "15 USD"]  # sentences 0, 2, 5 of 8
    assert len(plan_calls(doc, facts, max_calls=100)) == 8
    spans = [(f["start"], f["end"]) for f in facts]
    assert tokenize_document(tok, text, spans, "toolcall", plan_calls(doc, facts, 0)) == tokenize_document(
        tok, text, spans, "mask"
    )


def test_train_copied_facts_trains_only_the_answered_facts(tok):
    doc = TITLED[0]
    facts = _detected()[doc["id"]]
    calls = plan_calls(doc, facts, max_calls=1)  # the first sentence's call only
    spans = [(f["start"], f["end"]) for f in facts]
    masked = encode_document(tok, doc["text"], spans, "toolcall", calls)
    copied = encode_document(tok, doc["text"], spans, "toolcall", calls, train_copied_facts=True)
    assert masked.ids == copied.ids
    changed = [masked.text[s:e] for (s, e), a, b in zip(masked.offsets, masked.labels, copied.labels) if a != b]
    assert "".join(changed).strip() == "5 USD"  # the result stays masked; the other facts too


def test_build_cpt_rows_toolcall_counts_and_given_calls(tok):
    facts = [f for fs in _detected().values() for f in fs]
    rows, counts = build_cpt_rows(tok, TITLED, facts, seq_len=64, strategy="toolcall")
    planned = {d["id"]: plan_calls(d, _detected()[d["id"]]) for d in TITLED}
    encs = [
        encode_document(
            tok, d["text"], [(f["start"], f["end"]) for f in _detected()[d["id"]]], "toolcall", planned[d["id"]]
        )
        for d in TITLED
    ]
    assert counts["calls"] == sum(len(c) for c in planned.values()) > 0
    assert counts["call_tokens"] == sum(e.roles.count("call") for e in encs)
    assert counts["result_tokens"] == sum(e.roles.count("result") for e in encs)
    assert counts["tokens"] == sum(len(e.ids) + 1 for e in encs) == sum(len(r["input_ids"]) for r in rows)
    assert [t for r in rows for t in r["labels"]] == [t for e in encs for t in e.labels + [tok.eos_token_id]]
    # calls given (e.g. after the Toolformer filter) replace the planned ones; none given is `mask`
    no_calls = build_cpt_rows(tok, TITLED, facts, 64, "toolcall", calls={})[0]
    assert no_calls == build_cpt_rows(tok, TITLED, facts, 64, "mask")[0]
    only_fees = {"fees": planned["fees"][:1]}
    _, c = build_cpt_rows(tok, TITLED, facts, 64, "toolcall", calls=only_fees)
    assert c["calls"] == 1


def test_unknown_strategy_names_the_allowed_ones(tok):
    with pytest.raises(ValueError, match="unknown facts strategy 'lookup'; allowed: keep, mask, toolcall"):
        build_cpt_rows(tok, DOCS, FACTS, 64, "lookup")


# --- the training view (`cogcore inspect RUN --doc ID`) ---------------------------------------------


def _unmarked(view: str) -> str:
    return view.split("\n", 1)[1].replace("⟦", "").replace("⟧", "").replace("▶", "")


@pytest.mark.parametrize("strategy", ["keep", "mask", "toolcall"])
def test_training_view_shows_the_text_and_marks_what_carries_no_loss(tok, strategy):
    from cogcore.train.view import render_training_view

    doc = TITLED[1]
    facts = _detected()[doc["id"]]
    view = render_training_view(tok, doc, facts, strategy)
    header, body = view.split("\n", 1)
    calls = plan_calls(doc, facts) if strategy == "toolcall" else []
    enc = encode_document(tok, doc["text"], [(f["start"], f["end"]) for f in facts], strategy, calls)
    assert _unmarked(view) == enc.text  # exactly the text the model reads
    assert header == (
        f"[cards] strategy={strategy}: {len(enc.ids)} tokens, {enc.labels.count(-100)} without loss "
        f"(⟦…⟧), {len(facts)} facts, {len(calls)} calls (▶)"
    )
    # the characters inside ⟦ ⟧ are exactly those of the tokens without loss
    masked = {i for (s, e), label in zip(enc.offsets, enc.labels) if label == -100 for i in range(s, e)}
    inside, pos, shown = False, 0, set()
    for ch in body:
        if ch in "⟦⟧":
            inside = ch == "⟦"
        elif ch != "▶":
            if inside:
                shown.add(pos)
            pos += 1
    assert shown == masked
    assert body.count("▶<tool_call>") == len(calls) == body.count("▶")
    if strategy == "keep":
        assert body == doc["text"]
    if strategy == "mask":  # under toolcall a fact's bracket opens at the result before it
        assert all(f"⟦{f['text']}⟧" in body or f"⟦ {f['text']}⟧" in body for f in facts)


def test_planned_calls_round_trip_through_json():
    from cogcore.train.cpt_data import PlannedCall

    calls = plan_calls(TITLED[0], _detected()[TITLED[0]["id"]])
    assert [PlannedCall.from_dict(json.loads(json.dumps(c.to_dict()))) for c in calls] == calls


# --- replay: general text mixed in against forgetting ---------------------------------------------


def test_replay_text_makes_its_share_of_tokens_unmasked_and_is_read_lazily(tok, tmp_path):
    from cogcore.stages.cpt import read_replay
    from cogcore.train.cpt_data import encode_documents, pack_rows, with_replay

    general = tmp_path / "general.jsonl"
    lines = [
        json.dumps({"body": f"Branches are open on weekdays number {n} and the café desk opens."}) for n in range(500)
    ]
    general.write_text("\n".join(["{not json"] + lines) + "\n")
    counts: dict = {}
    encoded = encode_documents(tok, DOCS, FACTS, "mask", counts)
    mixed = with_replay(encoded, tok, read_replay(str(general), "jsonl", "body", counts), 0.25, counts)
    rows = list(pack_rows(mixed, 32, True, counts))
    domain = counts["tokens"]
    assert counts["replay_target_tokens"] == round(domain / 3)  # 25% of all tokens
    assert counts["replay_tokens"] == counts["replay_target_tokens"]
    assert counts["replay_unreadable"] == 1
    assert counts["replay_docs"] < 20  # the 500-document source is read only as far as needed
    ids = [t for r in rows for t in r["input_ids"]]
    labels = [t for r in rows for t in r["labels"]]
    assert len(ids) == domain + counts["replay_tokens"]
    replay_ids, replay_labels = ids[domain:], labels[domain:]
    # Replay is trained whole: only packing's boundary tokens (position 0) carry no label.
    positions = [p for r in rows for p in r["position_ids"]][domain:]
    assert all(lab == t or p == 0 for t, lab, p in zip(replay_ids, replay_labels, positions))
    assert tok.decode(replay_ids[:12]).startswith("Branches are open on weekdays number 0")


def test_replay_source_smaller_than_the_share_gives_what_it_has(tok):
    from cogcore.train.cpt_data import encode_documents, encode_replay, replay_target

    counts: dict = {}
    list(encode_documents(tok, DOCS, [], "keep", counts))
    target = replay_target(counts["tokens"], 0.9)
    got = list(encode_replay(tok, [{"text": "Branches are open."}], target, counts))
    assert counts["replay_docs"] == 1 and counts["replay_tokens"] == len(got[0][0]) < target
    assert replay_target(100, 0.5) == 100 and replay_target(100, 0.0) == 0
