"""The dashboard's look: the status colours of the reports (outputs/html.py) and the page skeleton.

The colours are the reports' own (a unit test checks they are equal); they are repeated here because
importing :mod:`rdmt_core.outputs` loads matplotlib, which the dashboard does not need.
"""

from __future__ import annotations

import html

STATUS_BACKGROUND = {"pass": "#d8f0dc", "caution": "#ffe8b0", "fail": "#f7c6c7", "incomplete": "#e4e4e4"}
STATUS_TEXT = {"pass": "#1b5e20", "caution": "#7a4f00", "fail": "#8e0000", "incomplete": "#424242"}
STATUS_LINE = {"pass": "#2e7d32", "caution": "#f59f00", "fail": "#d50000", "incomplete": "#9e9e9e"}


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


STYLESHEET = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto 2em;
       max-width: 80em; padding: 0 1em; color: #212121; line-height: 1.4; }
header { display: flex; gap: 1.2em; align-items: baseline; border-bottom: 2px solid #455a64; padding: 0.6em 0; }
header .brand { font-weight: 700; font-size: 1.15em; color: #263238; }
header a { color: #1565c0; text-decoration: none; }
h1 { font-size: 1.4em; margin: 0.6em 0 0.3em; }
h2 { font-size: 1.15em; margin-top: 1.4em; border-bottom: 1px solid #cfd8dc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #b0bec5; padding: 0.2em 0.5em; vertical-align: top; }
th { background: #eceff1; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.grid td { min-width: 5.5em; font-size: 0.85em; }
table.grid td a { color: inherit; text-decoration: none; display: block; }
td.overdue { background-image: repeating-linear-gradient(45deg, transparent 0 6px, rgba(0,0,0,0.09) 6px 12px); }
.overdue-tag { font-weight: 700; color: #4a148c; }
.nofile { color: #9e9e9e; }
.badge { padding: 0.05em 0.45em; border-radius: 0.3em; font-weight: 600; }
form.controls { background: #f5f7f8; border: 1px solid #cfd8dc; padding: 0.5em 0.8em; margin: 0.6em 0;
                display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; align-items: center; }
form.controls fieldset { border: none; padding: 0; margin: 0; }
.note { color: #546e7a; font-size: 0.88em; }
.small-trends { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure.spark { margin: 0; } figure.spark a { color: inherit; text-decoration: none; }
figure.spark figcaption { font-size: 0.8em; color: #455a64; max-width: 260px; }
.error { background: #f7c6c7; color: #8e0000; padding: 0.6em; }
""" + "\n".join(
    f".st-{s} {{ background: {STATUS_BACKGROUND[s]}; color: {STATUS_TEXT[s]}; }}" for s in STATUS_BACKGROUND
)


def badge(status: str) -> str:
    return f'<span class="badge st-{escape(status)}">{escape(status)}</span>' if status else ""


def page(title: str, body: str, bokeh_js: list[str] | None = None, head: str = "") -> str:
    scripts = "".join(f'<script src="{escape(src)}"></script>\n' for src in (bokeh_js or []))
    nav = (
        '<header><span class="brand">RDMT</span><a href="/">Now</a><a href="/runs">Runs</a>'
        '<a href="/detector/WFI01">Detectors</a><a href="/trend">Trend</a><a href="/map">Map</a></header>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)} · RDMT</title>\n<style>{STYLESHEET}</style>\n{scripts}{head}</head>\n"
        f"<body>\n{nav}\n{body}\n</body>\n</html>\n"
    )
