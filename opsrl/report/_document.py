"""A small document model rendered twice: Markdown (figures as PNG files beside it) and a
self-contained HTML page (figures embedded as base64 data URIs, no external resource)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

__all__ = ["Document", "Heading", "Image", "Paragraph", "Table"]


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Text with Markdown's inline ``code`` and **bold**; ``bullets`` makes it a list."""

    text: str = ""
    bullets: list[str] = field(default_factory=list)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    #: "l" or "r" per column
    align: list[str] | None = None
    caption: str = ""


@dataclass
class Image:
    #: file name (without directory) of the PNG beside the Markdown
    name: str
    png: bytes
    caption: str


Block = Heading | Paragraph | Table | Image


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    return _BOLD.sub(r"<strong>\1</strong>", escaped)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
td.r, th.r { text-align: right; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
code { background: #f5f5f5; padding: 0 0.2em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
"""


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    @property
    def images(self) -> list[Image]:
        return [b for b in self.blocks if isinstance(b, Image)]

    def to_markdown(self, figure_dir: str) -> str:
        """Markdown; images link to ``<figure_dir>/<name>``."""
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            if isinstance(block, Heading):
                lines += ["#" * block.level + " " + block.text, ""]
            elif isinstance(block, Paragraph):
                if block.text:
                    lines += [block.text, ""]
                if block.bullets:
                    lines += [f"- {item}" for item in block.bullets] + [""]
            elif isinstance(block, Table):
                align = block.align or ["l"] * len(block.columns)
                if block.caption:
                    lines += [f"**{block.caption}**", ""]
                lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
                lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
                lines.append("")
            else:
                lines += [f"![{_md_cell(block.caption)}]({figure_dir}/{block.name})", ""]
                lines += [f"*{block.caption}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        """A self-contained HTML page: inline CSS, images as ``data:image/png;base64`` URIs."""
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{_inline_html(self.title)}</h1>",
        ]
        for block in self.blocks:
            if isinstance(block, Heading):
                level = min(max(block.level, 1), 6)
                parts.append(f"<h{level}>{_inline_html(block.text)}</h{level}>")
            elif isinstance(block, Paragraph):
                if block.text:
                    parts.append(f"<p>{_inline_html(block.text)}</p>")
                if block.bullets:
                    items = "".join(f"<li>{_inline_html(item)}</li>" for item in block.bullets)
                    parts.append(f"<ul>{items}</ul>")
            elif isinstance(block, Table):
                align = block.align or ["l"] * len(block.columns)
                parts.append("<table>")
                if block.caption:
                    parts.append(f"<caption>{_inline_html(block.caption)}</caption>")
                header = "".join(
                    f'<th class="{a}">{_inline_html(c)}</th>'
                    for c, a in zip(block.columns, align, strict=True)
                )
                parts.append(f"<thead><tr>{header}</tr></thead><tbody>")
                for row in block.rows:
                    cells = "".join(
                        f'<td class="{a}">{_inline_html(c)}</td>'
                        for c, a in zip(row, align, strict=True)
                    )
                    parts.append(f"<tr>{cells}</tr>")
                parts.append("</tbody></table>")
            else:
                data = base64.b64encode(block.png).decode("ascii")
                caption = _inline_html(block.caption)
                parts.append(
                    f'<figure><img src="data:image/png;base64,{data}" '
                    f'alt="{html.escape(block.caption)}"><figcaption>{caption}</figcaption>'
                    "</figure>"
                )
        parts += ["</body>", "</html>", ""]
        return "\n".join(parts)
