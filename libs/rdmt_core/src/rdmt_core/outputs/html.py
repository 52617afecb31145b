"""The look of RDMT's HTML pages: status colours, the stylesheet and the page skeleton.

Shared by the file reports and the delivery overview (and by the figures, for
the status colours), so that a status looks the same everywhere. Nothing here
knows about metrics or files.
"""

from __future__ import annotations

import html

from ..records import Status

# Background and text colour of a status in tables and badges (pass green, caution amber,
# fail red, incomplete grey), and a strong colour for lines drawn on figures.
STATUS_BACKGROUND = {
    Status.PASS: "#d8f0dc",
    Status.CAUTION: "#ffe8b0",
    Status.FAIL: "#f7c6c7",
    Status.INCOMPLETE: "#e4e4e4",
}
STATUS_TEXT = {
    Status.PASS: "#1b5e20",
    Status.CAUTION: "#7a4f00",
    Status.FAIL: "#8e0000",
    Status.INCOMPLETE: "#424242",
}
STATUS_LINE = {
    Status.PASS: "#2e7d32",
    Status.CAUTION: "#f59f00",
    Status.FAIL: "#d50000",
    Status.INCOMPLETE: "#9e9e9e",
}


def status_class(status: Status) -> str:
    """CSS class of a status, e.g. ``st-fail``."""
    return f"st-{status.value}"


def _status_rules() -> str:
    return "\n".join(
        f".{status_class(s)} {{ background: {STATUS_BACKGROUND[s]}; color: {STATUS_TEXT[s]}; }}" for s in Status
    )


STYLESHEET = f"""
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
        max-width: 70em; padding: 0 1em; color: #212121; line-height: 1.4; }}
h1 {{ font-size: 1.5em; border-bottom: 2px solid #455a64; padding-bottom: 0.2em; }}
h2 {{ font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #cfd8dc; }}
h3 {{ font-size: 1.05em; margin-top: 1.4em; }}
table {{ border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #b0bec5; padding: 0.2em 0.55em; vertical-align: top; }}
th {{ background: #eceff1; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
caption {{ caption-side: bottom; font-size: 0.85em; color: #546e7a; text-align: left; padding-top: 0.3em; }}
.badge {{ padding: 0.05em 0.45em; border-radius: 0.3em; font-weight: 600; }}
nav {{ margin: 0.3em 0; font-size: 0.92em; color: #455a64; }}
figure {{ margin: 0.8em 0; }}
figure img {{ max-width: 100%; border: 1px solid #cfd8dc; }}
figcaption {{ font-size: 0.85em; color: #546e7a; }}
{_status_rules()}
"""


def escape(text: str) -> str:
    """``text`` made safe for HTML element content and attribute values."""
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML5 page (inline stylesheet) around ``body``.

    Parameters
    ----------
    title : str
        Plain text for the ``<title>`` element; escaped here.
    body : str
        HTML of the page content, already escaped by the caller.
    """
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLESHEET}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
