"""Product-aware ranking: a question that names a product ("my Silver account") ranks that
product's documents higher.

Enterprise documents often differ only in the product they describe (the same fee table for eight
cards), so a retriever that matches the words of a question finds the right paragraph of the wrong
product. The index knows the domain's proper names (learned from the corpus by curation) and each
document's product: the longest name in its title, else the name its text repeats most. Names are
compared in a compact form (lower case, no spaces or hyphens: "Everyone Pay" is "EveryonePay").

At search time a question that holds a distinctive word of a product's name (not "account" or
"card", which many names share) gives each candidate a match in [0, 1]: the share of its product's
words that the question holds ("my Gold savings account" covers all of "Gold Account", two thirds of
"Gold Plus Account", half of "Business Gold Rewards Card"), 0 when the product has none of the
question's distinctive words. The match is added to the fused score with a weight (`boost`), so
a strong match climbs a few ranks without overruling the retrievers where they agree.

    products = ProductNames(names, doc_products(docs, names))
    match = products.match(query, [chunk["doc_id"] for chunk in candidates])   # None: no name in it
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

_WORDS = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def compact(name: str) -> str:
    return "".join(_WORDS.findall(name.lower()))


def _words(name: str) -> list[str]:
    """ "EveryonePay" and "Everyone Pay" alike: everyone, pay."""
    return _WORDS.findall(_CAMEL.sub(" ", name).lower())


def _alternation(names: Iterable[str], flags: int = 0) -> re.Pattern | None:
    """Any of the names, whole, with optional spaces or hyphens between their words."""
    spelled = sorted({n for n in names if n.strip()}, key=len, reverse=True)
    if not spelled:
        return None
    forms = [r"[\s-]?".join(re.escape(w) for w in _CAMEL.sub(" ", n).replace("-", " ").split()) for n in spelled]
    return re.compile(r"(?<![\w-])(?:" + "|".join(forms) + r")(?![\w-])", flags)


def doc_products(docs: Iterable[dict], names: Sequence[str]) -> dict[str, str]:
    """doc id -> its product (see doc_product); documents that name none are left out."""
    pattern = product_pattern(names)
    products = ((doc["id"], doc_product(doc, pattern)) for doc in docs)
    return {doc_id: product for doc_id, product in products if product}


def product_pattern(names: Sequence[str]) -> re.Pattern | None:
    """What doc_product looks for: any of names (None when there are none)."""
    return _alternation(names, re.IGNORECASE)


def doc_product(doc: dict, pattern: re.Pattern | None) -> str | None:
    """A document's product: the longest name in its title, else the name its text holds most often
    (the longer on a tie); None when it names none. One document at a time, so that an index build
    streams its documents."""
    if pattern is None:
        return None
    title = (doc.get("meta") or {}).get("title") or ""
    in_title = pattern.findall(title)
    if in_title:
        return max(in_title, key=len)
    counts = Counter(pattern.findall(doc["text"]))
    return max(counts, key=lambda n: (counts[n], len(n))) if counts else None


# A word in more of the names than this share (and than 3) says what kind of product, not which one.
GENERIC_SHARE = 0.1


class ProductNames:
    """The names a query may mention, and each document's product."""

    def __init__(self, names: Sequence[str], products: dict[str, str]):
        self.products = {doc: _words(p) for doc, p in products.items()}
        spelled = {tuple(_words(n)) for n in [*names, *products.values()] if _words(n)}
        counts = Counter(w for n in spelled for w in {*n, "".join(n)})  # "everyone", "pay", "everyonepay"
        self.generic = {w for w, c in counts.items() if c > max(3, GENERIC_SHARE * len(spelled))}
        self.distinctive = {w for w in counts if w not in self.generic}

    def match(self, query: str, doc_ids: Sequence[str]) -> np.ndarray | None:
        """Per document, the share of its product's words the query holds, where the query holds
        one of its distinctive words at least (else 0); None when the query holds no such word.
        Queries name products loosely ("my Purple checking account", "Gold savings"), so words
        count, not whole names; "EveryonePay" and "Everyone Pay" are the same words."""
        query_words = set(_words(query)) | {compact(w) for w in re.findall(r"\S+", query)}
        if not query_words & self.distinctive:
            return None
        out = np.zeros(len(doc_ids), dtype=np.float32)
        for i, doc in enumerate(doc_ids):
            product = self.products.get(doc)
            if not product:
                continue
            if "".join(product) in query_words:  # the whole name, spaced or not
                out[i] = 1.0
            elif query_words & self.distinctive & set(product):
                out[i] = sum(w in query_words for w in product) / len(product)
        return out
