"""Rho-1's token-level selection (Lin et al. 2024, "Not All Tokens Are What You Need"): train only on
the tokens a reference model finds easier than the model being trained, the ones that are
learnable and worth learning, and none of the others.

The reference model is the base model briefly fine-tuned on the target text (select.target), so it
shares the base's tokenizer. Each trainable token's excess loss is loss under the base model minus
loss under the reference; the top `keep` share of the trainable tokens (one threshold over the
whole training set) keep their labels, the rest get IGNORE_INDEX. Rho-1 re-scores with the current
model as training goes; scoring once, with the base model, before training is the static variant
(a CPU cannot afford a second forward pass per step). Facts that the strategy masked stay masked.

    labels, record = select_tokens(base, reference, rows, keep=0.6)
"""

from __future__ import annotations

import numpy as np
import torch

from cogcore.train.packing import IGNORE_INDEX


def token_losses(model, rows) -> list[np.ndarray]:
    """Per row, the loss of each token given the tokens before it in its own document (position ids
    restart per packed document); NaN where nothing predicts it (a document's first token). One row
    at a time: packed rows differ in length and in where their documents start."""
    device = next(model.parameters()).device
    out = []
    model.eval()
    with torch.inference_mode():
        for i in range(len(rows)):
            row = rows[i]
            ids = torch.tensor([row["input_ids"]], device=device)
            packed = row.get("position_ids") is not None
            kwargs = {"position_ids": torch.tensor([row["position_ids"]], device=device)} if packed else {}
            logits = model(input_ids=ids, **kwargs).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none").cpu().numpy()
            losses = np.concatenate([[np.nan], nll])
            if packed:
                losses[np.asarray(row["position_ids"]) == 0] = np.nan
            out.append(losses)
    return out


def select_tokens(base, reference, rows, keep: float) -> tuple[list[list[int]], dict]:
    """New labels for every row: trainable tokens outside the top `keep` share of excess loss masked."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be a share in (0, 1], got {keep}")
    base_losses, ref_losses = token_losses(base, rows), token_losses(reference, rows)
    trainable = [np.asarray(rows[i]["labels"]) != IGNORE_INDEX for i in range(len(rows))]
    excess = [b - r for b, r in zip(base_losses, ref_losses)]
    pool = np.concatenate([e[t & ~np.isnan(e)] for e, t in zip(excess, trainable)]) if rows else np.zeros(0)
    threshold = float(np.quantile(pool, 1 - keep)) if len(pool) else float("inf")
    labels, kept = [], 0
    for i, (e, t) in enumerate(zip(excess, trainable)):
        chosen = t & ~np.isnan(e) & (e >= threshold)
        kept += int(chosen.sum())
        labels.append(np.where(chosen, np.asarray(rows[i]["labels"]), IGNORE_INDEX).tolist())
    record = {
        "keep": keep,
        "trainable_tokens": int(sum(t.sum() for t in trainable)),
        "kept_tokens": kept,
        "threshold": threshold,
        "mean_excess_kept": float(np.mean(pool[pool >= threshold])) if len(pool) else None,
    }
    return labels, record
