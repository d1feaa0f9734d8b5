"""Readers: turn source files into document records `{id, text, source, meta}`.

Formats (`FORMATS`): txt, md, rst, html, pdf (one document per file) and json, jsonl, csv, tsv,
parquet (one document per record; `text_field` names the text, `id_field` / `title_field` /
`meta_fields` the rest). Text formats may be compressed: `.gz` or `.zst`/`.zstd`, e.g.
`docs.jsonl.zst`, `page.html.gz`. jsonl, csv and parquet are streamed, so memory stays bounded
whatever the file's size; a json, txt, md, rst or html file (and a pdf's text) is read whole.

Files: those `cogcore.resources.walk_files` names - the file, every file under a folder, or a
glob's matches, names starting with "." skipped. A link whose target lies outside the source's
root is not followed unless the source sets `follow_links`; it is reported (`link_outside_root`),
like a broken link and a folder that cannot be listed (`unreadable_folder`).

Encoding: UTF-8 (a leading byte-order mark dropped). A jsonl line or csv row holding bytes that are
not UTF-8 is skipped as `bad_encoding` and the rest of its file is read. A txt, md, rst or html file
that is not UTF-8 is decoded as Windows-1252 (cp1252: Latin-1's printable characters and more; what
most "Latin-1" text and web pages really are) and kept, marked `meta.encoding = "cp1252"`; curate
lists it in stats.json's `recoded`. A json file must be UTF-8 (RFC 8259); one that is not is reported.

Caps (`ReadLimits`, the recipe's `curate.limits`), against decompression bombs and runaway lines:
bytes decompressed from one file, bytes of a document read whole, bytes of one record. Lines are
read at most the record cap at a time, so a runaway line is never held whole. A record over its cap
is skipped and the rest of the file read - save in csv, for a quoted field that spans lines: past
the cap in all it ends the file there, and with one line over the cap the rest of its record may be
read as rows, since where such a field ends cannot be told; a document over its cap is skipped;
a file over its cap yields the records before the cap, then its `Unreadable`. JSON nested past the
parser's recursion limit, or a kept field (id, title, meta) nested over `MAX_META_DEPTH`, is one
skipped record, or file (`too_deeply_nested`).

A file that cannot be read (corrupt or truncated, not UTF-8 where it must be, binary, empty, not
the format it claims, no text column, over a cap) is skipped and reported as `Unreadable(path,
reason)`; a record that cannot be used as `Unreadable("<file>#<row>", reason)`; either way the run
goes on. Of one file's bad records, the first `EXAMPLES_PER_REASON` per reason are reported one by
one and the rest as one `Unreadable(file, reason, count)`, so a file with a million bad rows stays
a few reports. Reasons are `snake_case_prefix: detail`. A record file that breaks part-way (a
truncated `.gz`) yields the records before the break, then its `Unreadable`.

    for item in read_source(path="docs/**/*.md", name="handbook", limits=ReadLimits()):
        ...  # a Document dict, or an Unreadable
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cogcore.curate import formats
from cogcore.curate.formats import FORMATS, BadFile, BadLine, BadRow, Parsed
from cogcore.resources import Skipped, glob_root, walk_files

SUFFIXES = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
BINARY_FORMATS = ("pdf", "parquet")  # parsed from the file itself (they seek), so never compressed
READ_CHUNK = 1 << 16
# zstd inflates up to ~32,000:1 (a 128 KiB run is a 4-byte block) and its decompressor returns all
# it can from what it is fed: 64 KiB fed at once gave 1 GiB from a 32 KB file. Fed 1 KiB at a time,
# one call gives at most ~32 MiB; on ordinary text it measured no slower (0.134 s vs 0.123 s, 52 MB).
ZSTD_FEED = 1 << 10
EXAMPLES_PER_REASON = 10  # bad records of one file reported one by one, per reason; the rest are counted
FALLBACK_ENCODING = "cp1252"
RECODABLE = ("txt", "md", "rst", "html")
# Deeper id, title or meta values are refused: ~500 levels already break pickling a curation shard.
MAX_META_DEPTH = 100
_CONTROL = re.compile("[\x01-\x08\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ReadLimits:
    """Caps that keep one file from exhausting memory or disk; the recipe's `curate.limits`."""

    max_file_bytes: int = 4 << 30  # decompressed bytes read from one file
    max_document_bytes: int = 64 << 20  # a file read whole (txt, md, rst, html, json), or a pdf's text
    max_record_bytes: int = 16 << 20  # one jsonl line or csv row, or one record's text

    def __post_init__(self):
        for name in ("max_file_bytes", "max_document_bytes", "max_record_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"curate.limits.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str
    count: int = 1  # over 1: that many records of the file `path`, beyond the examples reported
    row: int | None = None  # the record's number in its file; None for a whole file


@dataclass(frozen=True)
class _Fields:
    text: str
    id: str | None
    title: str | None
    meta: tuple[str, ...]

    def columns(self) -> list[str]:
        return [c for c in (self.id, self.title, *self.meta) if c]


class _CorruptStream(Exception):
    pass


def list_files(path: str, follow_links: bool = False) -> list[Path]:
    """The files a source reads (see the module docstring), in path order."""
    return [f for f in walk_files(path, follow_links) if isinstance(f, Path)]


def detect_format(path: Path, declared: str) -> str | None:
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def read_source(
    path: str,
    name: str,
    fmt: str = "auto",
    text_field: str = "text",
    id_field: str | None = None,
    title_field: str | None = None,
    meta_fields: tuple[str, ...] = (),
    follow_links: bool = False,
    limits: ReadLimits = ReadLimits(),
) -> Iterator[dict | Unreadable]:
    root = glob_root(path)
    fields = _Fields(text_field, id_field, title_field, tuple(meta_fields))
    for file in walk_files(path, follow_links):
        if isinstance(file, Skipped):
            yield Unreadable(str(file.path), file.reason)
            continue
        rel = str(file.relative_to(root)) if file.is_relative_to(root) else file.name
        yield from _bounded(_read_file(file, rel, name, detect_format(file, fmt), fields, limits), rel)


def _bounded(items: Iterator[dict | Unreadable], rel: str) -> Iterator[dict | Unreadable]:
    """The file's items, with only the first EXAMPLES_PER_REASON bad records per reason, then one
    count per reason for the rest."""
    listed: Counter = Counter()
    more: Counter = Counter()
    for item in items:
        if isinstance(item, Unreadable) and item.row is not None:
            kind = item.reason.split(":")[0]
            if listed[kind] >= EXAMPLES_PER_REASON:
                more[kind] += 1
                continue
            listed[kind] += 1
        yield item
    for kind, n in more.items():
        yield Unreadable(rel, f"{kind}: {n} more records of this file ({n + listed[kind]} in all)", count=n)


def _read_file(
    file: Path, rel: str, name: str, kind: str | None, fields: _Fields, limits: ReadLimits
) -> Iterator[dict | Unreadable]:
    compression = COMPRESSIONS.get(file.suffix.lower())
    try:
        if kind not in FORMATS:
            raise BadFile("unsupported_format")
        if file.stat().st_size == 0:
            raise BadFile("empty_file")
        if kind in BINARY_FORMATS:
            yield from _read_binary(file, rel, name, kind, compression, fields, limits)
            return
        with _open_binary(file, compression) as stream:
            yield from _parse_stream(stream, kind, file, rel, name, fields, limits)
    except BadFile as e:
        yield Unreadable(str(file), e.reason)
    except (EOFError, zlib.error, gzip.BadGzipFile, _CorruptStream) as e:
        detail = "truncated" if isinstance(e, EOFError) else str(e)[:80]
        yield Unreadable(str(file), f"corrupt_{compression or 'file'}: {detail}")
    except OSError as e:
        yield Unreadable(str(file), f"unreadable_file: {type(e).__name__}: {str(e)[:80]}")


def _read_binary(
    file: Path, rel: str, name: str, kind: str, compression: str | None, fields: _Fields, limits: ReadLimits
) -> Iterator[dict | Unreadable]:
    if compression:
        raise BadFile(f"unsupported_format: {compression}-compressed {kind}")
    if file.stat().st_size > limits.max_file_bytes:
        raise BadFile(f"file_too_large: over {limits.max_file_bytes} bytes (curate.limits.max_file_bytes)")
    if kind == "pdf":
        yield _document(formats.parse_pdf(file, limits.max_document_bytes), file, rel, name)
    else:
        yield from _records(formats.parquet_rows(file, fields.text, fields.columns()), rel, name, fields, limits)


def _parse_stream(
    stream: BinaryIO, kind: str, file: Path, rel: str, name: str, fields: _Fields, limits: ReadLimits
) -> Iterator[dict | Unreadable]:
    if kind in ("jsonl", "csv", "tsv"):
        yield from _records(_record_rows(stream, kind, fields, limits), rel, name, fields, limits)
        return
    raw = _read_whole(stream, limits)
    if b"\x00" in raw:
        raise BadFile("binary_content")
    text, encoding = _decode(raw, kind)
    if not text.strip():
        raise BadFile("empty_file")
    if kind == "json":
        yield from _records(formats.json_rows(text), rel, name, fields, limits)
    elif kind == "html":
        yield _document(formats.parse_html(text, _stem(file)), file, rel, name, encoding)
    else:
        yield _document(formats.parse_text(text, kind, _stem(file)), file, rel, name, encoding)


def _record_rows(stream: BinaryIO, kind: str, fields: _Fields, limits: ReadLimits) -> Iterator[object]:
    if kind == "jsonl":
        return formats.jsonl_rows(_Lines(stream, limits))
    # surrogateescape: a byte that is not UTF-8 must not move a quote or a delimiter; csv_rows then
    # refuses the one row that holds it.
    lines = _Lines(stream, limits, escape=True)
    return formats.csv_rows(lines, fields.text, "\t" if kind == "tsv" else ",", limits.max_record_bytes)


def _read_whole(stream: BinaryIO, limits: ReadLimits) -> bytes:
    cap = min(limits.max_document_bytes, limits.max_file_bytes)
    raw = stream.read(cap + 1)  # never more than the cap: a 3 MB .gz can inflate to GiBs
    if len(raw) > cap:
        field = "max_document_bytes" if cap == limits.max_document_bytes else "max_file_bytes"
        what = "document_too_large" if field == "max_document_bytes" else "file_too_large"
        raise BadFile(f"{what}: over {cap} bytes, in a file read whole (curate.limits.{field})")
    return raw


def _decode(raw: bytes, kind: str) -> tuple[str, str | None]:
    """The text, and the encoding it was read in when that was not UTF-8."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        where = f"byte 0x{raw[e.start]:02x} at offset {e.start} is not UTF-8"
    if kind not in RECODABLE:
        raise BadFile(f"bad_encoding: {where}")
    try:
        text = raw.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        raise BadFile(f"bad_encoding: {where}, and it is not {FALLBACK_ENCODING} either") from None
    # Not UTF-8 and full of control characters: binary data without a NUL byte, not Latin-1 text.
    if len(_CONTROL.findall(text)) > len(text) // 100:
        raise BadFile("binary_content: neither UTF-8 nor text in another encoding")
    return text, FALLBACK_ENCODING


class _Lines:
    """A binary stream's lines as text, each read at most the record cap at a time, so that a
    runaway line is never held whole.

    `next` raises BadLine for a line over the cap (read on to its end, not kept) or one that is
    not UTF-8 (unless `escape`: then its bad bytes come as surrogate escapes, and `escaped` counts
    such lines); the next `next` gives the following line. It raises BadFile at a NUL byte (binary,
    whatever the name says) and once the file has given more than `max_file_bytes`.
    """

    def __init__(self, stream: BinaryIO, limits: ReadLimits, escape: bool = False):
        self._stream, self._limits, self._escape = stream, limits, escape
        self._total = 0
        self.escaped = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        cap = self._limits.max_record_bytes
        line = self._counted(self._stream.readline(cap + 1))
        if not line:
            raise StopIteration
        if len(line) > cap and not line.endswith(b"\n"):
            self._skip_rest_of_line()
            raise BadLine(f"record_too_large: a line over {cap} bytes (curate.limits.max_record_bytes)")
        if b"\x00" in line:
            raise BadFile("binary_content")
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as e:
            if not self._escape:
                raise BadLine(f"bad_encoding: byte 0x{line[e.start]:02x} at column {e.start} is not UTF-8") from None
        self.escaped += 1
        return line.decode("utf-8", "surrogateescape")

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self._counted(self._stream.readline(READ_CHUNK))
            if not chunk or chunk.endswith(b"\n"):
                return

    def _counted(self, data: bytes) -> bytes:
        self._total += len(data)
        if self._total > self._limits.max_file_bytes:
            raise BadFile(
                f"file_too_large: over {self._limits.max_file_bytes} bytes decompressed "
                f"(curate.limits.max_file_bytes); the records before the cap were read"
            )
        return data


def _document(parsed: Parsed, file: Path, rel: str, name: str, encoding: str | None = None) -> dict:
    meta = {"title": parsed.title, "path": str(file), **parsed.meta}
    if encoding:
        meta["encoding"] = encoding
    return {"id": _file_id(name, rel), "text": parsed.text, "source": name, "meta": meta}


def _records(
    rows: Iterable[object], file: str, name: str, fields: _Fields, limits: ReadLimits
) -> Iterator[dict | Unreadable]:
    file_id, i = _file_id(name, file), -1
    for i, row in enumerate(rows):
        yield _record(row, file_id, file, i, name, fields, limits)
    if i < 0:
        raise BadFile("empty_file: no records")


def _record(
    row: object, file_id: str, file: str, i: int, name: str, fields: _Fields, limits: ReadLimits
) -> dict | Unreadable:
    where = f"{file}#{i}"
    problem = _record_problem(row, fields, limits)
    if problem:
        return Unreadable(where, problem, row=i)
    doc_id = row.get(fields.id) if fields.id else None
    meta = {k: _plain(row[k]) for k in fields.meta if k in row}
    title = row.get(fields.title) if fields.title else None
    meta["title"] = "" if title is None else str(title)
    meta["path"] = where
    return {
        "id": f"{file_id}-{i}" if doc_id is None else str(doc_id),
        "text": row[fields.text],
        "source": name,
        "meta": meta,
    }


def _record_problem(row: object, fields: _Fields, limits: ReadLimits) -> str | None:
    if isinstance(row, BadRow):
        return row.reason
    if not isinstance(row, dict):
        return "record_not_an_object"
    text = row.get(fields.text)
    if not isinstance(text, str):
        return f"missing_text_field: {fields.text}"
    if any(_nested_deeper(row.get(k), MAX_META_DEPTH) for k in fields.columns()):
        return f"too_deeply_nested: a kept field nested over {MAX_META_DEPTH} levels"
    # UTF-8 takes 1 to 4 bytes a character: encode only where the length alone cannot tell.
    cap = limits.max_record_bytes
    if len(text) > cap or (len(text) * 4 > cap and len(text.encode("utf-8", "surrogatepass")) > cap):
        return f"record_too_large: its text is over {cap} bytes (curate.limits.max_record_bytes)"
    return None


def _nested_deeper(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (v.values() if isinstance(v, dict) else v))
    return False


def _plain(value: object) -> object:
    """A JSON-writable meta value (parquet and csv can hold dates, decimals, bytes)."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


@contextmanager
def _open_binary(file: Path, compression: str | None) -> Iterator[BinaryIO]:
    with open(file, "rb") as fh:
        binary: BinaryIO = fh
        if compression == "gzip":
            binary = gzip.GzipFile(fileobj=fh)
        elif compression == "zstd":
            binary = io.BufferedReader(_ZstdReader(fh), READ_CHUNK)
        # A leading byte-order mark is dropped rather than kept as text (json.loads rejects it).
        if binary.peek(3)[:3] == codecs.BOM_UTF8:
            binary.read(3)
        yield binary


class _ZstdReader(io.RawIOBase):
    """Decompresses a .zst stream, raising EOFError when it ends inside a frame.

    zstandard's own readers (`open`, `stream_reader`, `read_to_iter`) return a truncated file's
    first part as if it were whole; a truncated download must be reported, not half-read silently.
    """

    def __init__(self, fh: BinaryIO):
        import zstandard

        self._zstd = zstandard
        self._fh = fh
        self._decomp = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False  # bytes went into the current frame's decompressor
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, out) -> int:
        while not self._buf:
            if self._decomp.eof:  # a frame ended: the next frame (if any) starts in its unused data
                data = self._decomp.unused_data
                self._decomp, self._fed = self._zstd.ZstdDecompressor().decompressobj(), False
            else:
                data = self._fh.read(ZSTD_FEED)
                if not data:
                    if self._fed:
                        raise EOFError("zstd stream ended inside a frame")
                    return 0
            if data:
                self._fed = True
                try:
                    self._buf = memoryview(self._decomp.decompress(data))
                except self._zstd.ZstdError as e:
                    raise _CorruptStream(str(e)) from e
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _file_id(name: str, rel: str) -> str:
    # From the path relative to the source's root, so ids are the same on every machine.
    return f"{name}-{hashlib.sha1(rel.encode()).hexdigest()[:10]}"


def _stem(file: Path) -> str:
    return file.name.split(".")[0] or file.name
