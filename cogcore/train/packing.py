"""Packing: several documents in one training row, each attending only to itself.

`RowPacker` fills rows of `seq_len` tokens with documents one after another; a document longer
than the room left goes on in the next row, so no token is thrown away. With `separate=True`
each row carries `position_ids` that restart at 0 where a document (or the next piece of a long
one) starts. Given position ids and no attention mask, transformers 5 builds a block-diagonal
causal mask for sdpa and eager attention (`masking_utils.find_packed_sequence_indices`: a new
sequence starts wherever the position does not go up by one), and flash attention runs its varlen
kernel when the batch is a single row (`packed_collator(..., flatten=True)`). The first token of
each document carries no label: the only logit that could predict it is the previous document's
last one. With `separate=False` rows are plain windows over the joined text (the old "wrapped"
packing, where a row's documents see each other).

Measured pitfall: a model called with `use_cache=True` (most configs' default) creates an empty
cache, and with a cache transformers skips the packed-sequence mask without a word; `train()`
turns the cache off while training.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

# The label of a token that carries no loss: what torch's cross entropy (and so every transformers
# causal LM) leaves out. Masked facts, tool results, prompts and padding get it.
IGNORE_INDEX = -100


class RowPacker:
    """Documents in (`add`), full rows out; `finish` returns the last, shorter row."""

    def __init__(self, seq_len: int, separate: bool = True):
        self.seq_len, self.separate = seq_len, separate
        self._ids: list[int] = []
        self._labels: list[int] = []
        self._pos: list[int] = []

    def add(self, ids: list[int], labels: list[int]) -> Iterator[dict]:
        if self.separate and labels:
            labels = [IGNORE_INDEX] + list(labels[1:])  # no logit of this document predicts its first token
        start = 0
        while start < len(ids):
            take = min(self.seq_len - len(self._ids), len(ids) - start)
            self._ids += ids[start : start + take]
            self._labels += labels[start : start + take]
            self._pos += range(take)  # a piece continued from the row before starts at 0 as well
            start += take
            if len(self._ids) == self.seq_len:
                yield self._row()

    def finish(self) -> Iterator[dict]:
        if self._ids:
            yield self._row()

    def _row(self) -> dict:
        row = {"input_ids": self._ids, "labels": self._labels}
        if self.separate:
            row["position_ids"] = self._pos
            row["labels"][0] = IGNORE_INDEX  # a piece continued from the row before: nothing here predicts it either
        self._ids, self._labels, self._pos = [], [], []
        return row


def document_spans(position_ids: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each document in a packed row, read back from its position ids."""
    starts = [i for i, p in enumerate(position_ids) if i == 0 or p != position_ids[i - 1] + 1]
    return list(zip(starts, starts[1:] + [len(position_ids)]))


def packed_collator(pad_id: int, flatten: bool = False):
    """Batch packed rows: {input_ids, labels, position_ids}, and no attention mask (it would turn
    the packed-sequence detection off).

    Rows shorter than the batch's longest are padded with a segment of their own (positions
    0, 1, ...; labels IGNORE_INDEX), which real tokens never attend to. `flatten=True` joins the rows into
    one row (padding-free), the form flash attention's varlen path needs. A row's first label is
    dropped either way: in a flattened batch it would be predicted from the previous row."""

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        if flatten:
            ids = [t for r in rows for t in r["input_ids"]]
            labels = [t for r in rows for t in [IGNORE_INDEX] + list(r["labels"][1:])]
            pos = [p for r in rows for p in r["position_ids"]]
            return {
                "input_ids": torch.tensor([ids]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos]),
            }
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, 1:n] = torch.tensor(r["labels"][1:])
            pos[i, :n] = torch.tensor(r["position_ids"])
            pos[i, n:] = torch.arange(width - n)
        return {"input_ids": ids, "labels": labels, "position_ids": pos}

    return collate
