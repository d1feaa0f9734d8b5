"""Per-format parsing for the curation readers (`cogcore.curate.readers` opens, decompresses and
decodes the files, then hands them here).

Document formats give one document per file: `parse_text` (txt, md, rst), `parse_html` (main text
by trafilatura, the extractor FineWeb and DataTrove use), `parse_pdf` (pypdf). Record formats give a
stream of rows: `json_rows`, `jsonl_rows`, `csv_rows` (csv, tsv), `parquet_rows` (pyarrow, one row
group at a time, only the columns asked for). A file that cannot be read as its format raises
`BadFile(reason)`; one bad row inside a record file is yielded as `BadRow(reason)` and the rest of
the file is still read. Reasons are `snake_case_prefix: detail`.
"""

from __future__ import annotations

import csv
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

TEXT_FORMATS = ("txt", "md", "rst")
DOCUMENT_FORMATS = (*TEXT_FORMATS, "html", "pdf")
RECORD_FORMATS = ("json", "jsonl", "csv", "tsv", "parquet")
FORMATS = (*DOCUMENT_FORMATS, *RECORD_FORMATS)  # every name `format:` accepts besides "auto"
PARQUET_BATCH_ROWS = 1024
TITLE_SCAN_CHARS = 10_000  # a title is looked for near the top only, not through a whole book

_ADORNMENT = re.compile(r"([=\-~^\"'`#*+_:.])\1{2,}")  # rst heading under/overlines, md rules
_MD_H1 = re.compile(r"^# +(.+)$", re.MULTILINE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


class BadFile(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BadRow:
    reason: str


@dataclass(frozen=True)
class Parsed:
    text: str
    title: str
    meta: dict


def text_lines(stream: TextIO) -> Iterator[str]:
    """The stream's lines; a NUL byte means the file is binary, whatever its name says."""
    for line in stream:
        if "\x00" in line:
            raise BadFile("binary_content")
        yield line


def parse_text(raw: str, fmt: str, fallback_title: str) -> Parsed:
    front, body = _split_front_matter(raw) if fmt == "md" else ({}, raw)
    h1 = _MD_H1.search(body[:TITLE_SCAN_CHARS]) if fmt == "md" else None
    title = front.get("title") or (h1.group(1).strip() if h1 else "") or title_from_text(body, fallback_title)
    return Parsed(raw, title[:120], {})


def title_from_text(text: str, fallback: str) -> str:
    """The first line that is not blank nor a heading's under/overline, without markdown's `#`s."""
    for line in text[:TITLE_SCAN_CHARS].splitlines():
        line = line.strip()
        if line and not _ADORNMENT.fullmatch(line):
            return line.lstrip("#").strip()[:120] or fallback
    return fallback


def _split_front_matter(raw: str) -> tuple[dict, str]:
    """A markdown file's YAML front matter (`---` ... `---`) as flat `key: value` strings, and the body."""
    if not raw.startswith("---\n") or "\n---" not in raw[3:]:
        return {}, raw
    head, _, body = raw[4:].partition("\n---")
    pairs = (line.partition(":") for line in head.splitlines())
    front = {k.strip().lower(): v.strip().strip("\"'") for k, sep, v in pairs if sep and v.strip()}
    return front, body.partition("\n")[2]


def parse_html(raw: str, fallback_title: str) -> Parsed:
    import trafilatura

    # deduplicate=False: trafilatura's dedup keeps a cache across calls, which would make one page's
    # text depend on the pages read before it; duplicates are the dedup step's job.
    text = trafilatura.extract(raw, include_comments=False, include_tables=True, deduplicate=False)
    if not text or not text.strip():
        raise BadFile("no_text: no main text found in the html")
    match = _HTML_TITLE.search(raw)
    title = " ".join(html.unescape(match.group(1)).split())[:120] if match else ""
    return Parsed(text, title or title_from_text(text, fallback_title), {})


def parse_pdf(path: Path) -> Parsed:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadFile("bad_pdf: encrypted")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str((reader.metadata.title if reader.metadata else None) or "").strip()
    except BadFile:
        raise
    except Exception as e:  # pypdf raises many types on a malformed file (PdfReadError, KeyError, ...)
        raise BadFile(f"bad_pdf: {type(e).__name__}: {str(e)[:80]}") from e
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise BadFile("no_text: the pdf has no extractable text (scanned images?)")
    return Parsed(text, title[:120] or title_from_text(text, path.stem), {"pages": len(pages)})


def json_rows(raw: str) -> list:
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise BadFile(f"bad_json: {str(e)[:80]}") from e
    if isinstance(data, dict):  # {id: record} or one record
        data = [dict(v, id=v.get("id", k)) for k, v in data.items()] \
            if data and all(isinstance(v, dict) for v in data.values()) else [data]
    if not isinstance(data, list):
        raise BadFile("bad_json: expected a list of records")
    return data


def jsonl_rows(lines: Iterable[str]) -> Iterator[object]:
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            row = BadRow(f"bad_jsonl: {str(e)[:80]}")
        yield row


def csv_rows(lines: Iterable[str], text_field: str, delimiter: str) -> Iterator[dict]:
    # Documents are long; the csv module's default field limit (128 KiB) would reject them.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.DictReader(lines, delimiter=delimiter, strict=True)  # strict: a cut-off quote is an error
    try:
        if reader.fieldnames is None:
            raise BadFile("empty_file")
        if text_field not in reader.fieldnames:
            raise BadFile(f"missing_text_field: {text_field} (columns: {', '.join(reader.fieldnames)[:80]})")
        yield from reader
    except csv.Error as e:
        raise BadFile(f"bad_csv: line {reader.line_num}: {e}") from e


def parquet_rows(path: Path, text_field: str, columns: list[str]) -> Iterator[dict]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        if text_field not in names:
            raise BadFile(f"missing_text_field: {text_field} (columns: {', '.join(names)[:80]})")
        wanted = [c for c in dict.fromkeys([text_field, *columns]) if c in names]
        # One row group at a time: on Linux `iter_batches` was measured holding memory in proportion
        # to the whole file (196 MB peak for a 186 MB file; 26 MB this way); see apache/arrow#37139.
        for group in range(pf.num_row_groups):
            for batch in pf.read_row_group(group, columns=wanted).to_batches(PARQUET_BATCH_ROWS):
                yield from batch.to_pylist()
    except (pyarrow.ArrowException, OSError, ValueError) as e:  # ArrowIOError is an OSError
        raise BadFile(f"bad_parquet: {str(e)[:80]}") from e
