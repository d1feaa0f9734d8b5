"""A proxy trains from scratch (loss falls), is deterministic for a seed, and its per-document loss is
lower on text like what it learned than on shuffled junk."""

from __future__ import annotations

import random

import numpy as np
import torch

from cogcore.valuation.proxy import ProxyShape, document_losses, rows_loss, token_rows, train_proxy, train_tokenizer

TEMPLATES = [
    "A wire transfer costs {n} USD and arrives within {d} business days.",
    "The overdraft fee is {n} USD per day, for at most {d} days.",
]
TINY = ProxyShape(hidden=32, layers=2, heads=2, intermediate=64, seq_len=32)


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(TEMPLATES).format(n=rng.randint(1, 99), d=rng.randint(1, 30)) for _ in range(n)]


def test_a_proxy_learns_and_values_learned_text_above_junk():
    torch.set_num_threads(1)
    texts = _texts(300, seed=0)
    tok = train_tokenizer(texts, vocab_size=300)
    rows = token_rows(tok, texts, TINY.seq_len)
    model, log = train_proxy(rows, TINY, len(tok), steps=60, batch_size=8, lr=1e-2, seed=0)
    assert np.mean(log["loss"][-10:]) < 0.6 * np.mean(log["loss"][:5])
    again, log2 = train_proxy(rows, TINY, len(tok), steps=60, batch_size=8, lr=1e-2, seed=0)
    assert log2["loss"] == log["loss"]  # deterministic for a seed
    held = _texts(20, seed=1)
    junk = [" ".join(random.Random(i).sample(t.split(), len(t.split()))) for i, t in enumerate(held)]
    clean, shuffled = document_losses(model, tok, held, TINY.seq_len), document_losses(model, tok, junk, TINY.seq_len)
    assert np.nanmean(clean) < np.nanmean(shuffled) - 0.5
    assert rows_loss(model, token_rows(tok, held, TINY.seq_len)) < log["loss"][0]
    assert np.isnan(document_losses(model, tok, ["a"], TINY.seq_len)[0])  # one token: nothing to predict


def test_special_token_text_in_a_document_is_text_to_the_proxy():
    texts = _texts(50, seed=2)
    tok = train_tokenizer(texts, vocab_size=300)
    stream = token_rows(tok, ["plain <eos> text <pad> here"] * 3, seq_len=4).ravel().tolist()
    # one end-of-document token per document at most (the separator), none from the text itself
    assert stream.count(tok.eos_token_id) <= 3 and tok.pad_token_id not in stream
