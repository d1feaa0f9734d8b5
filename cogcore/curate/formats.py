"""Per-format parsing for the curation readers (`cogcore.curate.readers` opens, decompresses and
decodes the files, then hands them here).

Document formats give one document per file: `parse_text` (txt, md, rst), `parse_html` (main text
by trafilatura, the extractor FineWeb and DataTrove use), `parse_pdf` (pypdf). Record formats give a
stream of rows: `json_rows`, `jsonl_rows`, `csv_rows` (csv, tsv), `parquet_rows` (pyarrow, one row
group at a time, only the columns asked for). A file that cannot be read as its format raises
`BadFile(reason)`; one bad row inside a record file is yielded as `BadRow(reason)` and the rest of
the file is still read: a line the readers refuse (`BadLine`: too long, not UTF-8), a line that is
not JSON, JSON nested too deep to parse, a csv row holding bytes that are not UTF-8. Reasons are
`snake_case_prefix: detail`.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEXT_FORMATS = ("txt", "md", "rst")
DOCUMENT_FORMATS = (*TEXT_FORMATS, "html", "pdf")
RECORD_FORMATS = ("json", "jsonl", "csv", "tsv", "parquet")
FORMATS = (*DOCUMENT_FORMATS, *RECORD_FORMATS)  # every name `format:` accepts besides "auto"
PARQUET_BATCH_ROWS = 1024
TITLE_SCAN_CHARS = 10_000  # a title is looked for near the top only, not through a whole book

_ADORNMENT = re.compile(r"([=\-~^\"'`#*+_:.])\1{2,}")  # rst heading under/overlines, md rules
_MD_H1 = re.compile(r"^# +(.+)$", re.MULTILINE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, decoded with surrogateescape
TOO_DEEP = "too_deeply_nested: JSON nested deeper than the parser's recursion limit"


class BadFile(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadLine(BadFile):
    """Raised by a line iterator for one line it will not give; iterating it again gives the next."""


@dataclass(frozen=True)
class BadRow:
    reason: str


@dataclass(frozen=True)
class Parsed:
    text: str
    title: str
    meta: dict


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


def parse_pdf(path: Path, max_text_bytes: int) -> Parsed:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadFile("bad_pdf: encrypted")
        pages = _pdf_pages(reader, max_text_bytes)
        title = str((reader.metadata.title if reader.metadata else None) or "").strip()
    except BadFile:
        raise
    except Exception as e:  # pypdf raises many types on a malformed file (PdfReadError, KeyError, ...)
        raise BadFile(f"bad_pdf: {type(e).__name__}: {str(e)[:80]}") from e
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise BadFile("no_text: the pdf has no extractable text (scanned images?)")
    return Parsed(text, title[:120] or title_from_text(text, path.stem), {"pages": len(pages)})


def _pdf_pages(reader, max_text_bytes: int) -> list[str]:
    # Page by page, so a pdf whose text outgrows the cap stops there. (pypdf caps each decompressed
    # stream itself, at 75 MB by default.)
    pages, size = [], 0
    for page in reader.pages:
        pages.append((page.extract_text() or "").strip())
        size += len(pages[-1].encode())
        if size > max_text_bytes:
            raise BadFile(
                f"document_too_large: its text passes {max_text_bytes} bytes (curate.limits.max_document_bytes)"
            )
    return pages


def json_rows(raw: str) -> list:
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadFile(TOO_DEEP) from None
    except ValueError as e:
        raise BadFile(f"bad_json: {str(e)[:80]}") from e
    if isinstance(data, dict):  # {id: record} or one record
        data = (
            [dict(v, id=v.get("id", k)) for k, v in data.items()]
            if data and all(isinstance(v, dict) for v in data.values())
            else [data]
        )
    if not isinstance(data, list):
        raise BadFile("bad_json: expected a list of records")
    return data


def jsonl_rows(lines: Iterator[str]) -> Iterator[object]:
    """A row per line that is not blank; `lines` may raise BadLine for one line and go on."""
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except BadLine as e:
            yield BadRow(e.reason)
            continue
        if line.strip():
            yield _jsonl_row(line)


def _jsonl_row(line: str) -> object:
    try:
        return json.loads(line)
    except RecursionError:  # the parser recurses per level: `[[[...` 100k deep would end the run
        return BadRow(TOO_DEEP)
    except ValueError as e:
        return BadRow(f"bad_jsonl: {str(e)[:80]}")


def csv_rows(lines: Iterator[str], text_field: str, delimiter: str, max_field_chars: int) -> Iterator[dict | BadRow]:
    """The rows of a csv/tsv file; `lines` may raise BadLine for one line and go on, and carry bytes
    that are not UTF-8 as surrogate escapes (so quotes and delimiters stay where they were), which
    make their row a BadRow. Rows are searched for them only once `lines.escaped` (lines decoded
    so, where `lines` counts them) is above 0: the search took a third of the reading time."""
    # Documents are long, past the csv module's default field limit (128 KiB); the limit is the
    # module's own, process-wide, so it is set again for every file.
    csv.field_size_limit(max_field_chars)
    reader = csv.DictReader(lines, delimiter=delimiter, strict=True)  # strict: a cut-off quote is an error
    try:
        fieldnames = reader.fieldnames
    except BadLine as e:
        raise BadFile(f"{e.reason} (the header line)") from None
    except csv.Error as e:
        raise BadFile(f"bad_csv: line {reader.line_num}: {e}") from e
    if fieldnames is None:
        raise BadFile("empty_file")
    if text_field not in fieldnames:
        raise BadFile(f"missing_text_field: {text_field} (columns: {', '.join(fieldnames)[:80]})")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except BadLine as e:  # the csv reader starts afresh at the next line
            yield BadRow(e.reason)
            continue
        except csv.Error as e:
            raise BadFile(_csv_error(e, reader.line_num, max_field_chars)) from e
        yield (_undecodable(row) or row) if getattr(lines, "escaped", 1) else row


def _csv_error(e: csv.Error, line: int, max_field_chars: int) -> str:
    if "field larger than field limit" in str(e):  # a quoted field spanning lines, over the cap
        return (
            f"record_too_large: line {line}: a field over {max_field_chars} characters "
            f"(curate.limits.max_record_bytes); the rest of the file cannot be told apart from it"
        )
    return f"bad_csv: line {line}: {e}"


def _undecodable(row: dict) -> BadRow | None:
    for key, value in row.items():
        if isinstance(value, str) and _ESCAPED_BYTE.search(value):
            return BadRow(f"bad_encoding: column {key} holds bytes that are not UTF-8")
    return None


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
