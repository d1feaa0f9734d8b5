"""The loss a model assigns to chosen tokens of sequences: what the Toolformer filter scores calls
by and what canary exposure ranks secrets by.

    sums = token_nll(model, [[1, 2, 3, 4]], [[False, False, True, True]])   # nats over tokens 3 and 4
"""

from __future__ import annotations


def token_nll(model, sequences: list[list[int]], targets: list[list[bool]], batch_size: int = 8) -> list[float]:
    """Summed negative log-likelihood (nats) of the tokens flagged in `targets`, each predicted from
    the tokens before it; batched (longest first, right padding), without gradients. Only the
    positions that predict a flagged token go through the output layer (`logits_to_keep`), which
    matters with a 50k-token vocabulary."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    sums = [0.0] * len(sequences)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            width = max(len(sequences[i]) for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            flags = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, i in enumerate(batch):
                n = len(sequences[i])
                ids[row, :n] = torch.tensor(sequences[i])
                mask[row, :n] = 1
                flags[row, :n] = torch.tensor(targets[i], dtype=torch.bool)
            predicts = torch.zeros_like(flags)
            predicts[:, :-1] = flags[:, 1:]  # position t-1 predicts token t; the first token has no predictor
            logits = _logits_at(model, ids.to(device), mask.to(device), predicts.to(device)).float()
            wanted = ids[:, 1:][flags[:, 1:]].to(device)  # row-major, as the kept logits are
            nll = torch.logsumexp(logits, -1) - logits.gather(1, wanted[:, None])[:, 0]
            rows = predicts.nonzero(as_tuple=True)[0]
            per_row = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, rows, nll.double().cpu())
            for row, i in enumerate(batch):
                sums[i] = float(per_row[row])
    model.train(was_training)
    return sums


def _logits_at(model, ids, mask, keep):
    """Logits of the positions where `keep` is True, shape (kept, vocab), in row-major order."""
    try:
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    except TypeError:  # a model without `logits_to_keep`
        logits = model(input_ids=ids, attention_mask=mask).logits
    return logits if logits.dim() == 2 else logits[keep]
