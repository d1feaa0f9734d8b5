"""Proxy models: small decoders trained from scratch to value data, fast enough to train many.

A proxy is a Llama-shaped decoder (`ProxyShape`: 4 layers of width 128 make ~0.8M non-embedding
parameters) with a small byte-level BPE tokenizer trained on the texts at hand (4,096 tokens: with
the base model's 49k-token vocabulary the output layer alone would cost 6x the rest of the model on
a CPU). It trains with a plain AdamW loop over packed rows, deterministic for a seed; on 2 CPU cores
this shape runs at a few thousand tokens/s. What a proxy is for: the loss it assigns to each
document (perplexity bands, excess loss against a reference proxy, RHO-LOSS), and as the small
model whose held-out loss mixture search and the data-efficiency benchmark compare.

    tok = train_tokenizer(texts, vocab_size=4096)
    model, log = train_proxy(token_rows(tok, texts, seq_len=128), ProxyShape(), steps=300, seed=0)
    losses = document_losses(model, tok, texts, seq_len=128)      # mean nats per token, per document
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from cogcore.token_loss import token_nll

PAD, EOS = "<pad>", "<eos>"


@dataclass(frozen=True)
class ProxyShape:
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    seq_len: int = 128

    def config(self, vocab_size: int):
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            max_position_embeddings=self.seq_len,
            tie_word_embeddings=True,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def train_tokenizer(texts: Sequence[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer trained on `texts` (a transformers fast tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=PAD, eos_token=EOS)


def token_rows(tokenizer, texts: Sequence[str], seq_len: int) -> np.ndarray:
    """The texts' tokens, each document ended by EOS, packed end to end into rows of seq_len + 1
    (inputs and the next-token targets); the tail that does not fill a row is dropped."""
    eos = tokenizer.eos_token_id
    texts = list(texts)
    # split_special_tokens: a document's "<eos>" is text, never the token that ends a document.
    encoded = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"] if texts else []
    stream = [i for ids in encoded for i in (*ids, eos)]
    n = len(stream) // (seq_len + 1)
    return np.asarray(stream[: n * (seq_len + 1)], dtype=np.int64).reshape(n, seq_len + 1)


def build_proxy(shape: ProxyShape, vocab_size: int, seed: int):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(shape.config(vocab_size))


def train_proxy(
    batches: Iterator[np.ndarray] | np.ndarray,
    shape: ProxyShape,
    vocab_size: int,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    warmup: int = 20,
    on_step: Callable[[int, torch.nn.Module], None] | None = None,
    model=None,
):
    """Train a proxy for `steps` optimizer steps on rows of seq_len + 1 tokens: an array of rows
    (shuffled per epoch, seeded) or an iterator of batches (a mixture sampler). Warmup then cosine
    decay. Returns (model, log) where log has the loss per step and tokens/s."""
    model = model or build_proxy(shape, vocab_size, seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    source = _epochs(batches, batch_size, seed) if isinstance(batches, np.ndarray) else batches
    losses, tokens, began = [], 0, time.perf_counter()
    for step in range(steps):
        rows = torch.from_numpy(next(source))
        out = model(input_ids=rows[:, :-1], labels=rows[:, :-1].clone())  # HF shifts labels by one
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        tokens += rows[:, :-1].numel()
        if on_step is not None:
            on_step(step, model)
    seconds = time.perf_counter() - began
    model.eval()
    return model, {"loss": losses, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9)}


def _epochs(rows: np.ndarray, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    if len(rows) == 0:
        raise ValueError("no rows to train the proxy on (the texts are shorter than one row)")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(rows))
        if len(order) < batch_size:  # fewer rows than a batch: every row, every step
            yield rows[order]
            continue
        for b in range(0, len(order) - batch_size + 1, batch_size):
            yield rows[order[b : b + batch_size]]


def rows_loss(model, rows: np.ndarray, batch_size: int = 32) -> float:
    """Mean next-token loss (nats) over packed rows: a held-out loss."""
    if len(rows) == 0:
        return float("nan")
    total, count = 0.0, 0
    with torch.inference_mode():
        for b in range(0, len(rows), batch_size):
            chunk = torch.from_numpy(rows[b : b + batch_size])
            out = model(input_ids=chunk[:, :-1], labels=chunk[:, :-1].clone())
            n = chunk[:, 1:-1].numel()
            total += float(out.loss) * n
            count += n
    return total / count


def document_losses(model, tokenizer, texts: Sequence[str], seq_len: int, batch_size: int = 32) -> np.ndarray:
    """Mean next-token loss (nats per token) of each document's first seq_len tokens; NaN for a
    document of fewer than two tokens (nothing to predict)."""
    ids_of = tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
    encoded = [ids[:seq_len] for ids in ids_of]
    targets = [[False] + [True] * (len(ids) - 1) for ids in encoded]
    usable = [i for i, ids in enumerate(encoded) if len(ids) >= 2]
    sums = token_nll(model, [encoded[i] for i in usable], [targets[i] for i in usable], batch_size)
    out = np.full(len(texts), np.nan)
    for i, total in zip(usable, sums):
        out[i] = total / (len(encoded[i]) - 1)
    return out
