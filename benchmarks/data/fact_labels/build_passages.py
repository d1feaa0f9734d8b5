"""Deterministically select DEV/TEST passages from the tau2 banking knowledge base.

`select()` is used by assemble.py; running this file prints the passages.
Rule: shuffle documents with random.Random(13); split each document's content
into blank-line separated blocks (stripped); keep blocks of 200-900 characters
that contain a digit or a capitalised multi-word phrase; at most 2 per document;
first 40 -> dev, next 40 -> test.
"""

import gzip
import importlib.util
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
CAP_PHRASE = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)+")


def load_docs():
    root = importlib.util.find_spec("inspect_evals").submodule_search_locations[0]
    path = Path(root) / "tau2/data/domains/banking_knowledge/documents.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def blocks(content):
    pos = 0
    for m in list(re.finditer(r"\n[ \t]*\n", content)) + [None]:
        end = m.start() if m else len(content)
        raw = content[pos:end]
        lead = len(raw) - len(raw.lstrip())
        text = raw.strip()
        if text:
            yield pos + lead, text
        if m:
            pos = m.end()


def select(n=80):
    docs = load_docs()
    random.Random(13).shuffle(docs)
    out = []
    for doc in docs:
        taken = 0
        for start, text in blocks(doc["content"]):
            if taken >= 2:
                break
            if not (200 <= len(text) <= 900):
                continue
            if not (re.search(r"\d", text) or CAP_PHRASE.search(text)):
                continue
            assert doc["content"][start : start + len(text)] == text
            out.append({"doc_id": doc["id"], "passage_start": start, "text": text})
            taken += 1
        if len(out) >= n:
            break
    return out[:n]


if __name__ == "__main__":
    for i, p in enumerate(select()):
        split, k = ("dev", i) if i < 40 else ("test", i - 40)
        print(f"=== {split} {k} {p['doc_id']} @{p['passage_start']}")
        print(p["text"])
