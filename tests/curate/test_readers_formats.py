"""Readers, the formats beyond json/jsonl/txt/md: rst, html (trafilatura), pdf (pypdf), csv, tsv,
parquet (pyarrow), .zst compression; and a corrupt file of every format, each reported with its
reason while the good files around it are still read."""

import csv
import gzip
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from cogcore.curate.formats import FORMATS
from cogcore.curate.readers import Unreadable, detect_format, list_files, read_source

PAGE = """<html><head><title>Wire fees &amp; limits | Example Bank</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/careers">Careers</a></nav>
<article><h1>Wire transfer fees</h1>
<p>Wire transfers cost $25 for domestic transfers and $45 for international ones. The fee is
charged when the transfer is sent, and it is shown before you confirm.</p>
<p>Incoming wires are free of charge for every personal account we offer.</p></article>
<footer>Copyright 2024 Example Bank. All rights reserved. Privacy policy. Cookie settings.</footer>
</body></html>"""
ROWS = [
    {"id": "r1", "body": "First row text.", "title": "One", "lang": "en"},
    {"id": "r2", "body": "Second row text.", "title": "Two", "lang": "fr"},
]


def read(path, **kw) -> tuple[list[dict], list[Unreadable]]:
    items = list(read_source(str(path), "src", **kw))
    return [i for i in items if isinstance(i, dict)], [i for i in items if isinstance(i, Unreadable)]


def compress(data: bytes, how: str) -> bytes:
    return {"": data, "gz": gzip.compress(data), "zst": zstandard.ZstdCompressor().compress(data)}[how]


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A valid PDF with one Helvetica text line per input line, written out by hand (objects + xref)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    page_ids = [4 + 2 * i for i in range(len(pages))]
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objs += [
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for pid, text in zip(page_ids, pages):
        ops = " ".join(f"({line}) Tj 0 -16 Td" for line in text.splitlines())
        stream = f"BT /F1 12 Tf 72 720 Td {ops} ET".encode() if text else b""
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
            f" /Contents {pid + 1} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objs.append(f"<< /Title ({title}) >>".encode() if title else b"<< >>")
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1,
        len(objs),
        xref,
    )


def csv_bytes(rows: list[dict], delimiter: str = ",") -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


@pytest.mark.parametrize("how", ["", "gz", "zst"])
def test_html_main_text_without_boilerplate_titled_by_title_tag(tmp_path, how):
    path = tmp_path / ("page.html" + (f".{how}" if how else ""))
    path.write_bytes(compress(PAGE.encode(), how))
    docs, bad = read(path)
    assert bad == [] and len(docs) == 1
    text = docs[0]["text"]
    assert "Wire transfers cost $25 for domestic transfers" in text and "Incoming wires are free" in text
    assert "Careers" not in text and "Cookie settings" not in text and "<p>" not in text
    assert docs[0]["meta"]["title"] == "Wire fees & limits | Example Bank"


def test_pdf_pages_joined_and_titled_from_metadata_or_first_line(tmp_path):
    (tmp_path / "fees.pdf").write_bytes(
        make_pdf(["Wire fees\nWire transfers cost $25.", "Incoming wires are free."], title="Fee schedule 2024")
    )
    (tmp_path / "untitled.pdf").write_bytes(make_pdf(["Opening hours\nWe open at nine."]))
    docs, bad = read(tmp_path)
    assert bad == []
    fees, untitled = docs
    assert fees["text"] == "Wire fees\nWire transfers cost $25.\n\nIncoming wires are free."
    assert fees["meta"]["title"] == "Fee schedule 2024" and fees["meta"]["pages"] == 2
    assert untitled["meta"]["title"] == "Opening hours"


@pytest.mark.parametrize("how", ["", "gz", "zst"])
@pytest.mark.parametrize("kind, delimiter", [("csv", ","), ("tsv", "\t")])
def test_csv_and_tsv_rows_with_named_columns(tmp_path, kind, delimiter, how):
    rows = ROWS + [{"id": "r3", "body": 'Quoted, "multi-line"\nrow.', "title": "", "lang": "de"}]
    path = tmp_path / (f"rows.{kind}" + (f".{how}" if how else ""))
    path.write_bytes(compress(csv_bytes(rows, delimiter), how))
    docs, bad = read(path, text_field="body", id_field="id", title_field="title", meta_fields=("lang",))
    assert bad == []
    assert [(d["id"], d["text"], d["meta"]["title"]) for d in docs] == [
        ("r1", "First row text.", "One"),
        ("r2", "Second row text.", "Two"),
        ("r3", 'Quoted, "multi-line"\nrow.', ""),
    ]
    assert docs[1]["meta"] == {"lang": "fr", "title": "Two", "path": f"{path.name}#1"}


def test_csv_fields_longer_than_the_csv_module_default_limit(tmp_path):
    long_text = "word " * 60_000  # 300k characters; the csv module's default limit is 131,072
    (tmp_path / "long.csv").write_bytes(csv_bytes([{"text": long_text}]))
    docs, bad = read(tmp_path / "long.csv")
    assert bad == [] and docs[0]["text"] == long_text


def test_parquet_streams_row_groups_and_reports_rows_without_text(tmp_path):
    bodies = [f"Parquet row {i}." if i % 7 else None for i in range(50)]
    table = pa.table(
        {
            "uid": [f"u{i}" for i in range(50)],
            "body": bodies,
            "stamp": pa.array(range(50), pa.int64()),
            "blob": [b"\x00" * 10] * 50,
        }
    )
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=8)  # 7 row groups
    assert pq.ParquetFile(tmp_path / "rows.parquet").num_row_groups == 7
    docs, bad = read(tmp_path / "rows.parquet", text_field="body", id_field="uid", meta_fields=("stamp",))
    assert [d["id"] for d in docs] == [f"u{i}" for i in range(50) if i % 7]
    assert docs[0]["text"] == "Parquet row 1."
    assert docs[0]["meta"] == {"stamp": 1, "title": "", "path": "rows.parquet#1"}
    assert [(u.path, u.reason) for u in bad] == [
        (f"rows.parquet#{i}", "missing_text_field: body") for i in range(0, 50, 7)
    ]


@pytest.mark.parametrize("how", ["gz", "zst"])
def test_compressed_jsonl_json_and_text(tmp_path, how):
    lines = "".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(3)).encode()
    (tmp_path / f"a.jsonl.{how}").write_bytes(compress(lines, how))
    (tmp_path / f"b.json.{how}").write_bytes(compress(json.dumps([{"text": "from json"}]).encode(), how))
    (tmp_path / f"c.rst.{how}").write_bytes(compress(b"=====\nFees\n=====\n\nWires cost $25.\n", how))
    docs, bad = read(tmp_path)
    assert bad == [] and [d["text"] for d in docs[:4]] == ["doc 0", "doc 1", "doc 2", "from json"]
    assert docs[4]["meta"]["title"] == "Fees"  # rst over/underlines are not the title


def test_zstd_with_several_frames_reads_them_all(tmp_path):
    frames = [zstandard.ZstdCompressor().compress(b'{"text": "frame %d"}\n' % i) for i in range(3)]
    (tmp_path / "multi.jsonl.zst").write_bytes(b"".join(frames))
    docs, bad = read(tmp_path / "multi.jsonl.zst")
    assert bad == [] and [d["text"] for d in docs] == ["frame 0", "frame 1", "frame 2"]


def test_titles_rst_and_md_front_matter_and_byte_order_mark(tmp_path):
    (tmp_path / "a.md").write_text('---\ntitle: "Card limits"\nlayout: page\n---\n# Heading\n\nBody.\n')
    (tmp_path / "b.md").write_text("---\nlayout: page\n---\n\n## Daily limits\n\nBody.\n")
    (tmp_path / "b2.md").write_text("[![build](badge.svg)](ci)\n\n# Transfer limits\n\n## Daily\n")
    (tmp_path / "c.txt").write_bytes("\ufeffFirst line\nsecond".encode())
    (tmp_path / "d.jsonl").write_bytes("\ufeff".encode() + b'{"text": "bom jsonl"}\n')
    docs, bad = read(tmp_path)
    assert bad == [] and [d["meta"]["title"] for d in docs[:4]] == [
        "Card limits",
        "Daily limits",
        "Transfer limits",
        "First line",
    ]
    assert docs[3]["text"] == "First line\nsecond" and docs[4]["text"] == "bom jsonl"


def test_every_format_name_is_detected_from_its_suffix():
    names = {
        "a.txt": "txt",
        "a.md": "md",
        "a.rst": "rst",
        "a.htm": "html",
        "a.HTML.gz": "html",
        "a.pdf": "pdf",
        "a.json.zstd": "json",
        "a.ndjson": "jsonl",
        "a.jsonl.zst": "jsonl",
        "a.csv": "csv",
        "a.tsv.gz": "tsv",
        "a.parquet": "parquet",
    }
    assert {n: detect_format(Path(n), "auto") for n in names} == names
    assert set(names.values()) == set(FORMATS)
    assert detect_format(Path("a.zst"), "auto") is None and detect_format(Path("a.docx"), "auto") is None


def test_hidden_folders_are_skipped(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("ref")
    (tmp_path / "a.txt").write_text("A")
    assert list_files(str(tmp_path)) == [tmp_path / "a.txt"]


def test_a_corrupt_file_of_every_format_is_reported_and_the_good_ones_are_read(tmp_path):
    row_texts = [f"row {i} " + hashlib.sha256(str(i).encode()).hexdigest() * 4 for i in range(2000)]
    good_jsonl = "".join(json.dumps({"text": t}) + "\n" for t in row_texts).encode()  # many zstd blocks
    zst = zstandard.ZstdCompressor().compress(good_jsonl)
    parquet = io.BytesIO()
    pq.write_table(pa.table({"body": ["x"]}), parquet)
    files = {
        "bad_encoding.txt": (b"caf\x81\x8d\x8f", "bad_encoding"),  # neither UTF-8 nor cp1252
        "binary.rst": (b"\x7fELF\x02\x01\x01\x00\x00", "binary_content"),
        "empty.md": (b"", "empty_file"),
        "blank.md": (b"  \n\n", "empty_file"),
        "latin1.json": ('[{"text": "caf\u00e9"}]'.encode("latin-1"), "bad_encoding"),  # json must be UTF-8
        "scripts_only.html": (b"<html><body><script>var a = 1;</script></body></html>", "no_text"),
        "broken.pdf": (make_pdf(["Some text"])[:300], "bad_pdf"),
        "not_a.pdf": (b"%PDF-1.4\ngarbage", "bad_pdf"),
        "scanned.pdf": (make_pdf([""]), "no_text"),
        "broken.json": (b'[{"text": "unterminated', "bad_json"),
        "empty_list.json": (b"[]", "empty_file"),
        "binary.jsonl": (b'{"text": "a"}\n\x00\x01\x02\n', "binary_content"),
        "blank.jsonl": (b"\n\n", "empty_file"),
        "no_text_column.csv": (csv_bytes([{"body": "x"}]), "missing_text_field"),
        "cut_quote.csv": (b'text,n\n"a field cut off', "bad_csv"),
        "header_only.csv": (b"text,n\n", "empty_file"),
        "no_text_column.tsv": (csv_bytes([{"body": "x"}], "\t"), "missing_text_field"),
        "no_text_column.parquet": (parquet.getvalue(), "missing_text_field"),
        "truncated.parquet": (parquet.getvalue()[:-20], "bad_parquet"),
        "not_gzip.jsonl.gz": (b"plain text", "corrupt_gzip"),
        "truncated.html.gz": (gzip.compress(PAGE.encode())[:-30], "corrupt_gzip"),
        "not_zstd.jsonl.zst": (b"plain text", "corrupt_zstd"),
        "corrupt.jsonl.zst": (zst[:40] + bytes(b ^ 0x5A for b in zst[40:90]) + zst[90:], "corrupt_zstd"),
        "truncated.jsonl.zst": (zst[: len(zst) // 2], "corrupt_zstd"),
        "compressed.parquet.gz": (gzip.compress(parquet.getvalue()), "unsupported_format"),
        "image.png": (b"\x89PNG\r\n\x1a\n", "unsupported_format"),
        "good.txt": (b"Readable text.", None),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    docs, bad = read(tmp_path)
    reasons = {Path(u.path).name: u.reason for u in bad}
    expected = {name: reason for name, (_, reason) in files.items() if reason}
    assert {name: reasons.get(name, "").split(":")[0] for name in expected} == expected
    assert set(reasons) == set(expected)  # one report per file, no row-level noise
    assert reasons["truncated.jsonl.zst"] == "corrupt_zstd: truncated"
    assert reasons["truncated.html.gz"] == "corrupt_gzip: truncated"
    # A streamed file that breaks part-way keeps the rows before the break: they are whole rows.
    partial = [d["text"] for d in docs if d["meta"]["path"].startswith("truncated.jsonl.zst#")]
    assert 0 < len(partial) < 2000 and partial == row_texts[: len(partial)]
    origin = Counter(Path(d["meta"]["path"].split("#")[0]).name for d in docs)
    assert origin == {"good.txt": 1, "truncated.jsonl.zst": len(partial), "binary.jsonl": 1}  # row 0 precedes the NULs
    assert [d["text"] for d in docs if d["meta"]["path"] == str(tmp_path / "good.txt")] == ["Readable text."]
