"""Test-wide settings (no network) and the tiny models the tests build for themselves.

- `make_tiny_embedder(texts)`: a random 2-layer, 64-wide BERT sentence-transformers folder.
- `make_tiny_llm(texts)`: a random 2-layer, 64-wide Llama with a byte-level BPE tokenizer trained
  on texts, carrying ChatML special tokens, saved as a Hugging Face folder (safetensors).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

# Nothing may reach a hub from a test; set before transformers/datasets are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
# Tiny models gain nothing from threads, and idle OpenMP threads spinning on a busy 2-core machine
# made tiny-model training ~15x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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
    tok.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=256,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
    )
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


CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_llm(out_dir: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 600) -> Path:
    """Save a random 2-layer, 64-wide Llama and a BPE tokenizer trained on texts into out_dir."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=CHAT_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(list(texts) + ['{"name": "search", "arguments": {"query": ""}}'], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def make_tiny_llm(tmp_path_factory) -> Callable[[Iterable[str]], Path]:
    """A function texts -> path of a new tiny Llama folder (model + tokenizer)."""

    def make(texts: Iterable[str]) -> Path:
        return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm") / "model", texts)

    return make


def write_curated(curate_dir: Path, docs: list[dict], facts: list[dict]) -> None:
    """Write what the curate stage hands the later stages: docs.jsonl, facts.jsonl and a stats.json
    that counts them (no step ran), for tests that start a run directory at a later stage."""
    import json
    from collections import Counter

    from cogcore.curate.stats import CurateStats

    curate_dir.mkdir(parents=True, exist_ok=True)
    (curate_dir / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (curate_dir / "facts.jsonl").write_text("".join(json.dumps(f) + "\n" for f in facts))
    CurateStats(
        docs_in=len(docs),
        docs_out=len(docs),
        steps=[],
        splits=dict(Counter(d["meta"]["split"] for d in docs)),
        facts=dict(Counter(f["kind"] for f in facts)),
        pii={},
        unreadable=[],
        unreadable_by_reason={},
        recoded={},
        warnings=[],
    ).write(curate_dir / "stats.json")


@pytest.fixture(scope="session")
def curated_writer() -> Callable[[Path, list[dict], list[dict]], None]:
    """`write_curated`, for tests (conftest is not importable under --import-mode=importlib)."""
    return write_curated


@pytest.fixture(scope="session")
def train_settings():
    """A function (seed=0, **train.cpt fields) -> TrainSettings, built the one way the stages build
    it: from a recipe section (`CptTrainConfig`), so a test names only what it changes from the
    recipe's defaults, e.g. `train_settings(method="full", max_steps=2, lora={"r": 4})`."""
    from cogcore.recipe import CptTrainConfig
    from cogcore.train.trainer import TrainSettings

    def make(seed: int = 0, **fields):
        return TrainSettings.from_section(CptTrainConfig(**fields), seed=seed)

    return make


@pytest.fixture(scope="session")
def local_model():
    """A function folder -> ModelSpec of a tiny model saved by the test (float32, no remote code)."""
    from cogcore.models import ModelSpec

    def spec(folder: Path):
        return ModelSpec(path=str(folder), dtype="float32", trust_remote_code=False)

    return spec
