"""Split a document's text into overlapping chunks that keep their markdown section.

A chunk is a plain dict that points back into its document, so every search hit can be traced to
the exact characters it came from:

    {"chunk_id": "doc-7#2", "doc_id": "doc-7", "source": ..., "title": ..., "section": "Fees",
     "start": 812, "end": 1590, "text": doc["text"][812:1590]}

Chunks end at the best boundary found near `chunk_chars` (a markdown heading, then a blank line,
a line break, a sentence end, any whitespace, and only as a last resort mid-word) and the next
chunk starts `overlap` characters earlier, at a word start. A chunk never runs across a heading:
the heading starts a new chunk with no overlap, so each chunk's section is the one it is about.
Pure python and deterministic; used by `cogcore.retrieval.index.build_index`:

    chunks = chunk_document({"id": "a", "text": "# Fees\\nThe fee is 5 USD.", "source": "a.md",
                             "meta": {"title": "Fees"}}, chunk_chars=800, overlap=100)

What gets embedded and BM25-indexed is `searchable_text(chunk)`: the chunk under a header line of
its document title and section. A chunk deep in a document rarely names what it is about ("The
daily limit is $10,000." -- of which account?); in a corpus of look-alike documents the header is
what tells them apart. A hit's `text` stays the bare chunk, exactly the document's characters.
"""

from __future__ import annotations

import bisect
import re

_HEADING = re.compile(r"[ ]{0,3}(#{1,6})[ \t]+(\S.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"[ ]{0,3}(```|~~~)")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
_OVERLAP_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s|\n")
# Ordered from the best place to end a chunk to the worst.
_SEPARATORS = ("\n\n", "\n")


def find_headings(text: str) -> list[tuple[int, str]]:
    """Offsets of markdown heading lines and their text ("## Fees ##" -> "Fees").

    Lines inside fenced code blocks are skipped: a "# comment" in code is not a heading.
    """
    headings, in_fence, offset = [], False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _HEADING.match(line.rstrip("\r\n"))):
            headings.append((offset, m.group(2)))
        offset += len(line)
    return headings


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _overlap_start(text: str, i: int, limit: int) -> int:
    """Where a chunk that overlaps its predecessor starts: the first sentence or line start in
    text[i:limit], else the first word start, so that chunks read from a clean boundary."""
    j = max(i - 1, 0)  # so that a boundary just before i counts
    boundary = _OVERLAP_BOUNDARY.search(text, j, limit)
    if boundary and boundary.end() < limit:
        return _skip_space(text, boundary.end())
    if 0 < i < len(text) and not text[i - 1].isspace():
        while i < limit and not text[i].isspace():
            i += 1
    return _skip_space(text, min(i, limit))


def _has_body(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] holds more than heading lines (a lone heading is a useless chunk)."""
    return any(line.strip() and not _HEADING.match(line) for line in text[start:end].splitlines())


def _heading_break(text: str, start: int, hard_end: int, heading_offsets: list[int]) -> int | None:
    i = bisect.bisect_right(heading_offsets, start)
    for h in heading_offsets[i:]:
        if h > hard_end:
            break
        if _has_body(text, start, h):
            return h
    return None


def _soft_break(text: str, start: int, hard_end: int, chunk_chars: int) -> int:
    """The best boundary in the second half of the window, or a hard cut at hard_end."""
    lo = start + chunk_chars // 2
    window = text[lo:hard_end]
    for sep in _SEPARATORS:
        at = window.rfind(sep)
        if at > 0:
            return lo + at
    sentence_ends = list(_SENTENCE_END.finditer(window))
    if sentence_ends:
        return lo + sentence_ends[-1].end()
    spaces = [m.start() for m in re.finditer(r"\s", window)]
    if spaces and spaces[-1] > 0:
        return lo + spaces[-1]
    return hard_end


def split_spans(text: str, chunk_chars: int = 800, overlap: int = 100) -> list[tuple[int, int]]:
    """(start, end) character spans of the chunks of text; no span starts or ends in whitespace."""
    if chunk_chars < 16:
        raise ValueError(f"chunk_chars must be >= 16, got {chunk_chars}")
    if not 0 <= overlap < chunk_chars // 2:
        raise ValueError(f"overlap must be in [0, chunk_chars // 2), got {overlap}")
    heading_offsets = [offset for offset, _ in find_headings(text)]
    spans: list[tuple[int, int]] = []
    start = _skip_space(text, 0)
    while start < len(text):
        hard_end = min(start + chunk_chars, len(text))
        at_heading = _heading_break(text, start, hard_end, heading_offsets)
        if at_heading is not None:
            end = at_heading
        elif hard_end == len(text):
            end = hard_end
        else:
            end = _soft_break(text, start, hard_end, chunk_chars)
        trimmed = end
        while trimmed > start and text[trimmed - 1].isspace():
            trimmed -= 1
        spans.append((start, trimmed))
        if end >= len(text):
            break
        # A new section starts clean; elsewhere step back by `overlap` so a fact cut by the
        # boundary is whole in one of the two chunks.
        nxt = end if at_heading is not None else max(end - overlap, start + 1)
        start = _overlap_start(text, nxt, end) if nxt < end else _skip_space(text, end)
    return spans


def searchable_text(chunk: dict, header: bool = True) -> str:
    """The text that represents a chunk in the index: "Title / Section" on a first line (the
    section left out when the chunk opens with its heading; the document's product first when the
    title does not name it), then the chunk."""
    if not header:
        return chunk["text"]
    title, section, text = chunk["title"], chunk["section"], chunk["text"]
    if section and _heading_text(text) == section:
        section = ""
    # a product the title does not name (cogcore.retrieval.products) leads the header
    head = " / ".join(p for p in (chunk.get("product"), title, section) if p)
    return f"{head}\n{text}" if head else text


def _heading_text(text: str) -> str:
    m = _HEADING.match(text.split("\n", 1)[0])
    return m.group(2) if m else ""


def chunk_document(doc: dict, chunk_chars: int = 800, overlap: int = 100) -> list[dict]:
    """Chunk records of one curated document ({"id", "text", "source", "meta": {"title"}})."""
    text = doc["text"]
    title = (doc.get("meta") or {}).get("title") or ""
    headings = find_headings(text)
    heading_offsets = [offset for offset, _ in headings]
    chunks = []
    for i, (start, end) in enumerate(split_spans(text, chunk_chars, overlap)):
        h = bisect.bisect_right(heading_offsets, start) - 1
        chunks.append(
            {
                "chunk_id": f"{doc['id']}#{i}",
                "doc_id": doc["id"],
                "source": doc.get("source", ""),
                "title": title,
                "section": headings[h][1] if h >= 0 else "",
                "start": start,
                "end": end,
                "text": text[start:end],
            }
        )
    return chunks
