"""Secrets and PII planted in the sources reach neither the curated text, nor the index, nor the
report and its samples, when redaction is on (the default)."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cogcore.cli import app

PLANTED = {
    "email": "maria.lopez@acme-bank.example",
    "phone": "+1 415 555 0132",
    "ip": "10.20.30.41",
    "credit_card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "password": "hunter2-Correct-Horse",
}


def _docs() -> list[dict]:
    body = (
        "Customers who lose a card should call the support line. Escalations go to {email} or {phone}. "
        "The reconciliation server at {ip} nightly exports card {credit_card} and account {iban} for audit. "
        "Deploy with key {aws} and token {github}; the admin password={password} must rotate every 90 days."
    )
    docs = [
        {
            "id": f"p{i}",
            "title": f"Runbook {i} for {PLANTED['email']}",
            "text": f"Runbook {i}: " + body.format(**PLANTED) + f" Section {i} covers the fee of ${i + 5}.00.",
        }
        for i in range(12)
    ]
    docs.append({"id": "short", "title": "stub", "text": f"call {PLANTED['phone']}"})  # dropped before redaction
    docs.append({"id": "dup", "title": "copy", "text": docs[0]["text"]})  # dropped after redaction
    return docs


def test_no_planted_secret_survives_curation_index_or_report(tmp_path, make_tiny_embedder):
    docs = _docs()
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    recipe = {
        "name": "leaks",
        "run_dir": str(tmp_path / "runs"),
        "sources": [{"name": "runbooks", "path": "docs.jsonl", "id_field": "id", "title_field": "title"}],
        "base_model": {"path": "org/unused-model"},
        "curate": {"min_chars": 60, "workers": 1},
        "index": {
            "embedder": str(make_tiny_embedder([d["text"] for d in docs])),
            "chunk_chars": 200,
            "chunk_overlap": 20,
        },
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    cli = CliRunner()
    for command in (
        ["curate", str(tmp_path / "r.yaml")],
        ["index", str(tmp_path / "r.yaml")],
        ["report", str(tmp_path / "runs" / "leaks")],
    ):
        result = cli.invoke(app, command)
        assert result.exit_code == 0, result.output

    run = tmp_path / "runs" / "leaks"
    stats = json.loads((run / "curate/stats.json").read_text())
    assert stats["pii"]["email"] >= 12 and stats["pii"]["credit_card"] >= 12 and stats["pii"]["api_key"] >= 24
    assert (run / "curate/drops/too_short.jsonl").exists() and (run / "curate/drops/exact_duplicate.jsonl").exists()
    written = [p for p in run.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".md", ".html")]
    assert any("index" in str(p) for p in written) and any("report" in str(p) for p in written)
    for path in written:
        text = path.read_text()
        for kind, value in PLANTED.items():
            assert value not in text, f"{kind} leaked into {path.relative_to(run)}"
    assert "[EMAIL]" in (run / "curate/docs.jsonl").read_text()
