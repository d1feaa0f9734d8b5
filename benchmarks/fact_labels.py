"""Fact detection against hand labels: exact-span precision and recall per kind on banking passages.

The labels (benchmarks/data/fact_labels/, written by hand to GUIDELINE.md there, without running
the detector) are two sets of 40 passages of tau2's banking knowledge base: `dev` (used while the
rules were tuned) and `test` (held out). A detected fact counts when its span is exactly a labelled
span of the same kind ("span+kind"); "span" ignores the kind.

The detector runs with every kind on (`name` too) and, with `--learned-names`, the proper names
cogcore learns from the whole corpus (cogcore.curate.names), as curation runs it by default.

    .venv/bin/python benchmarks/fact_labels.py                    # both sets, ~5 s
    .venv/bin/python benchmarks/fact_labels.py --set test --show-errors
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cogcore.curate.facts import PATTERNS, FactDetector  # noqa: E402

LABELS = Path(__file__).parent / "data" / "fact_labels"


def banking_texts() -> list[str]:
    root = importlib.util.find_spec("inspect_evals").submodule_search_locations[0]
    path = Path(root) / "tau2/data/domains/banking_knowledge/documents.json.gz"
    return [d["content"] for d in json.loads(gzip.decompress(path.read_bytes()))]


def detector(learned_names: bool) -> FactDetector:
    names = []
    if learned_names:
        from cogcore.curate.names import learn_names

        names = [n.text for n in learn_names(banking_texts())]
    return FactDetector(kinds=list(PATTERNS), names=names)


def score(passages: list[dict], det: FactDetector, show_errors: bool) -> dict[str, Counter]:
    """Per kind: tp (span and kind), gold, predicted; plus span-only tp under "span"."""
    counts: dict[str, Counter] = {}
    for p in passages:
        gold = {(f["start"], f["end"], f["kind"]) for f in p["facts"]}
        found = {(f["start"], f["end"], f["kind"]) for f in det.detect({"id": p["doc_id"], "text": p["text"]})}
        for *_, kind in gold:
            counts.setdefault(kind, Counter())["gold"] += 1
        for start, end, kind in found:
            c = counts.setdefault(kind, Counter())
            c["predicted"] += 1
            c["tp"] += (start, end, kind) in gold
            c["span_tp"] += any((start, end) == (g[0], g[1]) for g in gold)
        if show_errors:
            for start, end, kind in sorted(found - gold):
                print(f"  false {kind:10s} {p['text'][start:end]!r:40s} {p['doc_id']}")
            for start, end, kind in sorted(gold - found):
                print(f"  missed {kind:9s} {p['text'][start:end]!r:40s} {p['doc_id']}")
    return counts


def table(name: str, counts: dict[str, Counter]) -> None:
    print(f"\n{name}: exact spans (span+kind; span only in brackets)")
    print("| kind | gold | detected | precision | recall |")
    print("|---|---|---|---|---|")
    total = Counter()
    for kind in sorted(counts):
        c = counts[kind]
        total.update(c)
        precision, recall = _ratio(c["tp"], c["predicted"]), _ratio(c["tp"], c["gold"])
        print(f"| {kind} | {c['gold']} | {c['predicted']} | {precision} | {recall} |")
    print(
        f"| **all** | {total['gold']} | {total['predicted']} | **{_ratio(total['tp'], total['predicted'])}** "
        f"({_ratio(total['span_tp'], total['predicted'])}) | **{_ratio(total['tp'], total['gold'])}** |"
    )


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=["dev", "test", "both"], default="both")
    p.add_argument("--learned-names", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--show-errors", action="store_true")
    args = p.parse_args()
    det = detector(args.learned_names)
    for name in ("dev", "test") if args.set == "both" else (args.set,):
        passages = [json.loads(line) for line in (LABELS / f"{name}.jsonl").read_text().splitlines() if line.strip()]
        table(name, score(passages, det, args.show_errors))
    print(
        f"\nreproduce: python benchmarks/fact_labels.py --set {args.set}"
        + ("" if args.learned_names else " --no-learned-names")
    )


if __name__ == "__main__":
    main()
