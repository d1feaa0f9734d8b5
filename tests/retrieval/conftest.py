"""Tiny corpus, tiny sentence-transformers embedder and a built index for the retrieval tests.

`make_tiny_embedder(texts)` (a session fixture returning a function) builds a randomly
initialized 2-layer, 64-wide BERT with a WordPiece tokenizer whose vocabulary comes from texts,
saved as a sentence-transformers folder (Transformer + mean Pooling + Normalize); it returns the
folder's path, which `cogcore.retrieval.Embedder` loads like any real embedder. Random weights
give no semantic similarity, but identical texts still get identical vectors, which is what
round-trip tests need. Building one takes well under a second.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from cogcore.retrieval import Embedder, build_index

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _wordpiece_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Corpus words plus every single character (alone and as "##" continuation), so that any
    text over the same alphabet tokenizes without [UNK]."""
    words, chars = set(), set(string.ascii_lowercase + string.digits + string.punctuation)
    for text in texts:
        lowered = text.lower()
        words.update(re.findall(r"\w+", lowered))
        chars.update(c for c in lowered if not c.isspace())
    tokens = SPECIAL_TOKENS + sorted(chars) + [f"##{c}" for c in sorted(chars)]
    tokens += sorted(words - set(tokens))
    return {token: i for i, token in enumerate(tokens)}


def build_tiny_sentence_model(out_dir: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """Save a tiny random sentence-transformers model for texts into out_dir; returns out_dir."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = _wordpiece_vocab(texts)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=256,
    )
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, max_position_embeddings=256)
    hf_dir = out_dir.parent / f"{out_dir.name}-hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    modules = [Transformer(str(hf_dir), max_seq_length=256), Pooling(64, "mean"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(out_dir))
    return out_dir


@pytest.fixture(scope="session")
def make_tiny_embedder(tmp_path_factory) -> Callable[[Iterable[str]], Path]:
    """A function texts -> path of a new tiny sentence-transformers folder."""
    def make(texts: Iterable[str]) -> Path:
        folder = tmp_path_factory.mktemp("tiny-embedder") / "tiny-st"
        return build_tiny_sentence_model(folder, texts)
    return make


TINY_DOCS = [
    {"id": "fees", "source": "handbook/fees.md", "meta": {"title": "Account fees"},
     "text": "# Account fees\n\nThe standard account costs 5 USD per month. Premium accounts cost "
             "12 USD per month and include travel insurance.\n\n## Waivers\n\nThe monthly fee is "
             "waived for students under 25 and for balances above 10,000 USD."},
    {"id": "overdraft", "source": "handbook/overdraft.md", "meta": {"title": "Overdrafts"},
     "text": "# Overdrafts\n\nAn arranged overdraft charges 19.9 percent a year. Unarranged "
             "overdrafts are declined at the till.\n\n## Limits\n\nThe default limit is 500 USD; "
             "customers may ask for up to 2,500 USD after six months."},
    {"id": "cards", "source": "handbook/cards.md", "meta": {"title": "Lost cards"},
     "text": "# Lost or stolen cards\n\nCall 555-0100 at any hour to block a card. A new card "
             "arrives within 5 working days.\n\n## Fraud\n\nDisputed payments are refunded "
             "within 10 days while the claim is investigated by the fraud team."},
    {"id": "wires", "source": "handbook/wires.md", "meta": {"title": "Wire transfers"},
     "text": "# Wire transfers\n\nDomestic wires sent before 3 pm arrive the same day. "
             "International wires cost 25 USD and take two to four days.\n\n## Cut-off\n\n"
             "Wires requested on a bank holiday are sent on the next business day."},
    {"id": "branches", "source": "handbook/branches.md", "meta": {"title": "Branches"},
     "text": "Branches open 9 am to 5 pm on weekdays and 9 am to noon on Saturdays. The head "
             "office is at 1 Harbour Street. Safe deposit boxes are offered at the head office "
             "only, from 80 USD a year."},
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
