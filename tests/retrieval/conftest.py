"""Tiny corpora and built indexes for the retrieval tests (the tiny embedder is in tests/conftest.py).

`make_tiny_embedder(texts)` (a session fixture of tests/conftest.py) builds a randomly
initialized 2-layer, 64-wide BERT with a WordPiece tokenizer whose vocabulary comes from texts,
saved as a sentence-transformers folder (Transformer + mean Pooling + Normalize); it returns the
folder's path, which `cogcore.retrieval.Embedder` loads like any real embedder. Random weights
give no semantic similarity, but identical texts still get identical vectors, which is what
round-trip tests need. Building one takes well under a second.

`form_docs` are near-identical documents told apart only by an identifier ("QK-20417"): exactly
what a random (or any) embedder blurs and BM25 matches.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cogcore.retrieval import Embedder, build_index

TINY_DOCS = [
    {
        "id": "fees",
        "source": "handbook/fees.md",
        "meta": {"title": "Account fees"},
        "text": "# Account fees\n\nThe standard account costs 5 USD per month. Premium accounts cost "
        "12 USD per month and include travel insurance.\n\n## Waivers\n\nThe monthly fee is "
        "waived for students under 25 and for balances above 10,000 USD.",
    },
    {
        "id": "overdraft",
        "source": "handbook/overdraft.md",
        "meta": {"title": "Overdrafts"},
        "text": "# Overdrafts\n\nAn arranged overdraft charges 19.9 percent a year. Unarranged "
        "overdrafts are declined at the till.\n\n## Limits\n\nThe default limit is 500 USD; "
        "customers may ask for up to 2,500 USD after six months.",
    },
    {
        "id": "cards",
        "source": "handbook/cards.md",
        "meta": {"title": "Lost cards"},
        "text": "# Lost or stolen cards\n\nCall 555-0100 at any hour to block a card. A new card "
        "arrives within 5 working days.\n\n## Fraud\n\nDisputed payments are refunded "
        "within 10 days while the claim is investigated by the fraud team.",
    },
    {
        "id": "wires",
        "source": "handbook/wires.md",
        "meta": {"title": "Wire transfers"},
        "text": "# Wire transfers\n\nDomestic wires sent before 3 pm arrive the same day. "
        "International wires cost 25 USD and take two to four days.\n\n## Cut-off\n\n"
        "Wires requested on a bank holiday are sent on the next business day.",
    },
    {
        "id": "branches",
        "source": "handbook/branches.md",
        "meta": {"title": "Branches"},
        "text": "Branches open 9 am to 5 pm on weekdays and 9 am to noon on Saturdays. The head "
        "office is at 1 Harbour Street. Safe deposit boxes are offered at the head office "
        "only, from 80 USD a year.",
    },
]


@pytest.fixture(scope="session")
def tiny_docs() -> list[dict]:
    return [dict(doc) for doc in TINY_DOCS]


@pytest.fixture(scope="session")
def tiny_embedder(make_tiny_embedder, tiny_docs) -> Embedder:
    return Embedder(make_tiny_embedder(doc["text"] for doc in tiny_docs), batch_size=8)


@pytest.fixture(scope="session")
def tiny_index_dir(tmp_path_factory, tiny_docs, tiny_embedder) -> Path:
    """A flat index over tiny_docs (chunk_chars 120, overlap 30: about 20 chunks)."""
    out = tmp_path_factory.mktemp("index")
    build_index(tiny_docs, out, tiny_embedder, chunk_chars=120, overlap=30)
    return out


# Identifiers whose parts share nothing with each other or with TINY_DOCS, so each one's BM25
# list holds its own document only.
FORM_CODES = [
    "QK-20417",
    "VB-88310",
    "open_bank_account_4821",
    "ZT-55092",
    "HX-13766",
    "MW-90248",
    "close_card_7734",
    "RJ-31159",
]


@pytest.fixture(scope="session")
def form_codes() -> list[str]:
    return list(FORM_CODES)


@pytest.fixture(scope="session")
def form_docs() -> list[dict]:
    return [
        {
            "id": f"form-{i}",
            "source": f"forms/{i}.md",
            "meta": {"title": "Forms"},
            "text": f"# Forms\n\nCustomers use form {code} for this request. Staff file the "
            "form with the branch and keep a copy for the customer's records.",
        }
        for i, code in enumerate(FORM_CODES)
    ]


@pytest.fixture(scope="session")
def form_index(tmp_path_factory, tiny_docs, form_docs, tiny_embedder):
    """tiny_docs + form_docs, embedded by tiny_embedder (which never saw the form codes)."""
    from cogcore.retrieval import SearchIndex

    out = tmp_path_factory.mktemp("form-index")
    build_index(tiny_docs + form_docs, out, tiny_embedder, chunk_chars=200, overlap=40)
    return SearchIndex.load(out, tiny_embedder)


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory, make_tiny_embedder, tiny_docs) -> Path:
    """A random 2-layer, 64-wide BERT with one output: a local cross-encoder folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_embedder(d["text"] for d in tiny_docs))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        num_labels=1,
    )
    out = tmp_path_factory.mktemp("tiny-cross-encoder") / "tiny-ce"
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
