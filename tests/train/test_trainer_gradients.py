"""Masked tokens change nothing in the gradient. In a packed row the last token of a document is a
target (of the token before it) and an input that, with packing, no later token may read; with its
label -100, changing that token's id must leave every parameter's gradient as it was. Unmasked, or
without position ids (the next document then reads it), the same change does change the gradient."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.train.packing import RowPacker, packed_collator

TEXTS = ["Savings accounts pay 2 percent a year, paid monthly.", "Cards are blocked by phone at any hour."]


@pytest.fixture(scope="module")
def llm_dir(make_tiny_llm):
    return make_tiny_llm(TEXTS * 2)


@pytest.fixture(scope="module")
def setup(llm_dir):
    tok = AutoTokenizer.from_pretrained(llm_dir)
    model = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    model.config.use_cache = False  # as train() sets it
    docs = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    return tok, model, docs


def _grads(model, tok, docs, last_a: int, mask_last_a: bool, positions: bool = True) -> list[torch.Tensor]:
    """Gradients for the packed row [doc A, doc B]; A's last token is `last_a`, its label -100 or itself."""
    a, b = docs[0][:-1] + [last_a], docs[1]
    packer = RowPacker(seq_len=len(a) + len(b))
    (row,) = [*packer.add(a, [*a[:-1], -100 if mask_last_a else last_a]), *packer.add(b, b)]
    batch = packed_collator(tok.pad_token_id)([row])
    if not positions:
        del batch["position_ids"]
    model.zero_grad()
    model(**batch).loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def _same(g1, g2) -> bool:
    return all(torch.allclose(x, y, rtol=0, atol=1e-7) for x, y in zip(g1, g2))


def test_a_masked_tokens_id_changes_nothing_in_the_gradient(setup):
    tok, model, docs = setup
    original, other = docs[0][-1], (docs[0][-1] + 17) % len(tok)
    assert original != other
    masked = _grads(model, tok, docs, original, mask_last_a=True)
    assert _same(masked, _grads(model, tok, docs, other, mask_last_a=True))
    # Unmasked, the changed target changes the gradient ...
    assert not _same(
        _grads(model, tok, docs, original, mask_last_a=False), _grads(model, tok, docs, other, mask_last_a=False)
    )
    # ... and masked but without position ids, document B reads the changed token: the test can fail.
    assert not _same(
        _grads(model, tok, docs, original, mask_last_a=True, positions=False),
        _grads(model, tok, docs, other, mask_last_a=True, positions=False),
    )


def test_labels_at_masked_positions_never_reach_the_loss(setup):
    """What the Trainer feeds the model: a masked position contributes to neither the loss nor its mean."""
    tok, model, docs = setup
    packer = RowPacker(seq_len=64)
    a, b = docs
    labels_a = [t if i % 3 else -100 for i, t in enumerate(a)]
    (row,) = [*packer.add(a, labels_a), *packer.add(b, b), *packer.finish()]
    batch = packed_collator(tok.pad_token_id)([row])
    loss = model(**batch).loss
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0, :-1]
    target = batch["labels"][0, 1:]
    keep = target != -100
    assert 0 < keep.sum() < len(target)
    torch.testing.assert_close(loss.detach(), torch.nn.functional.cross_entropy(logits[keep], target[keep]))
