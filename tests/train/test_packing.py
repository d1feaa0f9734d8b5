"""Packing keeps documents apart: a document's logits inside a packed row are its logits alone, the
same rows without position ids (or with the model's cache on) are not, and the Trainer's loss on a
packed row is the loss of its documents trained one by one."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.train.cpt_data import build_cpt_rows
from cogcore.train.packing import RowPacker, document_spans, packed_collator

DOCS = [
    {"id": "a", "text": "The standard account costs 5 USD per month and renews every January."},
    {"id": "b", "text": "Premium cards include travel insurance."},
    {"id": "c", "text": "Branches open on weekdays at 9 am and on Saturday mornings until noon."},
]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm([d["text"] for d in DOCS] * 3)


@pytest.fixture(scope="module")
def tok(llm_dir):
    return AutoTokenizer.from_pretrained(llm_dir)


def _model(llm_dir, attn="sdpa"):
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32, attn_implementation=attn)
    model.config.use_cache = False  # what train() does: with a cache the packed mask is skipped
    return model.eval()


def _alone(model, tok, text) -> torch.Tensor:
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_packer_restarts_positions_and_unlabels_each_first_token():
    packer = RowPacker(seq_len=8)
    docs = [([1, 2, 3], [1, 2, 3]), ([4, 5, 6, 7, 8, 9, 10], [4, -100, 6, 7, 8, 9, 10]), ([11, 12], [11, 12])]
    rows = [r for ids, labels in docs for r in packer.add(ids, labels)] + list(packer.finish())
    assert [r["input_ids"] for r in rows] == [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12]]
    # The long document goes on in the next row, its piece there starting at position 0.
    assert [r["position_ids"] for r in rows] == [[0, 1, 2, 0, 1, 2, 3, 4], [0, 1, 0, 1]]
    assert [r["labels"] for r in rows] == [[-100, 2, 3, -100, -100, 6, 7, 8], [-100, 10, -100, 12]]
    assert document_spans(rows[0]["position_ids"]) == [(0, 3), (3, 8)]
    # Unseparated ("wrapped") rows are plain windows: no positions, labels untouched.
    plain = RowPacker(seq_len=8, separate=False)
    rows = [r for ids, labels in docs for r in plain.add(ids, labels)] + list(plain.finish())
    assert "position_ids" not in rows[0] and rows[0]["labels"][:4] == [1, 2, 3, 4]


def test_build_cpt_rows_packing_keeps_every_token(tok):
    wrapped, counts = build_cpt_rows(tok, DOCS, [], seq_len=20, strategy="keep")
    packed, packed_counts = build_cpt_rows(tok, DOCS, [], seq_len=20, strategy="keep", packing=True)
    assert [t for r in packed for t in r["input_ids"]] == [t for r in wrapped for t in r["input_ids"]]
    assert packed_counts["tokens"] == counts["tokens"] and packed_counts["rows"] == len(packed)
    starts = [i for r in packed for i, p in enumerate(r["position_ids"]) if p == 0]
    assert len(starts) >= len(DOCS) + len(packed) - 1  # every document start, and every row start
    for r in packed:
        assert all(r["labels"][i] == -100 for i, p in enumerate(r["position_ids"]) if p == 0)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_a_document_in_a_packed_row_sees_only_itself(llm_dir, tok, attn):
    model = _model(llm_dir, attn)
    rows, _ = build_cpt_rows(tok, DOCS, [], seq_len=1000, strategy="keep", packing=True)
    (row,) = rows
    spans = document_spans(row["position_ids"])
    assert len(spans) == len(DOCS)
    batch = packed_collator(tok.pad_token_id)([row])
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        no_positions = model(batch["input_ids"]).logits[0]
    for doc, (start, end) in zip(DOCS, spans):
        alone = _alone(model, tok, doc["text"])
        torch.testing.assert_close(packed[start:end], alone, atol=1e-5, rtol=0)
    # The test can fail: without position ids the later documents attend to the earlier ones.
    b_start, b_end = spans[1]
    assert (no_positions[b_start:b_end] - _alone(model, tok, DOCS[1]["text"])).abs().max() > 1e-3


def test_the_models_cache_would_undo_packing(llm_dir, tok):
    """Measured pitfall: with use_cache on, transformers skips the packed-sequence mask silently."""
    model = _model(llm_dir)
    model.config.use_cache = True
    rows, _ = build_cpt_rows(tok, DOCS[:2], [], seq_len=1000, strategy="keep", packing=True)
    batch = packed_collator(tok.pad_token_id)(rows)
    start, end = document_spans(rows[0]["position_ids"])[1]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
    assert (logits[start:end] - _alone(model, tok, DOCS[1]["text"])).abs().max() > 1e-3


def test_padding_and_flattening_keep_documents_apart(llm_dir, tok):
    model = _model(llm_dir)
    seq_len = 14
    rows, _ = build_cpt_rows(tok, DOCS, [], seq_len=seq_len, strategy="keep", packing=True)
    assert len(rows) >= 2 and len(rows[-1]["input_ids"]) < seq_len  # a short last row: padded in a batch
    chosen = [rows[-1], rows[0]]
    batch = packed_collator(tok.pad_token_id)(chosen)
    flat = packed_collator(tok.pad_token_id, flatten=True)(chosen)
    n = len(chosen[0]["input_ids"])
    assert batch["labels"][0, n:].eq(-100).all() and batch["position_ids"][0, n:].tolist() == list(range(seq_len - n))
    assert flat["input_ids"].shape == (1, n + seq_len) and flat["labels"][0, [0, n]].tolist() == [-100, -100]
    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        flattened = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"]).logits[0]
        one_by_one = [
            model(input_ids=torch.tensor([r["input_ids"]]), position_ids=torch.tensor([r["position_ids"]])).logits[0]
            for r in chosen
        ]
    torch.testing.assert_close(padded[0, :n], one_by_one[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(padded[1], one_by_one[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(flattened, torch.cat(one_by_one), atol=1e-5, rtol=0)


def test_trainers_loss_on_a_packed_row_is_the_documents_loss(llm_dir, tok, tmp_path, train_settings, local_model):
    """Through the real Trainer: the first logged loss of a packed row is the cross-entropy of its
    documents each computed alone (their first tokens excluded, as nothing in them predicts it)."""
    from cogcore.train.trainer import train

    rows, _ = build_cpt_rows(tok, DOCS, [], seq_len=1000, strategy="keep", packing=True)
    (row,) = rows
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    with torch.no_grad():  # sharper attention than a fresh init's, so that context changes the loss visibly
        for name, p in model.named_parameters():
            if "proj" in name:
                p.mul_(4)
    total, targets = 0.0, 0
    with torch.no_grad():
        for doc in DOCS:
            ids = torch.tensor([tok(doc["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]])
            logits = model(ids).logits[0, :-1]
            total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            targets += ids.shape[1] - 1
        joined = model(torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss.item()
    separate = total / targets
    assert joined != pytest.approx(separate, rel=1e-3)  # attending across documents would change it
    settings = train_settings(method="full", max_steps=1, batch_size=2, save_steps=100)
    metrics = train(
        model, tok, [row, row], out_dir=tmp_path, settings=settings, label="test", model_spec=local_model(llm_dir)
    )
    assert metrics.packed is True
    assert metrics.first_loss == pytest.approx(separate, rel=1e-5)
