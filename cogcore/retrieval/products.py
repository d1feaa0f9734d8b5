"""Product-aware ranking: a question that names a product ("my Silver account") ranks that
product's documents first.

Enterprise documents often differ only in the product they describe (the same fee table for eight
cards), so a retriever that matches the words of a question finds the right paragraph of the wrong
product. The index knows the domain's proper names (learned from the corpus by curation) and each
document's product: the longest name in its title, else the name its text repeats most. At search
time the names in the question are found (case-insensitively, "silver account" is "Silver
Account"), and the fused candidates are reordered, stable, by how well their document's product
matches: the same product first, then products that contain the named one ("Silver" names the
Silver Account and the Silver Rewards Card alike), then the rest.

    products = ProductNames(names, doc_products(docs, names))
    order = products.rank(query, [chunk["doc_id"] for chunk in candidates])   # 2, 1 or 0 each
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

EXACT, CONTAINS, OTHER = 2, 1, 0


def _alternation(names: Iterable[str], flags: int = 0) -> re.Pattern | None:
    spelled = sorted({n for n in names if n.strip()}, key=len, reverse=True)
    if not spelled:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in spelled) + r")(?![\w-])", flags)


def doc_products(docs: Iterable[dict], names: Sequence[str]) -> dict[str, str]:
    """doc id -> its product: the longest name in its title, else the name its text holds most often
    (the longer on a tie); documents that name none are left out."""
    pattern = _alternation(names)
    if pattern is None:
        return {}
    out = {}
    for doc in docs:
        title = (doc.get("meta") or {}).get("title") or ""
        in_title = pattern.findall(title)
        if in_title:
            out[doc["id"]] = max(in_title, key=len)
            continue
        counts = Counter(pattern.findall(doc["text"]))
        if counts:
            out[doc["id"]] = max(counts, key=lambda n: (counts[n], len(n)))
    return out


class ProductNames:
    """The names a query may mention, and each document's product."""

    def __init__(self, names: Sequence[str], products: dict[str, str]):
        self.pattern = _alternation(names, re.IGNORECASE)
        self.products = {doc: p.lower() for doc, p in products.items()}

    def named(self, query: str) -> list[str]:
        """The names in a query, lower-cased, longest first where two overlap."""
        return [m.group().lower() for m in self.pattern.finditer(query)] if self.pattern else []

    def rank(self, query: str, doc_ids: Sequence[str]) -> np.ndarray | None:
        """EXACT, CONTAINS or OTHER per document; None when the query names no product."""
        named = self.named(query)
        if not named:
            return None
        words = [set(n.split()) for n in named]
        out = np.full(len(doc_ids), OTHER, dtype=np.int8)
        for i, doc in enumerate(doc_ids):
            product = self.products.get(doc)
            if product is None:
                continue
            if product in named:
                out[i] = EXACT
            elif any(w <= set(product.split()) for w in words):
                out[i] = CONTAINS
        return out

    def to_json(self) -> dict:
        return {"products": self.products}
