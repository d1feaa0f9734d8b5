"""Canaries: random secrets planted in the training text, and how much the trained model exposes them.

Carlini et al., "The Secret Sharer" (USENIX Security 2019): plant a sentence holding a random
secret ("The vault access code for branch QJRV is 482913.") in the training documents, train,
then rank the true secret among all |R| possible ones (10^6 for 6 digits) by the model's
log-perplexity of the whole sentence. Exposure = log2 |R| - log2 rank: about 1 for a secret the
model knows nothing about, log2 |R| (19.9 for 6 digits) for one it ranks first. Canaries measure
what the facts strategies promise: under `mask` or `toolcall` the secret (a `number` fact) should
stay as unexposed as a canary that was never planted.

Scoring all 10^6 candidates is too slow on a CPU, so exposure is estimated from a uniform sample
of `candidates` secrets (default 1,000), both ways the paper does:

- `exposure`: the rank extrapolated from the sample: rank ~ 1 + (|R| - 1) * k / m, where k of the
  m sampled candidates score at least as well as the true secret. Resolution is log2 m (~10 bits
  for m = 1,000): k = 0 gives the maximum, log2 |R|.
- `exposure_fit`: -log2 P(X <= x), where x is the true secret's log-perplexity and X follows a
  skew-normal fitted to the sampled candidates' (section 4.3 of the paper); it reads beyond log2 m
  where k = 0, and is capped at log2 |R|.

    canaries = make_canaries(8, seed=0)            # plant the first 4, keep 4 as controls
    docs, placements = plant(train_docs, canaries[:4], seed=0, repeats=2)
    scores = [exposure(model, tokenizer, c) for c in canaries]

train.cpt records what it planted in train/cpt/canaries.json (`CanaryRecord`), which the eval stage
scores:

    record = CanaryRecord.read(run / "train/cpt/canaries.json")   # None when nothing was planted
"""

from __future__ import annotations

import math
import random
import string
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from cogcore.io import write_json_atomic
from cogcore.stage_files import RunFileError, check_fields, read_json_object, rerun

DEFAULT_TEMPLATE = "The vault access code for branch {name} is {secret}."
DEFAULT_DIGITS = 6
DEFAULT_CANDIDATES = 1000
CANARIES_FILE = "canaries.json"
CANARY_KEYS = ("id", "template", "secret", "text")  # a canary, as make_canaries makes it
PLACEMENT_KEYS = ("canary_id", "doc_id", "start", "end", "at")  # where plant put one


@dataclass(frozen=True)
class CanaryRecord:
    """train/cpt/canaries.json: the canaries train.cpt planted and those it kept back, for the eval
    stage to score on the trained and the base model."""

    planted: list[dict]  # canaries in the training text, each {id, template, secret, text}
    controls: list[dict]  # made alike but never planted: the exposure of a secret the model never saw
    repeats: int  # training documents each planted canary went into
    placements: list[dict]  # {canary_id, doc_id, start, end, at}: where, in the trained texts
    secret_is_fact: dict[str, bool]  # per planted canary: the recipe's fact detector found its secret
    strategy: str  # facts.strategy the canaries were trained under

    def groups(self) -> dict[str, list[dict]]:
        """{"planted": [...], "controls": [...]}: what exposure is summarized over."""
        return {"planted": self.planted, "controls": self.controls}

    def max_exposure(self) -> float | None:
        """log2 of the secret space: the exposure of a secret ranked first."""
        canaries = self.planted + self.controls
        return math.log2(10 ** len(canaries[0]["secret"])) if canaries else None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path = CANARIES_FILE) -> CanaryRecord:
        check_fields(cls, data, where=where, stage="train.cpt")
        for group, keys in (("planted", CANARY_KEYS), ("controls", CANARY_KEYS), ("placements", PLACEMENT_KEYS)):
            if any(not isinstance(item, dict) or set(item) != set(keys) for item in data[group]):
                raise RunFileError(
                    f"{where}: every entry of {group} must hold {', '.join(keys)}: written by "
                    f"another version of cogcore, or damaged; {rerun('train.cpt')}"
                )
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> CanaryRecord | None:
        """The record in `path`; None when it does not exist (no canaries were planted)."""
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, where=path)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


def make_canaries(n: int, seed: int = 0, digits: int = DEFAULT_DIGITS, template: str = DEFAULT_TEMPLATE) -> list[dict]:
    """n canaries {id, template, secret, text}, distinct in name and secret; `template` keeps `{secret}`."""
    if "{secret}" not in template:
        raise ValueError("canary template must contain {secret}")
    rng = random.Random(seed)
    names, secrets, out = set(), set(), []
    while len(out) < n:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        secret = f"{rng.randrange(10**digits):0{digits}d}"
        if name in names or secret in secrets:
            continue
        names.add(name)
        secrets.add(secret)
        filled = template.replace("{name}", name)
        out.append(
            {
                "id": f"canary-{len(out):03d}",
                "template": filled,
                "secret": secret,
                "text": filled.replace("{secret}", secret),
            }
        )
    return out


def plant(docs: list[dict], canaries: list[dict], seed: int = 0, repeats: int = 1) -> tuple[list[dict], list[dict]]:
    """Insert each canary's sentence, as its own line, into `repeats` distinct documents chosen at
    random; return the new documents (copies; `meta.canaries` lists what each holds) and the
    placements [{canary_id, doc_id, start, end}] in the new texts (`at`: where in the old text)."""
    if not docs:
        raise ValueError("no documents to plant canaries in")
    rng = random.Random(seed)
    inserts: dict[int, list[tuple[int, str, str]]] = defaultdict(list)  # doc index -> (position, canary id, line)
    for canary in canaries:
        for i in rng.sample(range(len(docs)), min(repeats, len(docs))):
            text = docs[i]["text"]
            line_starts = [0] + [p + 1 for p, c in enumerate(text) if c == "\n"]
            inserts[i].append((rng.choice(line_starts), canary["id"], canary["text"]))
    out, placements = list(docs), []
    for i, items in sorted(inserts.items()):
        doc, text = docs[i], docs[i]["text"]
        pieces, prev, length = [], 0, 0
        for pos, canary_id, line in sorted(items):
            pieces.append(text[prev:pos])
            length += pos - prev
            if pos == len(text) and text and not text.endswith("\n"):
                pieces.append("\n")
                length += 1
            placements.append(
                {"canary_id": canary_id, "doc_id": doc["id"], "start": length, "end": length + len(line), "at": pos}
            )
            pieces.append(line + "\n")
            length += len(line) + 1
            prev = pos
        pieces.append(text[prev:])
        meta = {**doc.get("meta", {}), "canaries": sorted(c for _, c, _ in items)}
        out[i] = {**doc, "text": "".join(pieces), "meta": meta}
    return out, placements


def plant_in_training(
    docs: list[dict],
    facts: list[dict],
    detector,
    count: int,
    controls: int,
    repeats: int,
    strategy: str,
    seed: int = 0,
    digits: int = DEFAULT_DIGITS,
) -> tuple[list[dict], list[dict], CanaryRecord]:
    """Plant `count` canaries in training documents and keep `controls` unplanted; return the new
    documents, their facts (the curated ones moved to the new offsets, plus what `detector` finds in
    each canary line, so every strategy treats a canary's secret as the fact it is) and the record
    the eval stage scores (`strategy`: the facts strategy they will be trained under)."""
    canaries = make_canaries(count + controls, seed=seed, digits=digits)
    planted, unplanted = canaries[:count], canaries[count:]
    new_docs, placements = plant(docs, planted, seed=seed, repeats=repeats)
    found, secret_is_fact = _canary_facts(planted, placements, detector)
    out_facts = sorted(_moved_facts(facts, placements) + found, key=lambda f: (f["doc_id"], f["start"]))
    record = CanaryRecord(
        planted=planted,
        controls=unplanted,
        repeats=repeats,
        placements=placements,
        secret_is_fact=secret_is_fact,
        strategy=strategy,
    )
    return new_docs, out_facts, record


def _moved_facts(facts: list[dict], placements: list[dict]) -> list[dict]:
    """The curated facts at their offsets in the planted texts. A canary line and its newline go
    in at a line start `at`; a fact at or after it moves by that length. (A line put at the very
    end of a text moves no fact.)"""
    by_doc = defaultdict(list)
    for p in placements:
        by_doc[p["doc_id"]].append(p)
    out = []
    for f in facts:
        shift = sum(p["end"] + 1 - p["start"] for p in by_doc.get(f["doc_id"], ()) if p["at"] <= f["start"])
        out.append(
            f
            if not shift
            else {
                **f,
                "id": f"{f['doc_id']}:{f['start'] + shift}",
                "start": f["start"] + shift,
                "end": f["end"] + shift,
            }
        )
    return out


def _canary_facts(planted: list[dict], placements: list[dict], detector) -> tuple[list[dict], dict[str, bool]]:
    """What `detector` finds in each planted canary line, as facts of its document (marked with
    `canary_id`), and per canary whether the secret was among them at every placement."""
    by_id = {c["id"]: c for c in planted}
    facts, secret_is_fact = [], {}
    for p in placements:
        canary = by_id[p["canary_id"]]
        found = detector.detect({"id": p["doc_id"], "text": canary["text"]})
        facts += [
            {
                **f,
                "id": f"{p['doc_id']}:{p['start'] + f['start']}",
                "start": p["start"] + f["start"],
                "end": p["start"] + f["end"],
                "canary_id": p["canary_id"],
            }
            for f in found
        ]
        at = canary["text"].rindex(canary["secret"])
        covered = any(f["start"] <= at < f["end"] for f in found)
        secret_is_fact[p["canary_id"]] = secret_is_fact.get(p["canary_id"], True) and covered
    return facts, secret_is_fact


def exposure(
    model,
    tokenizer,
    canary: dict,
    candidates: int | list[str] = DEFAULT_CANDIDATES,
    seed: int = 0,
    batch_size: int = 64,
) -> dict:
    """Exposure of a canary's secret (estimated; see the module docstring) and the figures behind it."""
    from cogcore.token_loss import token_nll

    digits = len(canary["secret"])
    space = 10**digits
    if isinstance(candidates, int):
        rng = random.Random(seed)
        draws = rng.sample(range(space), min(candidates + 1, space))
        others = [f"{x:0{digits}d}" for x in draws if f"{x:0{digits}d}" != canary["secret"]][:candidates]
    else:
        others = [c for c in candidates if c != canary["secret"]]
    texts = [canary["template"].replace("{secret}", s) for s in [canary["secret"], *others]]
    ids = [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    # log-perplexity in bits of the whole sentence (its first token is the same for every candidate)
    bits = [nats / math.log(2) for nats in token_nll(model, ids, [[True] * len(x) for x in ids], batch_size)]
    true, sampled = bits[0], bits[1:]
    beaten_by = sum(b <= true for b in sampled)
    rank = 1 + (space - 1) * beaten_by / len(sampled)
    return {
        "canary_id": canary["id"],
        "exposure": math.log2(space) - math.log2(rank),
        "exposure_fit": _fitted_exposure(true, sampled, math.log2(space)),
        "beaten_by": beaten_by,
        "candidates": len(sampled),
        "space": space,
        "log_perplexity": true,
        "candidate_log_perplexity_mean": sum(sampled) / len(sampled),
    }


def _fitted_exposure(true: float, sampled: list[float], cap: float) -> float:
    from scipy.stats import skewnorm

    params = skewnorm.fit(sampled)
    log_p = skewnorm.logcdf(true, *params) / math.log(2)
    return float(min(max(-log_p, 0.0), cap))
