"""Leave-one-group-out ablations on a proxy: what each source (or cluster) contributes to the held-out
target loss, the audit a data team needs before it trusts a mixture or a filter.

A proxy trains on every group, then once without each group, with the same steps, seed and shape;
a group's contribution is the target loss without it minus the loss with everything: positive, the
group helps the target; negative, training is better off without it (at this budget). Everything is
trained twice, on two seeds: the gap is the noise a contribution must clear.

    rows = ablate({"bank": [...], "docs": [...]}, target_texts, proxy_settings, folder, seed=0)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from cogcore.valuation.proxy import rows_loss, token_rows, train_proxy
from cogcore.valuation.scoring import ProxySettings, proxy_tokenizer

NOISE_ROW = "(all, next seed)"  # its "contribution" is the proxies' seed noise


def ablate(
    groups: dict[str, list[str]],
    target: Sequence[str],
    proxy: ProxySettings,
    folder: Path,
    seed: int,
    always: Collection[str] = (),
) -> list[dict]:
    """One row per group (and one for all of them): documents, target loss, contribution. Groups in
    `always` are never left out; with them, one more row leaves every other group out at once
    ("(only A)": e.g. the curated documents without anything a filter dropped)."""
    if len(groups) < 2:
        raise ValueError(f"an ablation needs at least two groups; found {len(groups)} ({', '.join(groups) or 'none'})")
    texts = [t for ts in groups.values() for t in ts]
    tok = proxy_tokenizer(texts, target, proxy, folder)
    held = token_rows(tok, list(target), proxy.shape.seq_len)
    if not len(held):
        raise ValueError("the target is shorter than one proxy row: nothing to measure the loss on")

    def loss_without(left_out: Collection[str], run_seed: int) -> float:
        kept = [t for g, ts in groups.items() if g not in left_out for t in ts]
        rows = token_rows(tok, kept, proxy.shape.seq_len)
        model, _ = train_proxy(rows, proxy.shape, len(tok), proxy.steps, proxy.batch_size, lr=proxy.lr, seed=run_seed)
        return rows_loss(model, held)

    # (name, groups left out, documents, seed): everything twice, the second time on another seed,
    # so that the table shows how far a contribution must be from zero to mean anything
    runs = [("(all)", (), len(texts), seed), (NOISE_ROW, (), len(texts), seed + 1)]
    runs += [(g, (g,), len(ts), seed) for g, ts in sorted(groups.items()) if g not in always]
    if always:
        others = tuple(g for g in groups if g not in always)
        runs.append(("(only " + ", ".join(always) + ")", others, sum(len(groups.get(g, ())) for g in always), seed))
    out, everything = [], 0.0
    for name, left_out, documents, run_seed in tqdm(runs, desc="ablate: proxies", unit="proxy", dynamic_ncols=True):
        loss = loss_without(left_out, run_seed)
        everything = loss if name == "(all)" else everything
        out.append({"group": name, "documents": documents, "target_loss": loss, "contribution": loss - everything})
    return out
