"""The recipe's scorers over the training documents, each a named score per document, resumable.

Each scorer's scores are saved (`scores-<name>.npy` in the stage folder) as soon as they are
computed, and each proxy model under `proxies/<fingerprint>/`, so a select stage killed half-way
computes only what it had not finished. The proxies' tokenizer is trained once on the documents and
the target, and shared by every proxy of the run.

    scores, info = score_documents(texts, target, scorers, proxy, folder, seed=0)
    scores["classifier"]   # one float per text (NaN where a scorer could not value it)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cogcore.io import replace_folder_atomic, write_atomic, write_json_atomic
from cogcore.valuation.classifier import QualityClassifier
from cogcore.valuation.importance import ImportanceModel
from cogcore.valuation.proxy import ProxyShape, document_losses, rows_loss, token_rows, train_proxy, train_tokenizer


@dataclass(frozen=True)
class ProxySettings:
    shape: ProxyShape
    vocab_size: int
    steps: int
    batch_size: int
    lr: float

    @classmethod
    def from_section(cls, section) -> ProxySettings:
        shape = ProxyShape(
            hidden=section.hidden,
            layers=section.layers,
            heads=section.heads,
            intermediate=section.intermediate,
            seq_len=section.seq_len,
        )
        return cls(
            shape=shape,
            vocab_size=section.vocab_size,
            steps=section.steps,
            batch_size=section.batch_size,
            lr=section.lr,
        )


@dataclass(frozen=True)
class ScorerSettings:
    importance: dict | None  # {"buckets", "per_ngram"} or None when off
    classifier: dict | None  # {"buckets", "l2", "raw_per_target"}
    perplexity: bool
    excess_loss: bool

    @classmethod
    def from_section(cls, section) -> ScorerSettings:
        imp, clf = section.importance, section.classifier
        return cls(
            importance={"buckets": imp.buckets, "per_ngram": imp.per_ngram} if imp.enabled else None,
            classifier={"buckets": clf.buckets, "l2": clf.l2, "raw_per_target": clf.raw_per_target}
            if clf.enabled
            else None,
            perplexity=section.perplexity.enabled,
            excess_loss=section.excess_loss.enabled,
        )

    def names(self) -> list[str]:
        flags = {
            "importance": self.importance is not None,
            "classifier": self.classifier is not None,
            "perplexity": self.perplexity,
            "excess_loss": self.excess_loss,
        }
        return [name for name, on in flags.items() if on]


def score_documents(
    texts: Sequence[str], target: Sequence[str], scorers: ScorerSettings, proxy: ProxySettings, folder: Path, seed: int
) -> tuple[dict[str, np.ndarray], dict]:
    """{scorer: scores}, and what each cost and how its proxies trained (for stats.json)."""
    if not target:
        raise ValueError("select.target holds no documents: nothing to value the data toward")
    scores, info = {}, {}
    for name in scorers.names():
        cached = folder / f"scores-{name}.npy"
        if cached.exists():
            scores[name] = np.load(cached)
            info[name] = json.loads((folder / f"scores-{name}.json").read_text())
            continue
        scores[name], info[name] = _score(name, texts, target, scorers, proxy, folder, seed)
        write_atomic(cached, lambda tmp, values=scores[name]: _save_array(tmp, values))
        write_json_atomic(folder / f"scores-{name}.json", info[name])
    return scores, info


def _save_array(path: Path, values: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save given a name without ".npy" would add one
        np.save(f, values, allow_pickle=False)


def _score(name: str, texts, target, scorers: ScorerSettings, proxy: ProxySettings, folder: Path, seed: int):
    if name == "importance":
        s = scorers.importance
        model = ImportanceModel.fit(list(target), list(texts), buckets=s["buckets"])
        return model.score(list(texts), per_ngram=s["per_ngram"]), {"target_docs": len(target)}
    if name == "classifier":
        s = scorers.classifier
        rng = np.random.default_rng(seed)
        size = min(len(texts), s["raw_per_target"] * len(target))
        raw = [texts[i] for i in rng.choice(len(texts), size=size, replace=False)]
        clf = QualityClassifier.fit(list(target), raw, buckets=s["buckets"], l2=s["l2"])
        return clf.score(list(texts)), {"target_docs": len(target), "raw_docs": len(raw)}
    tok = proxy_tokenizer(texts, target, proxy, folder)
    corpus_model, corpus_log = _proxy(tok, texts, "corpus", proxy, folder, seed)
    corpus_loss = document_losses(corpus_model, tok, list(texts), proxy.shape.seq_len)
    if name == "perplexity":
        return corpus_loss, {"proxy": corpus_log}
    reference, reference_log = _proxy(tok, target, "reference", proxy, folder, seed)
    reference_loss = document_losses(reference, tok, list(texts), proxy.shape.seq_len)
    return corpus_loss - reference_loss, {"proxy": corpus_log, "reference": reference_log}


def proxy_tokenizer(texts, target, proxy: ProxySettings, folder: Path):
    """The proxies' BPE tokenizer, trained once per run on the documents and the target."""
    from transformers import PreTrainedTokenizerFast

    path = folder / "proxies" / f"tokenizer-{proxy.vocab_size}"
    if not (path / "tokenizer.json").exists():
        tok = train_tokenizer(list(texts) + list(target), vocab_size=proxy.vocab_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_folder_atomic(path, tok.save_pretrained)
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def _proxy(tok, texts, role: str, proxy: ProxySettings, folder: Path, seed: int):
    """A proxy trained on `texts`, loaded from its folder when a run already trained the same one."""
    from transformers import LlamaForCausalLM

    key = hashlib.sha256(
        json.dumps(
            [role, proxy.shape.to_dict(), proxy.vocab_size, proxy.steps, proxy.batch_size, proxy.lr, seed, len(texts)]
        ).encode()
    )
    for text in texts:
        key.update(hashlib.sha1(text.encode()).digest())
    path = folder / "proxies" / f"{role}-{key.hexdigest()[:16]}"
    if (path / "log.json").exists():
        return LlamaForCausalLM.from_pretrained(str(path)).eval(), json.loads((path / "log.json").read_text())
    rows = token_rows(tok, list(texts), proxy.shape.seq_len)
    model, log = train_proxy(rows, proxy.shape, len(tok), proxy.steps, proxy.batch_size, lr=proxy.lr, seed=seed)
    summary = {
        "docs": len(texts),
        "rows": len(rows),
        "tokens": log["tokens"],
        "seconds": round(log["seconds"], 2),
        "tokens_per_s": round(log["tokens_per_s"], 1),
        "first_loss": log["loss"][0],
        "final_loss": float(np.mean(log["loss"][-10:])),
    }

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "log.json").write_text(json.dumps(summary))

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_folder_atomic(path, save)
    torch.set_grad_enabled(True)
    return model, summary


def learn_group_weights(
    texts_by_group: dict[str, list[str]], target: Sequence[str], settings, proxy: ProxySettings, folder: Path, seed: int
) -> dict:
    """Group weights from a proxy trained on the mixture while the mixture moves (see
    cogcore.valuation.mixture); `settings` is the recipe's select.mixture. Returns the fields of a
    MixtureRecord."""
    from cogcore.valuation.mixture import OnlineMixture, learn_mixture, stratified

    texts = [t for group in texts_by_group.values() for t in group]
    tok = proxy_tokenizer(texts, target, proxy, folder)
    rows = {g: token_rows(tok, ts, proxy.shape.seq_len) for g, ts in sorted(texts_by_group.items())}
    rows = {g: r for g, r in rows.items() if len(r)}  # a group shorter than one row cannot be sampled
    natural = stratified(list(rows), {g: len(r) for g, r in rows.items()})
    target_rows = token_rows(tok, list(target), proxy.shape.seq_len)
    reference = None
    if settings.method == "excess_loss":  # DoReMi's reference: a proxy trained on the natural mix
        from cogcore.valuation.mixture import GroupSampler, group_losses

        ref, _ = train_proxy(
            GroupSampler(rows, natural, proxy.batch_size, seed=seed),
            proxy.shape,
            len(tok),
            proxy.steps,
            proxy.batch_size,
            lr=proxy.lr,
            seed=seed,
        )
        reference = group_losses(ref, {g: r[: 4 * proxy.batch_size] for g, r in rows.items()})
    if settings.method == "regmix":
        return _regmix(rows, target_rows, natural, settings, proxy, len(tok), seed)
    mixture = OnlineMixture(
        list(rows),
        eta=settings.eta,
        floor=settings.floor,
        smoothing=settings.smoothing,
        weights=np.array([natural[g] for g in rows]),
    )
    log: dict = {}

    def train(batches, steps, on_step):
        _, log["proxy"] = train_proxy(
            batches, proxy.shape, len(tok), steps, proxy.batch_size, lr=proxy.lr, seed=seed, on_step=on_step
        )

    learn_mixture(
        rows,
        target_rows,
        train,
        settings.method,
        proxy.steps,
        proxy.batch_size,
        settings.every,
        mixture,
        seed,
        reference_losses=reference,
    )
    p = log["proxy"]
    return {
        "groups": list(rows),
        "weights": mixture.average(),
        "final": mixture.current(),
        "natural": natural,
        "trajectory": mixture.trajectory,
        "proxy": {
            "tokens": p["tokens"],
            "seconds": round(p["seconds"], 2),
            "tokens_per_s": round(p["tokens_per_s"], 1),
            "first_loss": p["loss"][0],
            "final_loss": float(np.mean(p["loss"][-10:])),
        },
    }


def _regmix(rows: dict, target_rows, natural: dict, settings, proxy: ProxySettings, vocab: int, seed: int) -> dict:
    """RegMix's weights: short proxy runs on random mixtures, each scored on the target's rows."""
    from cogcore.valuation.mixture import GroupSampler, regmix_weights

    steps = settings.run_steps or max(1, proxy.steps // 4)
    tokens = 0

    def run(weights: dict[str, float]) -> float:
        nonlocal tokens
        model, log = train_proxy(
            GroupSampler(rows, weights, proxy.batch_size, seed=seed),
            proxy.shape,
            vocab,
            steps,
            proxy.batch_size,
            lr=proxy.lr,
            seed=seed,
        )
        tokens += log["tokens"]
        return rows_loss(model, target_rows)

    weights, runs = regmix_weights(list(rows), run, settings.runs, seed, settings.floor)
    groups = list(rows)
    return {
        "groups": groups,
        "weights": weights,
        "final": weights,
        "natural": natural,
        "trajectory": [[natural[g] for g in groups], [weights[g] for g in groups]],
        "runs": runs,
        "proxy": {"tokens": tokens, "runs": settings.runs, "steps_per_run": steps},
    }
