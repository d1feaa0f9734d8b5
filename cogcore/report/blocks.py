"""The pages' building blocks (heading, paragraph, table, image, code) and their two renderings.

The report and `cogcore compare` build their pages as a list of blocks and hand it to `write_blocks`,
which writes `<stem>.md` (PNGs beside it) and a self-contained `<stem>.html`:

    write_blocks([Heading("Runs", 1), Table(["name", "accuracy"], [["acme", 0.5]])], Path("out"), "compare")

All text is escaped in both renderings: cells and captions hold text from documents and models. The
HTML embeds its charts as base64 data URIs and its CSS inline, so it opens offline and can be mailed
as one file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Code:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list]


@dataclass
class Image:
    name: str  # file name beside the Markdown page, also the alt text
    png: bytes


def format_value(value) -> str:
    """A cell or a figure in running text: a dash for nothing, thousands separators, 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _md_text(text) -> str:
    # Backslash-escape Markdown's inline syntax, then HTML-escape so raw tags stay text.
    text = format_value(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "*_[]`|#":
        text = text.replace(ch, "\\" + ch)
    return html.escape(text, quote=False)


def render_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + _md_text(b.text))
        elif isinstance(b, Paragraph):
            out.append(_md_text(b.text))
        elif isinstance(b, Code):
            out.append("```\n" + b.text + "\n```")
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_text(h) for h in b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.name}]({b.name})")
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; }
img { max-width: 100%; }
"""


def _html_cell(value, tag: str = "td") -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    cls = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{cls}>{html.escape(format_value(value))}</{tag}>"


def render_html(blocks: list, title: str) -> str:
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Code):
            body.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif isinstance(b, Table):
            head = "".join(_html_cell(h, "th") for h in b.header)
            rows = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<img alt="{html.escape(b.name)}" src="data:image/png;base64,{data}">')
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_blocks(blocks: list, out: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.md` with its PNGs beside it and a self-contained `<stem>.html` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for image in (b for b in blocks if isinstance(b, Image)):
        (out / image.name).write_bytes(image.png)
    md_path, html_path = out / f"{stem}.md", out / f"{stem}.html"
    md_path.write_text(render_markdown(blocks), encoding="utf-8")
    html_path.write_text(render_html(blocks, blocks[0].text), encoding="utf-8")
    return md_path, html_path
