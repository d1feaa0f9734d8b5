"""Turn hand-written span labels into offset-annotated JSONL gold files.

Spans are located by sequential search: each fact is the first occurrence of its
string at or after the end of the previous fact (optionally skipping `skip`
further occurrences) whose neighbours are not word characters / digits.
"""

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

from build_passages import select

HERE = Path(__file__).parent
KINDS = {"money", "percent", "date", "time", "duration", "quantity", "identifier", "name", "number", "url", "email"}


def load_labels(name):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.LABELS


def is_word(ch):
    return ch.isalnum() or ch == "_"


def locate(text, span, cursor, skip):
    pos = cursor
    while True:
        i = text.find(span, pos)
        if i < 0:
            raise ValueError(f"span {span!r} not found after {cursor}")
        j = i + len(span)
        ok_left = i == 0 or not (is_word(text[i - 1]) and is_word(span[0]))
        ok_right = j == len(text) or not (is_word(text[j]) and is_word(span[-1]))
        # a number must not be glued to a neighbouring number (e.g. '1,000' inside '$1,000')
        if ok_left and span[0].isdigit() and i > 0 and text[i - 1] in ",." and i > 1 and text[i - 2].isdigit():
            ok_left = False
        if ok_left and ok_right:
            if skip == 0:
                return i, j
            skip -= 1
        pos = i + 1


def build(split):
    ps = select()
    passages = ps[:40] if split == "dev" else ps[40:80]
    labels = load_labels(f"labels_{split}")
    assert sorted(labels) == list(range(len(passages))), "every passage must be labelled"
    counts = Counter()
    rows = []
    for idx, p in enumerate(passages):
        text = p["text"]
        cursor = 0
        facts = []
        for item in labels[idx]:
            span, kind = item[0], item[1]
            skip = item[2] if len(item) > 2 else 0
            assert kind in KINDS, kind
            s, e = locate(text, span, cursor, skip)
            assert text[s:e] == span
            assert span == span.strip() and span[0] not in "*#`|\"'(,.:;" and span[-1] not in "*#`|\"',.:;"
            facts.append({"start": s, "end": e, "text": span, "kind": kind})
            cursor = e
            counts[kind] += 1
        for a, b in zip(facts, facts[1:]):
            assert a["end"] <= b["start"]
        rows.append({"doc_id": p["doc_id"], "passage_start": p["passage_start"], "text": text, "facts": facts})
    with open(HERE / f"{split}.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rows), counts


if __name__ == "__main__":
    for split in sys.argv[1:] or ["dev", "test"]:
        n, c = build(split)
        print(split, n, "passages", sum(c.values()), "facts", dict(sorted(c.items())))
