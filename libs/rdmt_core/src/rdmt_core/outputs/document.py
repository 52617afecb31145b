"""A small document model rendered both as Markdown and as HTML.

Reports and the overview describe their content once, as a list of blocks
(headings, paragraphs, bullet lists, tables, images), and this module renders
it to both formats, escaping text for each. Statuses are colour-coded in HTML
and set in bold in Markdown. No file other than the two documents is written here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..records import Status
from .html import escape, page, status_class


@dataclass(frozen=True)
class Span:
    """A piece of text, optionally coloured by a status and/or linked to a relative path.

    In a table, a span with a status colours its whole cell. A link to an RDMT page names its
    ``.html`` file; with ``page_link`` the Markdown rendering links to the ``.md`` page beside it.
    """

    text: str
    status: Status | None = None
    link: str | None = None
    page_link: bool = False


Inline = str | Span | Sequence[str | Span]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    content: Inline


@dataclass(frozen=True)
class Bullets:
    items: Sequence[Inline]


@dataclass(frozen=True)
class Table:
    """A table; ``numeric`` columns are right-aligned."""

    header: Sequence[str]
    rows: Sequence[Sequence[Inline]]
    numeric: frozenset[int] = frozenset()
    caption: str = ""


@dataclass(frozen=True)
class Navigation:
    """A line of links that :func:`replace_navigation` can rewrite later, found by its ``mark``."""

    content: Inline
    mark: str


@dataclass(frozen=True)
class Image:
    path: str  # relative to the document
    alt: str
    caption: str = ""


Block = Heading | Paragraph | Bullets | Table | Image | Navigation


def format_number(value: float, count: bool = False) -> str:
    """A value for people: 6 significant digits, counts as integers with thousands separators.

    Non-finite values read ``n/a``.
    """
    value = float(value)
    if not math.isfinite(value):
        return "n/a"
    if count and value.is_integer():
        return f"{int(value):,}"
    return f"{value:.6g}"


# ---------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def _md_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(text)))


def _md_inline(content: Inline) -> str:
    if isinstance(content, str):
        return _md_text(content)
    if isinstance(content, Span):
        text = _md_text(content.text)
        if content.link is not None:
            link = content.link
            if content.page_link and link.endswith(".html"):
                link = link.removesuffix(".html") + ".md"
            text = f"[{text}]({quote(link)})"
        if content.status in (Status.FAIL, Status.CAUTION):
            text = f"**{text}**"
        return text
    return "".join(_md_inline(part) for part in content)


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {_md_text(block.text)}"
    if isinstance(block, Paragraph):
        return _md_inline(block.content)
    if isinstance(block, Navigation):
        return _md_navigation(block)
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md_inline(item)}" for item in block.items)
    if isinstance(block, Table):
        lines = [
            "| " + " | ".join(_md_text(h) for h in block.header) + " |",
            "|" + "|".join("---:" if i in block.numeric else "---" for i in range(len(block.header))) + "|",
        ]
        lines += ["| " + " | ".join(_md_inline(cell) or " " for cell in row) + " |" for row in block.rows]
        if block.caption:
            lines.append(f"\n_{_md_text(block.caption)}_")
        return "\n".join(lines)
    text = f"![{_md_text(block.alt)}]({quote(block.path)})"
    return f"{text}\n\n_{_md_text(block.caption)}_" if block.caption else text


def _md_navigation(block: Navigation) -> str:
    # one line ending in an (invisible) comment that names it, so it can be found and replaced
    return f"{_md_inline(block.content)} <!-- rdmt:{block.mark} -->"


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    """The document as GitHub-flavoured Markdown."""
    return "\n\n".join([f"# {_md_text(title)}", *(_md_block(b) for b in blocks)]) + "\n"


# ---------------------------------------------------------------- HTML


def _html_inline(content: Inline, in_cell: bool = False) -> str:
    if isinstance(content, str):
        return escape(content)
    if isinstance(content, Span):
        text = escape(content.text)
        if content.link is not None:
            text = f'<a href="{escape(quote(content.link))}">{text}</a>'
        if content.status is not None and not in_cell:
            text = f'<span class="badge {status_class(content.status)}">{text}</span>'
        return text
    return "".join(_html_inline(part) for part in content)


def _html_cell(content: Inline, tag: str, numeric: bool) -> str:
    classes = ["num"] if numeric else []
    if isinstance(content, Span) and content.status is not None:
        classes.append(status_class(content.status))
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<{tag}{attribute}>{_html_inline(content, in_cell=True)}</{tag}>"


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_html_inline(block.content)}</p>"
    if isinstance(block, Navigation):
        return _html_navigation(block)
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{_html_inline(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{escape(h)}</th>" for h in block.header)
        rows = "\n".join(
            "<tr>" + "".join(_html_cell(cell, "td", i in block.numeric) for i, cell in enumerate(row)) + "</tr>"
            for row in block.rows
        )
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        return f"<table>{caption}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    caption = f"<figcaption>{escape(block.caption)}</figcaption>" if block.caption else ""
    return f'<figure><img src="{escape(quote(block.path))}" alt="{escape(block.alt)}">{caption}</figure>'


def _html_navigation(block: Navigation) -> str:
    return f'<nav class="{escape(block.mark)}">{_html_inline(block.content)}</nav>'


def to_html(title: str, blocks: Sequence[Block]) -> str:
    """The document as a self-contained HTML page."""
    body = "\n".join([f"<h1>{escape(title)}</h1>", *(_html_block(b) for b in blocks)])
    return page(title, body)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename: a reader never sees half a page."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_document(title: str, blocks: Sequence[Block], markdown: Path, html: Path) -> None:
    """Write the document to ``markdown`` and ``html`` (UTF-8, each replaced atomically)."""
    write_atomically(markdown, to_markdown(title, blocks))
    write_atomically(html, to_html(title, blocks))


def replace_navigation(markdown: Path, html: Path, block: Navigation) -> bool:
    """Replace the navigation line marked ``block.mark`` in a written document pair.

    Returns False (and changes nothing) when either file is missing or has no such line.
    """
    md_line = re.compile(rf"^.* <!-- rdmt:{re.escape(block.mark)} -->$", re.MULTILINE)
    html_line = re.compile(rf'<nav class="{re.escape(escape(block.mark))}">.*?</nav>')
    try:
        md_text, html_text = markdown.read_text(encoding="utf-8"), html.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    if not (md_line.search(md_text) and html_line.search(html_text)):
        return False
    write_atomically(markdown, md_line.sub(lambda _: _md_navigation(block), md_text, count=1))
    write_atomically(html, html_line.sub(lambda _: _html_navigation(block), html_text, count=1))
    return True
