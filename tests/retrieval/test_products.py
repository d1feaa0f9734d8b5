"""Product-aware ranking: documents that differ only in their product's name, and a question that
names one: with the domain's names the index ranks that product's chunks first; a question naming
no product is ranked by fusion alone; each document's product comes from its title, else its text."""

from __future__ import annotations

import pytest

from cogcore.retrieval import Embedder, SearchIndex, build_index
from cogcore.retrieval.products import ProductNames, doc_products

PRODUCTS = ["Silver Account", "Gold Account", "Sky Blue", "Cobalt Blue", "Silver Rewards Card", "Navy Card"]


def _docs() -> list[dict]:
    docs = []
    for i, product in enumerate(PRODUCTS):
        other = PRODUCTS[(i + 1) % len(PRODUCTS)]  # each page compares itself with the next product, twice
        body = (
            f"Sending a wire abroad costs ${10 + i}, less than on the {other}. Domestic wires are free. "
            f"Cards arrive in {3 + i} days, as on the {other}. Disputes close within {20 + i} days."
        )
        docs.append({"id": f"d{i}", "source": "kb", "meta": {"title": f"{product}: fees"}, "text": body})
    return docs


@pytest.fixture(scope="module")
def product_index(tmp_path_factory, make_tiny_embedder) -> SearchIndex:
    docs = _docs()
    embedder = Embedder(make_tiny_embedder(d["text"] for d in docs), batch_size=8)
    out = tmp_path_factory.mktemp("products")
    build_index(docs, out, embedder, chunk_chars=400, overlap=40, names=PRODUCTS + ["Silver"])
    return SearchIndex.load(out, embedder)


def test_a_question_naming_a_product_gets_that_products_chunk_first(product_index):
    queries = [f"how much do i pay to send money abroad from my {product.lower()}?" for product in PRODUCTS]
    expected = [f"d{i}" for i in range(len(PRODUCTS))]
    assert [hits[0].doc_id for hits in product_index.search_many(queries, k=1)] == expected
    # fusion alone ranks a page that names the product more often (its neighbour's) first, for some
    fused = [hits[0].doc_id for hits in product_index.search_many(queries, k=1, by_product=False)]
    assert fused != expected


def test_a_question_naming_no_product_is_ranked_by_fusion_alone(product_index):
    query = "how much do i pay to send money abroad?"
    plain = product_index.search_many([query], k=6, by_product=False)[0]
    assert [h.chunk_id for h in product_index.search(query, k=6)] == [h.chunk_id for h in plain]


def test_a_products_match_is_the_share_of_its_words_the_question_holds(product_index):
    match = product_index.products.match("fees on my silver", ["d0", "d4", "d1", "d2"])
    assert match.tolist() == [0.5, pytest.approx(1 / 3), 0.0, 0.0]  # Silver Account, Silver Rewards Card
    assert product_index.products.match("sky blue perks", ["d2", "d3", "d0"]).tolist() == [1.0, 0.5, 0.0]
    assert product_index.products.match("fees abroad", ["d0"]) is None


def test_a_word_many_names_share_names_no_product():
    names = [f"{color} Account" for color in ("Red", "Green", "Blue", "Gold", "Silver", "Purple", "Teal", "Navy")]
    products = ProductNames(names, {"r": "Red Account", "g": "Green Account"})
    assert "account" in products.generic and products.match("fees on my account", ["r", "g"]) is None
    assert products.match("fees on my red account", ["r", "g"]).tolist() == [1.0, 0.0]


def test_each_documents_product_comes_from_its_title_else_its_text():
    docs = [
        {"id": "a", "meta": {"title": "Gold Account: fees"}, "text": "Unlike the Sky Blue, ..."},
        {"id": "b", "meta": {"title": "Fees"}, "text": "Sky Blue fees. Sky Blue limits. See the Gold Account."},
        {"id": "c", "meta": {"title": "Fees"}, "text": "No product here."},
    ]
    assert doc_products(docs, ["Gold Account", "Sky Blue"]) == {"a": "Gold Account", "b": "Sky Blue"}
    assert ProductNames([], {}).match("my Sky Blue", ["a"]) is None and doc_products(docs, []) == {}
    # spaced or not, one name: "Everyone Pay" is "EveryonePay"
    assert doc_products([{"id": "e", "meta": {"title": "Everyone Pay limits"}, "text": ""}], ["EveryonePay"]) == {
        "e": "Everyone Pay"
    }
    assert ProductNames(["EveryonePay"], {"e": "Everyone Pay"}).match("my everyonepay limit", ["e"]).tolist() == [1.0]
