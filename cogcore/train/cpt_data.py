"""Continued-pretraining rows: curated documents tokenized, facts kept, masked or looked up, packed.

Three strategies for the facts of the training text (`facts.strategy` in the recipe):

- `keep`: the text is trained as is (the baseline).
- `mask`: every token whose characters overlap a fact span gets label IGNORE_INDEX: the model reads the
  fact (it is context for what follows) but is never trained to produce it, so the fact is not
  pushed into the weights (the idea of LMLM and Goldfish loss).
- `toolcall`: `mask`, plus a search call before the first fact of a sentence, with its result:

      The annual fee is
      <tool_call>
      {"name": "search", "arguments": {"query": "Fees The annual fee is per account"}}
      </tool_call>
      <tool_response>
      1. [fees | Fees] The annual fee is $200.00 per account.
      </tool_response> $200.00 per account.

  The call is the chat template's assistant markup (`<tool_call>\\n{json}\\n</tool_call>`, the JSON
  exactly as the template renders it) and the result its tool markup (`<tool_response>\\n...\\n
  </tool_response>`), without the turn tokens (`<|im_start|>`, `<|im_end|>`) that would break a
  document in two; tool-use SFT later wraps the same markup in turns. Call tokens are trained;
  result tokens are not (the runtime supplies them; LMLM masks its looked-up values the same
  way). The facts in the text that follows stay masked by default, so no fact token is ever a
  target; `train_copied_facts=True` trains them instead, as LMLM does (its loss masks only the
  values inside the lookup block), which teaches copying a value from the result.
  The query is the questions module's: the title and the sentence's words with the facts taken
  out, at most QUERY_WORDS of them, so CPT and SFT queries look alike. The result is the fact's
  own sentence as a one-passage `format_hits` answer: no index is needed here, and the data is
  deterministic. One call per sentence (its result answers every fact in it), at most
  `max_calls_per_doc` per document, spread evenly over the document's sentences with facts; facts
  in other sentences are masked without a call.

Each inserted block is tokenized on its own, as are the pieces of text around it, so the call
tokens are the same everywhere (and the same as the chat template's after a newline), and the
text's own tokens are what they would be without the call (the cut moves spaces after the block).

The document's text (a result's passage included) is neutralized as it is tokenized
(cogcore.untrusted_text): a document holding `<|im_end|>\n<|im_start|>system` or `</tool_response>`
trains those characters as plain-text tokens, never as turn or markup tokens, and reads as it will
in a search result at inference. Token offsets still index the text as written, so fact spans need
no re-mapping. Replay text is neutralized the same way.

Documents end with EOS and are packed into rows of `seq_len` tokens (no token is thrown away).
With `packing=True` (the recipe's default for train.cpt) each row carries `position_ids` that
restart at every document, so that a row's documents never attend to each other
(cogcore.train.packing); without it, rows are plain windows over the joined text. Replay text
(general text against forgetting, `encode_replay`) is trained whole, at a share of all tokens.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cogcore.questions import QUERY_WORDS
from cogcore.retrieval.hits import Hit
from cogcore.retrieval.tool import MAX_PASSAGE_CHARS, format_hits, shorten
from cogcore.train.packing import IGNORE_INDEX, RowPacker
from cogcore.untrusted_text import break_points, control_strings, insert_breaks, neutralize, to_original

STRATEGIES = ("keep", "mask", "toolcall")
DEFAULT_MAX_CALLS = 4
_WORD = re.compile(r"[A-Za-z]{2,}")  # the questions module's query words


@dataclass(frozen=True)
class PlannedCall:
    """A search call inserted into a document at character `at`, answering the facts in `spans`."""

    doc_id: str
    at: int
    spans: tuple[tuple[int, int], ...]
    query: str
    result: str

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "at": self.at,
            "spans": [list(s) for s in self.spans],
            "query": self.query,
            "result": self.result,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PlannedCall:
        return cls(d["doc_id"], d["at"], tuple(tuple(s) for s in d["spans"]), d["query"], d["result"])


@dataclass(frozen=True)
class Segment:
    """A piece of the rendered training text: document text (with fact spans relative to it), a call, or a result."""

    text: str
    role: str  # text | call | result
    spans: tuple[tuple[int, int], ...] = ()
    # The characters that come from the document (neutralized when tokenized); None: all of a text
    # segment, none of a call. A result's markup is ours, the passage inside it the document's.
    untrusted: tuple[int, int] | None = None


def call_markup(query: str) -> str:
    arguments = json.dumps({"query": query})  # what tools_data stores, and the template prints verbatim
    return f'<tool_call>\n{{"name": "search", "arguments": {arguments}}}\n</tool_call>'


_RESULT_OPEN, _RESULT_CLOSE = "\n<tool_response>\n", "\n</tool_response>"


def result_markup(result: str) -> str:
    return f"{_RESULT_OPEN}{result}{_RESULT_CLOSE}"


def search_query(context: str, fact_texts: Iterable[str], title: str = "") -> str:
    """The questions module's query: title and sentence words, facts taken out, QUERY_WORDS at most."""
    for text in sorted(set(fact_texts), key=len, reverse=True):
        context = context.replace(text, " ")
    return " ".join(_WORD.findall(f"{title} {context}")[:QUERY_WORDS])


def plan_calls(doc: dict, facts: list[dict], max_calls: int = DEFAULT_MAX_CALLS) -> list[PlannedCall]:
    """One call per sentence with facts, before its first fact; at most max_calls, evenly spread."""
    text, title = doc["text"], (doc.get("meta") or {}).get("title") or ""
    sentences: dict[int, list[dict]] = defaultdict(list)
    for f in sorted(facts, key=lambda f: f["start"]):
        sentences[_sentence_start(text, f)].append(f)
    groups = [sentences[s] for s in sorted(sentences)]
    if max_calls < len(groups):
        groups = [groups[i * len(groups) // max_calls] for i in range(max_calls)] if max_calls > 0 else []
    calls = []
    for group in groups:
        context = group[0].get("context") or text[max(0, group[0]["start"] - 200) : group[-1]["end"] + 200]
        passage = _passage(context, [f["text"] for f in group])
        answered = tuple((f["start"], f["end"]) for f in group if f["text"] in passage)
        query = search_query(context, [f["text"] for f in group], title)
        if not answered or not query:
            continue  # the result would not hold the fact, or there is nothing to ask with: mask only
        hit = Hit(
            score=1.0,
            chunk_id=doc["id"],
            doc_id=doc["id"],
            source=doc.get("source", ""),
            title=title,
            section="",
            start=0,
            end=0,
            text=passage,
        )
        calls.append(PlannedCall(doc["id"], answered[0][0], answered, query, format_hits([hit])))
    return calls


def _sentence_start(text: str, fact: dict) -> int:
    context = fact.get("context") or ""
    found = text.find(context, max(0, fact["end"] - len(context))) if context else -1
    return found if 0 <= found <= fact["start"] else fact["start"]


def _passage(context: str, fact_texts: list[str], max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """The sentence as the search tool would show it; a window around the facts where it is too long."""
    passage = shorten(context, max_chars)
    if all(t in passage for t in fact_texts):
        return passage
    first = min((context.find(t) for t in fact_texts if t in context), default=0)
    start = context.rfind(" ", 0, max(0, first - max_chars // 4)) + 1
    return shorten(context[start:], max_chars)


def render_segments(
    text: str, spans: list[tuple[int, int]], calls: Iterable[PlannedCall] = (), train_copied_facts: bool = False
) -> list[Segment]:
    """The document as training text: pieces of text (fact spans relative to each), calls and results.

    With `train_copied_facts`, the facts a call answers are trained where the text repeats them
    after the result (LMLM's choice: they are copied from the result, not recalled)."""
    placed, prev = [], 0
    for call in sorted(calls, key=lambda c: c.at):
        # Spaces before the call move after it, so the text keeps its own tokens (" $200" stays " $200").
        cut = len(text[: call.at].rstrip(" \t"))
        if cut >= prev:
            placed.append((cut, call))
            prev = cut
    if train_copied_facts:
        answered = {span for _, call in placed for span in call.spans}
        spans = [s for s in spans if tuple(s) not in answered]
    spans = sorted(spans)
    out, prev = [], 0
    for cut, call in placed:
        out.append(_text_segment(text, prev, cut, spans))
        newline = "" if cut == 0 or text[cut - 1] == "\n" else "\n"
        out += [Segment(newline + call_markup(call.query), "call"), result_segment(call.result)]
        prev = cut
    out.append(_text_segment(text, prev, len(text), spans))
    return [s for s in out if s.text]


def result_segment(result: str) -> Segment:
    return Segment(result_markup(result), "result", untrusted=(len(_RESULT_OPEN), len(_RESULT_OPEN) + len(result)))


def _text_segment(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> Segment:
    local = tuple((max(s, start) - start, min(e, end) - start) for s, e in spans if s < end and e > start)
    return Segment(text[start:end], "text", local)


def fact_label_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """True for each token whose character range overlaps any span (spans sorted by start)."""
    mask, j = [], 0
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        k, hit = j, False
        while k < len(spans) and spans[k][0] < end:
            if spans[k][1] > start and end > start:
                hit = True
                break
            k += 1
        mask.append(hit)
    return mask


@dataclass(frozen=True)
class EncodedDocument:
    """A document as the model sees it: `text` rendered (calls included), its tokens, their labels,
    character offsets into `text`, and each token's role (text | call | result)."""

    text: str
    ids: list[int]
    labels: list[int]
    offsets: list[tuple[int, int]]
    roles: list[str]


def encode_segments(tokenizer, segments: list[Segment], controls: frozenset[str] | None = None) -> EncodedDocument:
    """Tokenize each segment on its own: call tokens trained, results and facts IGNORE_INDEX.

    The document's characters are neutralized as they are tokenized (`controls`: default the
    tokenizer's `control_strings`), so a document's `<|im_start|>` or `</tool_response>` becomes
    plain-text tokens; offsets still index the text as rendered, so fact spans stay valid."""
    controls = control_strings(tokenizer) if controls is None else controls
    encoded = encode_untrusted(tokenizer, [s.text for s in segments], [_untrusted(s) for s in segments], controls)
    ids, labels, offsets, roles, base = [], [], [], [], 0
    for seg, (seg_ids, seg_offsets) in zip(segments, encoded):
        if seg.role == "result":
            seg_labels = [IGNORE_INDEX] * len(seg_ids)
        elif seg.role == "text" and seg.spans:
            masked = fact_label_mask(seg_offsets, sorted(seg.spans))
            seg_labels = [IGNORE_INDEX if m else t for t, m in zip(seg_ids, masked)]
        else:
            seg_labels = list(seg_ids)
        ids += seg_ids
        labels += seg_labels
        offsets += [(base + s, base + e) for s, e in seg_offsets]
        roles += [seg.role] * len(seg_ids)
        base += len(seg.text)
    return EncodedDocument("".join(s.text for s in segments), ids, labels, offsets, roles)


def _untrusted(seg: Segment) -> tuple[int, int] | None:
    if seg.untrusted is not None:
        return seg.untrusted
    return (0, len(seg.text)) if seg.role == "text" else None


def encode_untrusted(
    tokenizer, texts: list[str], untrusted: list[tuple[int, int] | None], controls: frozenset[str]
) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """(ids, offsets) of each text, tokenized with its `untrusted` range neutralized; offsets index
    the text as given (a token of an inserted BREAK has an empty range)."""
    if not texts:
        return []
    points = [
        [] if r is None else [r[0] + p for p in break_points(t[r[0] : r[1]], controls)]
        for t, r in zip(texts, untrusted)
    ]
    enc = tokenizer(
        [insert_breaks(t, p) for t, p in zip(texts, points)], add_special_tokens=False, return_offsets_mapping=True
    )
    out = []
    for p, ids, offsets in zip(points, enc["input_ids"], enc["offset_mapping"]):
        back = to_original(p)
        out.append((list(ids), [(back(s), back(e)) for s, e in offsets]))
    return out


def encode_document(
    tokenizer,
    text: str,
    spans: list[tuple[int, int]],
    strategy: str,
    calls: Iterable[PlannedCall] = (),
    train_copied_facts: bool = False,
    controls: frozenset[str] | None = None,
) -> EncodedDocument:
    """One document under a strategy; `calls` are used by `toolcall` only (without any, it is `mask`).
    The document is neutralized as it is tokenized (see encode_segments)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown facts strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    calls = list(calls) if strategy == "toolcall" else []
    spans = [] if strategy == "keep" else spans
    return encode_segments(tokenizer, render_segments(text, spans, calls, train_copied_facts), controls)


def tokenize_document(
    tokenizer,
    text: str,
    spans: list[tuple[int, int]],
    strategy: str,
    calls: Iterable[PlannedCall] = (),
    train_copied_facts: bool = False,
) -> tuple[list[int], list[int]]:
    """(ids, labels) of one document under a strategy; see encode_document."""
    enc = encode_document(tokenizer, text, spans, strategy, calls, train_copied_facts)
    return enc.ids, enc.labels


def build_cpt_rows(
    tokenizer,
    docs: Iterable[dict],
    facts: Iterable[dict],
    seq_len: int,
    strategy: str = "mask",
    max_calls_per_doc: int = DEFAULT_MAX_CALLS,
    calls: dict[str, list[PlannedCall]] | None = None,
    train_copied_facts: bool = False,
    packing: bool = False,
) -> tuple[list[dict], dict]:
    """Tokenize, mask (and insert calls), pack; return rows of {input_ids, labels} and counts for the report.

    With `toolcall`, `calls` (doc id -> calls, e.g. after the Toolformer filter) replaces the
    calls planned here; documents missing from it get none. With `packing`, rows also carry
    `position_ids` that keep their documents apart (see cogcore.train.packing).
    """
    counts: dict = {}
    encoded = encode_documents(tokenizer, docs, facts, strategy, counts, max_calls_per_doc, calls, train_copied_facts)
    rows = list(pack_rows(encoded, seq_len, packing, counts))
    return rows, counts


def encode_documents(
    tokenizer,
    docs: Iterable[dict],
    facts: Iterable[dict],
    strategy: str,
    counts: dict,
    max_calls_per_doc: int = DEFAULT_MAX_CALLS,
    calls: dict[str, list[PlannedCall]] | None = None,
    train_copied_facts: bool = False,
    progress: bool = False,
) -> Iterator[tuple[list[int], list[int]]]:
    """(ids, labels) of each document, EOS appended (and trained: the model must learn where documents
    end); `counts` is filled as documents go by (docs, tokens, masked_tokens; calls with toolcall)."""
    settings = EncodeSettings(strategy, max_calls_per_doc, train_copied_facts)
    by_doc = defaultdict(list)
    for f in facts:
        by_doc[f["doc_id"]].append(f)
    records = (
        (doc, by_doc.get(doc["id"], []), None if calls is None else calls.get(doc["id"], []))
        for doc in _progress(docs, progress, "tokenizing", "doc")
    )
    counts.update(empty_counts(settings))
    yield from encode_records(tokenizer, records, settings, counts)


@dataclass(frozen=True)
class EncodeSettings:
    """How a document becomes training tokens: the facts strategy and its options (the recipe's facts section)."""

    strategy: str
    max_calls_per_doc: int = DEFAULT_MAX_CALLS
    train_copied_facts: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown facts strategy {self.strategy!r}; allowed: {', '.join(STRATEGIES)}")


# A document to encode: the curated record, its facts, and its calls (None: planned here under
# toolcall; a list, even empty: the Toolformer filter's choice).
Record = tuple[dict, list[dict], "list[PlannedCall] | None"]


def empty_counts(settings: EncodeSettings) -> dict:
    """The counts `encode_records` adds to, at zero."""
    counts = {"docs": 0, "tokens": 0, "masked_tokens": 0, "strategy": settings.strategy}
    if settings.strategy == "toolcall":
        counts.update(calls=0, call_tokens=0, result_tokens=0)
    return counts


def encode_records(
    tokenizer, records: Iterable[Record], settings: EncodeSettings, counts: dict, controls: frozenset[str] | None = None
) -> Iterator[tuple[list[int], list[int]]]:
    """(ids, labels) of each record's document, EOS appended; adds to `counts` (see `empty_counts`).
    The one encoder of documents: in this process, in a pool of processes, or on Ray Data."""
    controls = control_strings(tokenizer) if controls is None else controls
    toolcall = settings.strategy == "toolcall"
    for doc, doc_facts, doc_calls in records:
        spans = [(f["start"], f["end"]) for f in doc_facts]
        if toolcall and doc_calls is None:
            doc_calls = plan_calls(doc, doc_facts, settings.max_calls_per_doc)
        enc = encode_document(
            tokenizer, doc["text"], spans, settings.strategy, doc_calls or (), settings.train_copied_facts, controls
        )
        if toolcall:
            counts["calls"] += len(doc_calls)
            counts["call_tokens"] += enc.roles.count("call")
            counts["result_tokens"] += enc.roles.count("result")
        counts["docs"] += 1
        counts["tokens"] += len(enc.ids) + 1
        counts["masked_tokens"] += enc.labels.count(IGNORE_INDEX)
        yield enc.ids + [tokenizer.eos_token_id], enc.labels + [tokenizer.eos_token_id]


def encode_replay(
    tokenizer, docs: Iterable[dict], target_tokens: int, counts: dict, progress: bool = False
) -> Iterator[tuple[list[int], list[int]]]:
    """General text, every token trained (no fact masking), until `target_tokens` (EOS included)
    are reached; counts `replay_docs` and `replay_tokens`. A source too small gives what it has."""
    counts.update(replay_docs=0, replay_tokens=0, replay_target_tokens=target_tokens)
    if target_tokens <= 0:
        return
    bar = _progress(None, progress, "replay text", "tok", total=target_tokens)
    controls = control_strings(tokenizer)  # general text is no more trusted than the domain's
    for doc in docs:
        ids = tokenizer(neutralize(doc["text"], controls), add_special_tokens=False)["input_ids"]
        ids += [tokenizer.eos_token_id]
        ids = ids[: target_tokens - counts["replay_tokens"]]
        counts["replay_docs"] += 1
        counts["replay_tokens"] += len(ids)
        bar.update(len(ids))
        yield ids, list(ids)
        if counts["replay_tokens"] >= target_tokens:
            break
    bar.close()


def with_replay(
    encoded: Iterable[tuple[list[int], list[int]]],
    tokenizer,
    replay_docs: Iterable[dict],
    ratio: float,
    counts: dict,
    progress: bool = False,
) -> Iterator[tuple[list[int], list[int]]]:
    """The domain's encoded documents, then replay text making `ratio` of all tokens. The rows are
    shuffled in training, so batches mix both; the domain count is known only once it is read."""
    yield from encoded
    yield from encode_replay(tokenizer, replay_docs, replay_target(counts["tokens"], ratio), counts, progress)


def replay_target(domain_tokens: int, ratio: float) -> int:
    """Replay tokens that make `ratio` of all training tokens: r / (1 - r) times the domain's."""
    return round(domain_tokens * ratio / (1 - ratio)) if ratio > 0 else 0


def pack_rows(
    encoded: Iterable[tuple[list[int], list[int]]], seq_len: int, separate: bool, counts: dict
) -> Iterator[dict]:
    """Rows of `seq_len` tokens (see cogcore.train.packing); rows with nothing to predict are
    dropped, since an all-masked row (or a 1-token tail) would give a NaN loss. Counts `rows`."""
    packer = RowPacker(seq_len, separate)
    counts["rows"] = 0
    for ids, labels in encoded:
        for row in packer.add(ids, labels):
            if _trainable(row):
                counts["rows"] += 1
                yield row
    for row in packer.finish():
        if _trainable(row):
            counts["rows"] += 1
            yield row


def _trainable(row: dict) -> bool:
    return any(t != IGNORE_INDEX for t in row["labels"][1:])


def _progress(items, enabled: bool, desc: str, unit: str, total: int | None = None):
    from tqdm.auto import tqdm

    if total is None and hasattr(items, "__len__"):
        total = len(items)
    return tqdm(items, desc=desc, unit=unit, total=total, disable=not enabled, unit_scale=unit == "tok")
