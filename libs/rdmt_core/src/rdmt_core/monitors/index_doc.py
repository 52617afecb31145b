"""The lists of monitors in README.md and docs/index.md, generated from the registry.

Usage: ``python -m rdmt_core.monitors.index_doc [--check]``: rewrite the two lists (between the
``<!-- monitors:begin -->`` and ``<!-- monitors:end -->`` markers) from :func:`registered_monitors`, or
exit 1 naming the stale page. A new monitor package appears in both without a hand-written line: its
name, its page (``monitors/<name>/README.md``), what it reads and its ``summary``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import Monitor, registered_monitors

REPO = Path(__file__).resolve().parents[5]
BEGIN, END = "<!-- monitors:begin -->", "<!-- monitors:end -->"
PACKAGES = Path(__file__).resolve().parent


def page_of(monitor: type[Monitor]) -> str:
    """The monitor's page relative to the repository root."""
    return (PACKAGES / monitor.__module__.split(".")[2] / "README.md").relative_to(REPO).as_posix()


def input_of(monitor: type[Monitor]) -> str:
    """What the monitor reads, in words: reference types, or Level-2 models and exposure types."""
    if monitor.reftypes:
        return f"reference files, reftype {', '.join(sorted(monitor.reftypes))}"
    kinds = ", ".join(f"`{m}`" for m in sorted(monitor.model_types))
    exposures = f"; exposure type {', '.join(sorted(monitor.exposure_types))}" if monitor.exposure_types else ""
    return f"Level-2 images ({kinds}{exposures})"


def readme_table() -> str:
    rows = ["| monitor | input | metrics |", "|---|---|---|"]
    for name, monitor in sorted(registered_monitors().items()):
        rows.append(f"| [{name}]({page_of(monitor)}) | {input_of(monitor)} | {monitor.summary} |")
    return "\n".join(rows)


def index_list() -> str:
    return "\n".join(
        f"- [{monitor.title}](../{page_of(monitor)}) (`{name}`, {input_of(monitor)}): {monitor.summary}."
        for name, monitor in sorted(registered_monitors().items())
    )


def rendered(text: str, generated: str, page: Path) -> str:
    """``text`` with the region between the markers replaced by ``generated``."""
    try:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"{page}: no {BEGIN} ... {END} region") from None
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def pages() -> dict[Path, str]:
    """Each page and the text it should have."""
    out = {}
    for page, generated in ((REPO / "README.md", readme_table()), (REPO / "docs" / "index.md", index_list())):
        out[page] = rendered(page.read_text(encoding="utf-8"), generated, page)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdmt_core.monitors.index_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is out of date; write nothing")
    args = parser.parse_args(argv)
    stale = 0
    for page, text in pages().items():
        if page.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            print(f"{page} is out of date: run python -m rdmt_core.monitors.index_doc", file=sys.stderr)
            stale = 1
        else:
            page.write_text(text, encoding="utf-8")
            print(f"wrote {page}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
