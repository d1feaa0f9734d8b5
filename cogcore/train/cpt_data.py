"""Continued-pretraining rows: curated documents tokenized, fact tokens masked, packed.

With `strategy="mask"`, every token whose characters overlap a fact span gets label -100: the
model reads the fact (it is context for what follows) but is never trained to produce it, so the
fact is not pushed into the weights (the idea of LMLM and Goldfish loss). With `keep` the text is
trained as is (the baseline).

Documents are joined with EOS and cut into rows of `seq_len` tokens ("wrapped" packing: no token
is thrown away). Rows may span two documents; the EOS between them marks the boundary.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable


def fact_label_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """True for each token whose character range overlaps any span (spans sorted by start)."""
    mask, j = [], 0
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        k, hit = j, False
        while k < len(spans) and spans[k][0] < end:
            if spans[k][1] > start and end > start:
                hit = True
                break
            k += 1
        mask.append(hit)
    return mask


def tokenize_document(tokenizer, text: str, spans: list[tuple[int, int]], strategy: str) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if strategy == "keep" or not spans:
        return ids, list(ids)
    masked = fact_label_mask([tuple(o) for o in enc["offset_mapping"]], sorted(spans))
    return ids, [-100 if m else t for t, m in zip(ids, masked)]


def build_cpt_rows(tokenizer, docs: Iterable[dict], facts: Iterable[dict], seq_len: int,
                   strategy: str = "mask") -> tuple[list[dict], dict]:
    """Tokenize, mask and pack; return rows of {input_ids, labels} and counts for the report."""
    spans = defaultdict(list)
    for f in facts:
        spans[f["doc_id"]].append((f["start"], f["end"]))
    ids_all: list[int] = []
    labels_all: list[int] = []
    n_docs = 0
    for doc in docs:
        ids, labels = tokenize_document(tokenizer, doc["text"], spans.get(doc["id"], []), strategy)
        ids_all += ids + [tokenizer.eos_token_id]
        labels_all += labels + [tokenizer.eos_token_id]
        n_docs += 1
    rows = [{"input_ids": ids_all[i:i + seq_len], "labels": labels_all[i:i + seq_len]}
            for i in range(0, len(ids_all), seq_len)]
    # A row with nothing to predict (all masked, or a 1-token tail) would give a NaN loss.
    rows = [r for r in rows if sum(t != -100 for t in r["labels"][1:]) > 0]
    masked = sum(1 for t in labels_all if t == -100)
    counts = {"docs": n_docs, "tokens": len(ids_all), "masked_tokens": masked, "rows": len(rows),
              "strategy": strategy}
    return rows, counts
