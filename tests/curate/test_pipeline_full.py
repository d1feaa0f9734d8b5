"""Every curation step at once, on two local processes: boilerplate lines, quality filters, PII,
exact / near / semantic duplicates and rebalancing, with the accounting identity intact."""

from __future__ import annotations

import json
import random

from cogcore.curate.executors import LocalExecutor
from cogcore.curate.pipeline import curate
from cogcore.curate.plan import CuratePlan
from cogcore.recipe import CurateConfig, FactsConfig

FOOTER = "Copyright Acme Bank. All rights reserved. Contact the help desk for questions."
TOPICS = ["wire transfers", "card disputes", "savings interest", "loan payments", "branch hours", "mobile deposits"]


def _corpus() -> list[dict]:
    rng = random.Random(3)
    vocab = [f"word{i}" for i in range(400)]
    docs = []
    for i in range(60):
        topic = TOPICS[i % len(TOPICS)]
        words = " ".join(rng.choice(vocab) for _ in range(120))
        docs.append({"id": f"doc{i:02d}", "text": f"Policy on {topic} number {i}.\n{words}.\n{FOOTER}"})
    near = docs[0]["text"].split(" ")
    near[10:14] = ["changed", "these", "four", "words"]  # ~97% of shingles shared
    docs.append({"id": "near_copy", "text": " ".join(near)})
    docs.append({"id": "spam", "text": "buy now " * 200 + "\n" + FOOTER})
    docs.append({"id": "secret", "text": docs[5]["text"] + "\nescalate to ops.lead@acme.example"})
    return docs


def test_all_steps_together(tmp_path, make_tiny_embedder, source):
    docs = _corpus()
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    section = CurateConfig(
        min_chars=50,
        batch_size=16,
        boilerplate={"min_docs": 10, "min_fraction": 0.5},
        quality={"gopher_repetition": {"enabled": True}},
        dedup={
            "minhash": {"threshold": 0.8, "verify": True},
            "semantic": {"enabled": True, "threshold": 0.999, "clusters": 4},
        },
        rebalance={"enabled": True, "clusters": 3, "max_share": 0.5},
    )
    plan = CuratePlan.from_sections(
        curate=section, facts=FactsConfig(), seed=0, embedder=str(make_tiny_embedder([d["text"] for d in docs]))
    )
    stats = curate([source("s", str(tmp_path / "d.jsonl"), id_field="id")], tmp_path / "out", plan, LocalExecutor(2))

    steps = {s.step: s for s in stats.steps}
    assert list(steps) == [
        "unique_ids",
        "normalize",
        "boilerplate_lines",
        "length_filter",
        "gopher_repetition",
        "pii_redact",
        "exact_dedup",
        "near_dedup",
        "semantic_dedup",
        "rebalance",
    ]
    assert sum(steps["gopher_repetition"].dropped.values()) == 1  # the spam page
    assert steps["near_dedup"].dropped == {"near_duplicate": 2}  # near_copy, and secret (doc05 + a line)
    assert steps["boilerplate_lines"].bytes_delta < 0
    out = [json.loads(line) for line in (tmp_path / "out/docs.jsonl").read_text().splitlines()]
    assert len(out) == stats.docs_out and all(FOOTER not in d["text"] for d in out)
    assert "near_copy" not in {d["id"] for d in out} and "spam" not in {d["id"] for d in out}
    assert stats.pii == {"email": 1} and "ops.lead@acme.example" not in (tmp_path / "out/docs.jsonl").read_text()
    assert stats.rebalance.clusters == 3 and sum(stats.rebalance.before.values()) == steps["rebalance"].docs_in
    clusters = [json.loads(line) for line in (tmp_path / "out/clusters.jsonl").read_text().splitlines()]
    assert {"kind": "minhash", "kept": "doc00", "members": ["doc00", "near_copy"]} in clusters
    assert {"kind": "minhash", "kept": "doc05", "members": ["doc05", "secret"]} in clusters
