"""Leave-one-group-out ablations on a proxy: what each source (or cluster) contributes to the held-out
target loss, the audit a data team needs before it trusts a mixture.

A proxy trains on every group, then once without each group, with the same steps, seed and shape;
a group's contribution is the target loss without it minus the loss with everything: positive, the
group helps the target; negative, training is better off without it (at this budget).

    rows = ablate({"bank": [...], "docs": [...]}, target_texts, proxy_settings, folder, seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cogcore.valuation.proxy import rows_loss, token_rows, train_proxy
from cogcore.valuation.scoring import ProxySettings, proxy_tokenizer


def ablate(
    groups: dict[str, list[str]], target: Sequence[str], proxy: ProxySettings, folder: Path, seed: int
) -> list[dict]:
    """One row per group (and one for all of them): documents, target loss, contribution."""
    if len(groups) < 2:
        raise ValueError(f"an ablation needs at least two groups; found {len(groups)} ({', '.join(groups) or 'none'})")
    texts = [t for ts in groups.values() for t in ts]
    tok = proxy_tokenizer(texts, target, proxy, folder)
    held = token_rows(tok, list(target), proxy.shape.seq_len)
    if not len(held):
        raise ValueError("the target is shorter than one proxy row: nothing to measure the loss on")

    def loss_without(left_out: str | None) -> float:
        kept = [t for g, ts in groups.items() if g != left_out for t in ts]
        rows = token_rows(tok, kept, proxy.shape.seq_len)
        model, _ = train_proxy(rows, proxy.shape, len(tok), proxy.steps, proxy.batch_size, lr=proxy.lr, seed=seed)
        return rows_loss(model, held)

    everything = loss_without(None)
    out = [{"group": "(all)", "documents": len(texts), "target_loss": everything, "contribution": 0.0}]
    for group, docs in sorted(groups.items()):
        loss = loss_without(group)
        out.append({"group": group, "documents": len(docs), "target_loss": loss, "contribution": loss - everything})
    return out
