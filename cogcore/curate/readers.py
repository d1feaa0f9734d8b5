"""Readers: turn source files into document records `{id, text, source, meta}`.

Formats (`FORMATS`): txt, md, rst, html, pdf (one document per file) and json, jsonl, csv, tsv,
parquet (one document per record; `text_field` names the text, `id_field` / `title_field` /
`meta_fields` the rest). Text formats may be compressed: `.gz` or `.zst`/`.zstd`, e.g.
`docs.jsonl.zst`, `page.html.gz`. jsonl, csv and parquet are streamed, so memory stays bounded
whatever the file's size; a json, txt, md or html file is read whole.

A file that cannot be read (corrupt or truncated, wrong encoding, binary, empty, not the format it
claims, no text column) is skipped and reported as `Unreadable(path, reason)`; a record without
text is reported as `Unreadable("<file>#<row>", reason)`; either way the run goes on. Reasons are
`snake_case_prefix: detail`. A record file that breaks part-way (a truncated `.gz`) yields the
records before the break, then its `Unreadable`.

    for item in read_source(path="docs/**/*.md", name="handbook"):
        ...  # a Document dict, or an Unreadable
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import itertools
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, TextIO

from cogcore.curate import formats
from cogcore.curate.formats import FORMATS, BadFile, BadRow, Parsed

SUFFIXES = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".rst": "rst",
            ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf",
            ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".pq": "parquet"}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
BINARY_FORMATS = ("pdf", "parquet")  # parsed from the file itself (they seek), so never compressed
READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


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


def list_files(path: str) -> list[Path]:
    """A file, every file under a folder (hidden files and folders skipped), or a glob's matches."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file()
                      and not any(part.startswith(".") for part in f.relative_to(p).parts))
    return sorted(Path(f) for f in glob.glob(path, recursive=True) if Path(f).is_file())


def detect_format(path: Path, declared: str) -> str | None:
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def read_source(path: str, name: str, fmt: str = "auto", text_field: str = "text",
                id_field: str | None = None, title_field: str | None = None,
                meta_fields: tuple[str, ...] = ()) -> Iterator[dict | Unreadable]:
    root = _source_root(path)
    fields = _Fields(text_field, id_field, title_field, tuple(meta_fields))
    for file in list_files(path):
        rel = str(file.relative_to(root)) if file.is_relative_to(root) else file.name
        yield from _read_file(file, rel, name, detect_format(file, fmt), fields)


def _read_file(file: Path, rel: str, name: str, kind: str | None, fields: _Fields) -> Iterator[dict | Unreadable]:
    compression = COMPRESSIONS.get(file.suffix.lower())
    try:
        if kind not in FORMATS:
            raise BadFile("unsupported_format")
        if file.stat().st_size == 0:
            raise BadFile("empty_file")
        if kind in BINARY_FORMATS:
            if compression:
                raise BadFile(f"unsupported_format: {compression}-compressed {kind}")
            if kind == "pdf":
                yield _document(formats.parse_pdf(file), file, rel, name)
            else:
                yield from _records(formats.parquet_rows(file, fields.text, fields.columns()), rel, name, fields)
            return
        with _open_text(file, compression) as stream:
            yield from _parse_text_file(stream, kind, file, rel, name, fields)
    except BadFile as e:
        yield Unreadable(str(file), e.reason)
    except UnicodeDecodeError:
        yield Unreadable(str(file), "bad_encoding")
    except (EOFError, zlib.error, gzip.BadGzipFile, _CorruptStream) as e:
        detail = "truncated" if isinstance(e, EOFError) else str(e)[:80]
        yield Unreadable(str(file), f"corrupt_{compression or 'file'}: {detail}")
    except OSError as e:
        yield Unreadable(str(file), f"unreadable_file: {type(e).__name__}: {str(e)[:80]}")


def _parse_text_file(stream: TextIO, kind: str, file: Path, rel: str, name: str,
                     fields: _Fields) -> Iterator[dict | Unreadable]:
    if kind == "jsonl":
        yield from _records(formats.jsonl_rows(formats.text_lines(stream)), rel, name, fields)
        return
    if kind in ("csv", "tsv"):
        rows = formats.csv_rows(formats.text_lines(stream), fields.text, "\t" if kind == "tsv" else ",")
        yield from _records(rows, rel, name, fields)
        return
    raw = stream.read()
    if "\x00" in raw:
        raise BadFile("binary_content")
    if not raw.strip():
        raise BadFile("empty_file")
    if kind == "json":
        yield from _records(formats.json_rows(raw), rel, name, fields)
    elif kind == "html":
        yield _document(formats.parse_html(raw, _stem(file)), file, rel, name)
    else:
        yield _document(formats.parse_text(raw, kind, _stem(file)), file, rel, name)


def _document(parsed: Parsed, file: Path, rel: str, name: str) -> dict:
    return {"id": _file_id(name, rel), "text": parsed.text, "source": name,
            "meta": {"title": parsed.title, "path": str(file), **parsed.meta}}


def _records(rows: Iterable[object], file: str, name: str, fields: _Fields) -> Iterator[dict | Unreadable]:
    file_id, i = _file_id(name, file), -1
    for i, row in enumerate(rows):
        where = f"{file}#{i}"
        if isinstance(row, BadRow):
            yield Unreadable(where, row.reason)
            continue
        if not isinstance(row, dict):
            yield Unreadable(where, "record_not_an_object")
            continue
        text = row.get(fields.text)
        if not isinstance(text, str):
            yield Unreadable(where, f"missing_text_field: {fields.text}")
            continue
        doc_id = row.get(fields.id) if fields.id else None
        meta = {k: _plain(row[k]) for k in fields.meta if k in row}
        title = row.get(fields.title) if fields.title else None
        meta["title"] = "" if title is None else str(title)
        meta["path"] = where
        yield {"id": f"{file_id}-{i}" if doc_id is None else str(doc_id),
               "text": text, "source": name, "meta": meta}
    if i < 0:
        raise BadFile("empty_file: no records")


def _plain(value: object) -> object:
    """A JSON-writable meta value (parquet and csv can hold dates, decimals, bytes)."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


@contextmanager
def _open_text(file: Path, compression: str | None) -> Iterator[TextIO]:
    with open(file, "rb") as fh:
        binary: BinaryIO = fh
        if compression == "gzip":
            binary = gzip.GzipFile(fileobj=fh)
        elif compression == "zstd":
            binary = io.BufferedReader(_ZstdReader(fh), READ_CHUNK)
        # A leading byte-order mark is dropped rather than kept as text (json.loads rejects it); skipped
        # here because the "utf-8-sig" codec would halve the decoding speed of the whole file.
        if binary.peek(3)[:3] == codecs.BOM_UTF8:
            binary.read(3)
        # newline="": line endings are kept as written (csv needs them so for quoted newlines).
        with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
            yield text


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
                data = self._fh.read(READ_CHUNK)
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


def _source_root(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    fixed = list(itertools.takewhile(lambda part: not any(ch in part for ch in "*?["), p.parts))
    return Path(*fixed) if fixed else Path(".")
