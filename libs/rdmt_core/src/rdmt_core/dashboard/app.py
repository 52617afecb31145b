"""The dashboard's Starlette application: the pages, the CSV downloads, the report files, protection.

Views: Now (``/``), the runs (``/runs``) and a run (``/run/{run_id}``), a detector (``/detector/{name}``),
the trend of a metric (``/trend``, ``/trend.csv``), a super-pixel map (``/map``, ``/map.csv``), the
report and ECSV files of ``--reports`` (``/reports/...``, ``/ecsv/...``), Bokeh's JavaScript
(``/static/bokeh/...``, from the installed bokeh package) and the probes (``/healthz``, ``/readyz``).
"""

from __future__ import annotations

import contextlib
import hmac
import io
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import StoreError
from ..geometry import DETECTORS, SCALES
from . import queries as q
from .queries import BadRequest, Cadence, DashboardStore, file_stem
from .style import badge, escape, page

log = logging.getLogger(__name__)
TOKEN_COOKIE = "rdmt_token"


@dataclass
class Settings:
    """How the dashboard serves: the report directory, cadences, and the optional protection."""

    reports: Path | None = None
    cadence: Cadence = field(default_factory=Cadence)
    token: str | None = None  # RDMT_DASHBOARD_TOKEN: a bearer token (header, or cookie set by ?token=)
    user_header: str | None = None  # RDMT_DASHBOARD_USER_HEADER: the trusted reverse proxy's user header

    @property
    def ecsv(self) -> Path | None:
        return self.reports.parent / "ecsv" if self.reports is not None else None


def bokeh_static() -> Path:
    from bokeh.util.paths import bokehjs_path

    return Path(bokehjs_path())


def bokeh_js() -> list[str]:
    from bokeh import __version__

    return [f"/static/bokeh/js/bokeh.min.js?v={__version__}"]


# -- helpers -------------------------------------------------------------------------------------------


def _qs(**params) -> str:
    pairs = []
    for key, value in params.items():
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and v != "":
                pairs.append((key, v))
    return urlencode(pairs)


def _time(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _release_form(action: str, releases: list[str], current: str, extra: str = "") -> str:
    options = "".join(
        f'<option value="{escape(r)}"{" selected" if r == current else ""}>{escape(r)}</option>' for r in releases
    )
    return (
        f'<form class="controls" method="get" action="{escape(action)}">{extra}<label>release '
        f'<select name="release" id="release" onchange="this.form.submit()">{options}</select></label></form>'
    )


def _report_links(settings: Settings, run_id: str | None, stem: str) -> str:
    links = []
    if settings.reports is not None and (settings.reports / f"{stem}.html").is_file():
        links.append(f'<a class="report" href="/reports/{escape(stem)}.html">report</a>')
    if settings.ecsv is not None and (settings.ecsv / f"{stem}.ecsv").is_file():
        links.append(f'<a class="ecsv" href="/ecsv/{escape(stem)}.ecsv">ECSV</a>')
    return " · ".join(links)


def _stem(row) -> str:
    return file_stem(row.detector, row.monitor, row.kind, row.optical_element, row.exposure_mode, row.file_time)


class Views:
    def __init__(self, store: DashboardStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.warm = threading.Event()

    def warm_up(self) -> None:
        """Read the Now grid of every release once, so that its verdicts are kept before the first user asks."""
        try:
            for release in self.store.releases():
                self.store.now(release, self.settings.cadence)
        except Exception as exc:  # the store may not answer yet: the first request reads it instead
            log.warning("warming up the Now page failed: %s", exc)
        finally:
            self.warm.set()

    # -- Now ---------------------------------------------------------------------------------------------

    def now(self, request: Request) -> Response:
        release = self.store.known_release(request.query_params.get("release")) if self.store.releases() else "live"
        if not self.store.releases():
            return HTMLResponse(page("Now", "<h1>Now</h1><p>The store has no file yet.</p>"))
        grid = self.store.now(release, self.settings.cadence)
        monitors = grid["monitors"]
        head = "".join(
            f'<th><a href="/run/{escape(grid["latest_run"][m][0])}?{_qs(release=release)}">{escape(m)}</a>'
            f'<div class="note">{_time(grid["latest_run"][m][1])}</div>'
            + ('<div class="overdue-tag">overdue</div>' if m in grid["overdue"] else "")
            + "</th>"
            for m in monitors
        )
        rows = []
        for detector in DETECTORS:
            cells = []
            for monitor in monitors:
                cell = grid["cells"].get((monitor, detector))
                if cell is None:
                    cells.append(
                        f'<td class="nofile" data-monitor="{escape(monitor)}" data-detector="{detector}" '
                        'data-status="none">no file</td>'
                    )
                    continue
                failing = cell["evaluators"]
                fails = sorted(e for e, s in failing.items() if s == "fail")
                cautions = sorted(e for e, s in failing.items() if s == "caution")
                text = escape(cell["status"])
                if fails:
                    text += ": " + escape(", ".join(fails))
                if cautions:
                    text += f'<div class="note">caution: {escape(", ".join(cautions))}</div>'
                classes = f"st-{cell['status']}" + (" overdue" if cell["overdue"] else "")
                if cell["overdue"]:
                    text += f'<div class="overdue-tag">overdue (last {_time(cell["arrival"])})</div>'
                href = f"/detector/{detector}?{_qs(release=release)}#{monitor}"
                title = f"{detector} {monitor}: latest file {_time(cell['file_time'])}"
                cells.append(
                    f'<td class="{classes}" data-monitor="{escape(monitor)}" data-detector="{detector}" '
                    f'data-status="{escape(cell["status"])}" title="{escape(title)}"><a href="{escape(href)}">{text}</a></td>'
                )
            rows.append(
                f'<tr><th><a href="/detector/{detector}?{_qs(release=release)}">{detector}</a></th>{"".join(cells)}</tr>'
            )
        body = (
            "<h1>Now</h1>"
            + _release_form("/", self.store.releases(), release)
            + f'<p class="note">The latest file of each monitor on each detector (release {escape(release)}), coloured by '
            "its worst status, with the evaluators that fail (caution below). A striped, purple-tagged cell has had no "
            f"new file for longer than its monitor's cadence. Shown at {_time(grid['at'])} UTC. Click a cell for the "
            "detector's verdicts, a monitor for its latest run.</p>"
            + f'<table class="grid" id="now-grid"><tr><th>detector</th>{head}</tr>{"".join(rows)}</table>'
        )
        return HTMLResponse(page("Now", body))

    # -- runs ----------------------------------------------------------------------------------------------

    def runs(self, request: Request) -> Response:
        release = self.store.known_release(request.query_params.get("release"))
        frame = self.store.runs(release)
        rows = "".join(
            f'<tr><td><a href="/run/{escape(r.run_id)}?{_qs(release=release)}">{escape(r.run_id)}</a></td>'
            f"<td>{_time(r.started)}</td><td>{escape(', '.join(sorted(r.monitors)))}</td>"
            f'<td class="num">{r.n_files}</td><td class="st-{escape(r.status)}">{escape(r.status)}</td></tr>'
            for r in frame.itertuples()
        )
        body = (
            "<h1>Runs</h1>"
            + _release_form("/runs", self.store.releases(), release)
            + "<table><tr><th>run</th><th>stored</th><th>monitors</th><th>files</th><th>worst</th></tr>"
            + rows
            + "</table>"
        )
        return HTMLResponse(page("Runs", body))

    def run(self, request: Request) -> Response:
        run_id = q.safe_name(request.path_params["run_id"], "run id")
        release = self.store.known_release(request.query_params.get("release"))
        files = self.store.run_files(run_id, release)
        if files.empty:
            raise BadRequest(f"run {run_id!r} has no file in release {release!r}")
        verdicts = self.store.verdicts_by_evaluator(files, release)
        by_file = {(v.monitor, v.detector, v.file_key): {} for v in verdicts.itertuples()}
        for v in verdicts.itertuples():
            by_file[(v.monitor, v.detector, v.file_key)][v.evaluator] = (v.status, v.n_fail)
        rows = []
        for detector in DETECTORS:
            mine = files[files.detector == detector]
            if mine.empty:
                rows.append(
                    f'<tr><th>{detector}</th><td class="nofile" colspan="{len(q.EVALUATORS) + 4}">no file</td></tr>'
                )
                continue
            for f in mine.itertuples():
                cells = []
                for evaluator in q.EVALUATORS:
                    status, n_fail = by_file.get((f.monitor, f.detector, f.file_key), {}).get(evaluator, ("", 0))
                    text = f"{status}" + (f" ({n_fail} failing)" if n_fail else "") if status else "—"
                    cells.append(f'<td class="st-{escape(status)}">{escape(text)}</td>')
                label = " ".join(p for p in (f.monitor, f.optical_element, f.exposure_mode) if p)
                stem = _stem(f)
                map_link = f'<a href="/map?{_qs(monitor=f.monitor, detector=f.detector, file_key=f.file_key, run_id=f.run_id, release=release)}">map</a>'
                links = " · ".join(x for x in (_report_links(self.settings, run_id, stem), map_link) if x)
                rows.append(
                    f'<tr data-detector="{detector}"><th><a href="/detector/{detector}?{_qs(release=release)}">{detector}</a></th>'
                    f"<td>{escape(label)}</td><td>{_time(f.file_time)}</td>"
                    f'<td class="st-{escape(f.status)}">{escape(f.status)}</td>{"".join(cells)}<td>{links}</td></tr>'
                )
        overview = ""
        if self.settings.reports is not None:
            import re

            name = "overview_" + (re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-") or "unknown") + ".html"
            if (self.settings.reports / name).is_file():
                overview = f'<p><a id="overview" href="/reports/{escape(name)}">the run\'s overview report</a></p>'
        n_fail = int((files.status == "fail").sum())
        body = (
            f"<h1>Run {escape(run_id)}</h1>"
            f"<p>Release {escape(release)}; {len(files)} files of {', '.join(sorted(set(files.monitor)))} on "
            f"{files.detector.nunique()} detectors; {n_fail} failing.</p>{overview}"
            '<table id="run-table"><tr><th>detector</th><th>monitor</th><th>file time</th><th>worst</th>'
            + "".join(f"<th>{e}</th>" for e in q.EVALUATORS)
            + "<th>files</th></tr>"
            + "".join(rows)
            + "</table>"
            + ("" if self.settings.reports else '<p class="note">Start with --reports DIR to link the reports.</p>')
        )
        return HTMLResponse(page(f"Run {run_id}", body))

    # -- a detector ------------------------------------------------------------------------------------------

    def detector(self, request: Request) -> Response:
        detector = q.detector_name(request.path_params["detector"])
        release = self.store.known_release(request.query_params.get("release"))
        files = self.store.latest_files(release, detector)
        current = ' class="current"'
        picker = " ".join(
            f'<a href="/detector/{d}?{_qs(release=release)}"{current if d == detector else ""}>{d}</a>'
            for d in DETECTORS
        )
        head = f"<h1>Detector {detector}</h1><p>{picker}</p>" + _release_form(
            f"/detector/{detector}", self.store.releases(), release
        )
        if files.empty:
            return HTMLResponse(page(detector, head + "<p>No file of this detector in this release.</p>"))
        verdicts = self.store.detector_verdicts(files, release)
        history = self.store.detector_history(detector, release, sorted(set(files.monitor)))
        sections = []
        for monitor, mine in files.groupby("monitor", sort=True, observed=True):
            parts = [f'<h2 id="{escape(monitor)}">{escape(monitor)}</h2>']
            for f in mine.itertuples():
                label = " ".join(p for p in (f.kind, f.optical_element, f.exposure_mode) if p)
                links = _report_links(self.settings, f.run_id, _stem(f))
                parts.append(
                    f"<p>{badge(f.status)} {escape(label)} of {_time(f.file_time)}, run "
                    f'<a href="/run/{escape(f.run_id)}?{_qs(release=release)}">{escape(f.run_id)}</a>'
                    f'{" · " + links if links else ""} · <a href="/map?{_qs(monitor=monitor, detector=detector, file_key=f.file_key, run_id=f.run_id, release=release)}">super-pixel map</a></p>'
                )
                v = verdicts[verdicts.file_key == f.file_key]
                rows = []
                worst_by_metric = {}
                for metric, group in v.groupby("metric", sort=True):
                    statuses = {
                        e: (s, r)
                        for e, s, r in zip(group.evaluator, group.status, group.reason, strict=True)
                        if isinstance(e, str)
                    }
                    worst = max((s for s, _ in statuses.values()), key=lambda s: q.SEVERITY.get(s, 0), default="")
                    worst_by_metric[metric] = worst
                    cells = "".join(
                        f'<td class="st-{escape(statuses[e][0])}" title="{escape(statuses[e][1])}">{escape(statuses[e][0])}</td>'
                        if e in statuses
                        else "<td>—</td>"
                        for e in q.EVALUATORS
                    )
                    reasons = "; ".join(f"{e}: {r}" for e, (s, r) in statuses.items() if s in ("fail", "caution"))
                    trend = f"/trend?{_qs(monitor=monitor, metric=metric, detector=detector, release=release)}"
                    rows.append(
                        f'<tr data-metric="{escape(metric)}"><td><a href="{escape(trend)}">{escape(metric)}</a></td>'
                        f'<td class="num">{group.value.iloc[0]:.6g}</td><td>{escape(group.unit.iloc[0])}</td>{cells}'
                        f"<td>{escape(reasons)}</td></tr>"
                    )
                parts.append(
                    '<table class="verdicts"><tr><th>metric</th><th>value</th><th>unit</th>'
                    + "".join(f"<th>{e}</th>" for e in q.EVALUATORS)
                    + "<th>why</th></tr>"
                    + "".join(rows)
                    + "</table>"
                )
            h = history[history.monitor == monitor]
            order = sorted(worst_by_metric, key=lambda m: (-q.SEVERITY.get(worst_by_metric[m], 0), m))[:6]
            series = [(m, worst_by_metric[m], h[h.metric == m]) for m in order if (h.metric == m).any()]
            if series:
                from .sparkline import sparkline

                parts.append(
                    '<div class="small-trends">'
                    + "".join(
                        sparkline(
                            m, st, d, f"/trend?{_qs(monitor=monitor, metric=m, detector=detector, release=release)}"
                        )
                        for m, st, d in series
                    )
                    + "</div>"
                )
            sections.append("".join(parts))
        return HTMLResponse(page(detector, head + "".join(sections)))

    # -- trend -------------------------------------------------------------------------------------------

    def _trend_params(self, request: Request) -> dict:
        params = request.query_params
        monitors = self.store.monitors()
        if not monitors:
            raise BadRequest("the store has no file yet")
        monitor = self.store.known_monitor(params.get("monitor") or ("dark" if "dark" in monitors else monitors[0]))
        metrics = [m for m, _ in self.store.metrics_of(monitor)]
        metric = q.metric_name(params.get("metric") or (metrics[0] if metrics else ""))
        scale = q.scale_name(params.get("scale") or "detector")
        cell = q.cell_number(scale, params.get("cell") or (1 if scale == "amplifier" else 0))
        detectors = [q.detector_name(d) for d in params.getlist("detector")] or ["WFI01"]
        releases = [self.store.known_release(r) for r in params.getlist("release")] or [self.store.known_release(None)]
        start = q.timestamp(params.get("start"), "start")
        end = q.timestamp(params.get("end"), "end")
        if end is not None and len(params.get("end", "")) <= 10:
            end = end.replace(hour=23, minute=59, second=59)
        return dict(
            monitor=monitor, metric=metric, scale=scale, cell=cell, detectors=detectors, releases=releases,
            start=start, end=end, metrics=metrics,
        )  # fmt: skip

    def trend(self, request: Request) -> Response:
        p = self._trend_params(request)
        frame = self.store.trend(
            p["monitor"], p["metric"], p["scale"], p["cell"], p["detectors"], p["releases"], p["start"], p["end"]
        )
        monitor_options = "".join(
            f"<option{' selected' if m == p['monitor'] else ''}>{escape(m)}</option>" for m in self.store.monitors()
        )
        metric_options = "".join(
            f'<option value="{escape(m)}"{" selected" if m == p["metric"] else ""}>{escape(m)} ({escape(u)})</option>'
            for m, u in self.store.metrics_of(p["monitor"])
        )
        scale_options = "".join(f"<option{' selected' if s == p['scale'] else ''}>{s}</option>" for s in SCALES)
        det_boxes = "".join(
            f'<label><input type="checkbox" name="detector" value="{d}"{" checked" if d in p["detectors"] else ""}>{d[3:]}</label> '
            for d in DETECTORS
        )
        rel_boxes = "".join(
            f'<label><input type="checkbox" name="release" value="{escape(r)}"{" checked" if r in p["releases"] else ""}>{escape(r)}</label> '
            for r in self.store.releases()
        )
        date = lambda t: t.strftime("%Y-%m-%d") if t else ""  # noqa: E731
        form = (
            '<form class="controls" method="get" action="/trend" id="trend-form">'
            f'<label>monitor <select name="monitor" onchange="this.form.metric.value=\'\';this.form.submit()">{monitor_options}</select></label>'
            f'<label>metric <select name="metric">{metric_options}</select></label>'
            f'<label>scale <select name="scale">{scale_options}</select></label>'
            f'<label>cell <input name="cell" type="number" min="0" max="1023" value="{p["cell"]}" style="width:5em"></label>'
            f'<label>from <input name="start" type="date" value="{date(p["start"])}"></label>'
            f'<label>to <input name="end" type="date" value="{date(p["end"])}"></label>'
            f'<fieldset id="releases">releases: {rel_boxes}</fieldset>'
            f'<fieldset id="detectors">detectors: {det_boxes}</fieldset>'
            '<button type="submit">Show</button></form>'
        )
        query = _qs(
            monitor=p["monitor"], metric=p["metric"], scale=p["scale"], cell=p["cell"], detector=p["detectors"],
            release=p["releases"], start=date(p["start"]), end=date(p["end"]),
        )  # fmt: skip
        title = f"{p['monitor']} {p['metric']} ({p['scale']} {p['cell']})"
        if frame.empty:
            plot, script = "<p>No value in this range.</p>", ""
        else:
            from .plots import trend_figure

            unit = str(frame.unit.iloc[0])
            script, plot = trend_figure(frame, title, unit, p["releases"])
        n_fail = int((frame.status == "fail").sum()) if not frame.empty else 0
        truncated = len(frame) >= q.MAX_TREND_ROWS
        body = (
            f"<h1>Trend: {escape(title)}</h1>{form}"
            f'<p><a id="csv" href="/trend.csv?{escape(query)}">Download CSV</a> · {len(frame)} points, {n_fail} failing'
            + (f" (the first {q.MAX_TREND_ROWS}: narrow the dates)" if truncated else "")
            + ". Points are filled with their status colour (green pass, amber caution, red fail, grey incomplete); "
            "the dashed red line is the mission limit, the dotted amber one the SOC limit. Drag to pan, scroll to zoom; "
            "click a legend entry to hide it.</p>" + f'<div id="trend-plot">{plot}</div>'
        )
        return HTMLResponse(page(f"Trend {title}", body, bokeh_js() if script else None, head=script))

    def trend_csv(self, request: Request) -> Response:
        p = self._trend_params(request)
        frame = self.store.trend(
            p["monitor"], p["metric"], p["scale"], p["cell"], p["detectors"], p["releases"], p["start"], p["end"]
        )
        frame.insert(0, "metric", p["metric"])
        frame.insert(0, "monitor", p["monitor"])
        frame.insert(3, "scale", p["scale"])
        frame.insert(4, "cell", p["cell"])
        name = f"rdmt_{p['monitor']}_{p['metric']}_{p['scale']}{p['cell']}.csv"
        return _csv(frame, name)

    # -- super-pixel map -----------------------------------------------------------------------------------

    def _map_params(self, request: Request) -> dict:
        params = request.query_params
        monitors = self.store.monitors()
        if not monitors:
            raise BadRequest("the store has no file yet")
        monitor = self.store.known_monitor(params.get("monitor") or ("dark" if "dark" in monitors else monitors[0]))
        detector = q.detector_name(params.get("detector") or "WFI01")
        release = self.store.known_release(params.get("release"))
        files = self.store.query(
            f"SELECT file_key, argMax(run_id, stored_at) AS run_id, any(file_time) AS file_time, any(kind) AS kind, "
            f"any(optical_element) AS optical_element, any(exposure_mode) AS exposure_mode FROM {self.store.db}.files "
            f"WHERE monitor = {q.quote(monitor)} AND detector = {q.quote(detector)} AND release = {q.quote(release)} "
            "GROUP BY file_key ORDER BY max(file_time) DESC LIMIT 200"
        )
        if files.empty:
            raise BadRequest(f"{monitor} has no file of {detector} in release {release}")
        key = q.file_key(params.get("file_key") or str(files.file_key.iloc[0]))
        chosen = files[files.file_key == key]
        if chosen.empty:
            raise BadRequest(f"file {key!r} is not a {monitor} file of {detector} in release {release}")
        run_id = q.safe_name(params.get("run_id") or str(chosen.run_id.iloc[0]), "run id")
        metrics = [m for m, _ in self.store.metrics_of(monitor)]
        metric = q.metric_name(params.get("metric") or (metrics[0] if metrics else ""))
        file = chosen.iloc[0].copy()
        file["monitor"], file["detector"], file["release"] = monitor, detector, release
        return dict(monitor=monitor, detector=detector, release=release, key=key, run_id=run_id, metric=metric,
                    metrics=metrics, files=files, file=file)  # fmt: skip

    def _map_data(self, p: dict):
        s = self.store
        values = s.superpixels(p["monitor"], p["detector"], p["metric"], p["key"], p["run_id"], p["release"])
        status = s.superpixel_status(p["monitor"], p["detector"], p["metric"], p["key"], p["run_id"], p["release"])
        previous = s.previous_file(p["file"])
        if previous.empty:
            return values, status, None, None
        prev = previous.iloc[0]
        before = s.superpixels(
            p["monitor"], p["detector"], p["metric"], str(prev.file_key), str(prev.run_id), p["release"]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            # 0 -> 0 is no change (1); x -> 0 or 0 -> x is infinitely far from it (a count that appears or vanishes)
            ratio = np.where((before == 0) & (values == 0), 1.0, values / before)
        return values, status, before, (ratio, prev)

    def map(self, request: Request) -> Response:
        p = self._map_params(request)
        values, status, _, ratio = self._map_data(p)
        opts = lambda items, cur: "".join(  # noqa: E731
            f'<option value="{escape(v)}"{" selected" if v == cur else ""}>{escape(label)}</option>'
            for v, label in items
        )
        form = (
            '<form class="controls" method="get" action="/map" id="map-form">'
            f'<input type="hidden" name="release" value="{escape(p["release"])}">'
            f"<label>monitor <select name=\"monitor\" onchange=\"this.form.file_key.value='';this.form.metric.value='';this.form.submit()\">{opts([(m, m) for m in self.store.monitors()], p['monitor'])}</select></label>"
            f'<label>detector <select name="detector" onchange="this.form.file_key.value=\'\';this.form.submit()">{opts([(d, d) for d in DETECTORS], p["detector"])}</select></label>'
            f'<label>file <select name="file_key">{opts([(k, k) for k in p["files"].file_key], p["key"])}</select></label>'
            f'<label>metric <select name="metric">{opts([(m, m) for m in p["metrics"]], p["metric"])}</select></label>'
            '<button type="submit">Show</button></form>'
        )
        from .plots import superpixel_figures

        ratio_title = f"ratio to the previous file ({_time(ratio[1].file_time)})" if ratio else ""
        script, div = superpixel_figures(
            values, status, ratio[0] if ratio else None, f"{p['metric']} of {_time(p['file'].file_time)}", ratio_title
        )
        query = _qs(monitor=p["monitor"], detector=p["detector"], file_key=p["key"], run_id=p["run_id"],
                    metric=p["metric"], release=p["release"])  # fmt: skip
        body = (
            f"<h1>Super-pixel map: {escape(p['detector'])} {escape(p['monitor'])} {escape(p['metric'])}</h1>{form}"
            f'<p><a id="csv" href="/map.csv?{escape(query)}">Download CSV</a> · 32 × 32 super-pixels, row 0 at the '
            "bottom, column = amplifier − 1; outlined red where an evaluator fails, amber at caution; grey: no value."
            + ("" if ratio else " No earlier file of this identity: no ratio map.")
            + f'</p><div id="map-plot">{div}</div>'
        )
        return HTMLResponse(page("Map", body, bokeh_js(), head=script))

    def map_csv(self, request: Request) -> Response:
        p = self._map_params(request)
        values, status, before, ratio = self._map_data(p)
        cells = np.arange(values.size)
        frame = pd.DataFrame(
            {"cell": cells, "row": cells // 32, "column": cells % 32, "value": values, "status": status}
        )
        if ratio is not None:
            frame["previous_file_key"] = str(ratio[1].file_key)
            frame["previous_value"] = before
            frame["ratio"] = ratio[0]
        name = f"rdmt_{p['detector']}_{p['monitor']}_{p['metric']}_superpixels.csv"
        return _csv(frame, name)

    # -- files and probes -----------------------------------------------------------------------------------

    def report_file(self, request: Request) -> Response:
        return _confined(self.settings.reports, request.path_params["path"])

    def ecsv_file(self, request: Request) -> Response:
        return _confined(self.settings.ecsv, request.path_params["path"])

    def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    def readyz(self, request: Request) -> Response:
        if not self.warm.is_set():
            return PlainTextResponse("warming up", status_code=503)
        try:
            self.store.query("SELECT 1 AS one")
        except Exception as exc:  # the store cannot answer: not ready
            return PlainTextResponse(f"store not ready: {exc}", status_code=503)
        return PlainTextResponse("ready")


def _csv(frame: pd.DataFrame, name: str) -> Response:
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return Response(
        out.getvalue(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _confined(root: Path | None, relative: str) -> Response:
    """The file ``relative`` under ``root``, or 404: never a path outside it (``..``, absolute, symlinks out)."""
    if root is None:
        return PlainTextResponse("no report directory (start with --reports DIR)", status_code=404)
    base = root.resolve()
    if not relative or os.path.isabs(relative) or "\x00" in relative:
        return PlainTextResponse("not found", status_code=404)
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(target)


class Protection(BaseHTTPMiddleware):
    """A bearer token (header, or the cookie ``?token=`` sets) and/or a trusted proxy's user header."""

    OPEN = ("/healthz", "/readyz")

    def __init__(self, app, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    async def dispatch(self, request: Request, call_next):
        if request.url.path in self.OPEN:
            return await call_next(request)
        s = self.settings
        if s.user_header and not request.headers.get(s.user_header):
            return PlainTextResponse(f"missing {s.user_header}: go through the proxy", status_code=401)
        if s.token:
            given = request.query_params.get("token")
            if given and hmac.compare_digest(given.encode(), s.token.encode()):
                clean = request.url.remove_query_params("token")
                response = RedirectResponse(str(clean.path) + (f"?{clean.query}" if clean.query else ""), 303)
                response.set_cookie(TOKEN_COOKIE, s.token, httponly=True, samesite="strict")
                return response
            header = request.headers.get("authorization", "")
            offered = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
            if not offered or not hmac.compare_digest(offered.encode(), s.token.encode()):
                return PlainTextResponse(
                    "unauthorised: send 'Authorization: Bearer TOKEN', or open /?token=TOKEN once", status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
        return await call_next(request)


def create_app(store: DashboardStore, settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    views = Views(store, settings)

    def guarded(view):
        def endpoint(request: Request) -> Response:
            try:
                return view(request)
            except BadRequest as exc:
                return HTMLResponse(page("Bad request", f'<p class="error">{escape(exc)}</p>'), status_code=400)
            except StoreError as exc:
                log.error("%s: %s", request.url.path, exc)
                return HTMLResponse(page("Store error", f'<p class="error">{escape(exc)}</p>'), status_code=503)

        return endpoint

    routes = [
        Route("/", guarded(views.now)),
        Route("/runs", guarded(views.runs)),
        Route("/run/{run_id}", guarded(views.run)),
        Route("/detector/{detector}", guarded(views.detector)),
        Route("/trend", guarded(views.trend)),
        Route("/trend.csv", guarded(views.trend_csv)),
        Route("/map", guarded(views.map)),
        Route("/map.csv", guarded(views.map_csv)),
        Route("/reports/{path:path}", views.report_file),
        Route("/ecsv/{path:path}", views.ecsv_file),
        Route("/favicon.ico", lambda request: Response(status_code=204)),  # the report pages ask for one
        Route("/healthz", views.healthz),
        Route("/readyz", views.readyz),
        Mount("/static/bokeh", StaticFiles(directory=bokeh_static()), name="bokeh"),
    ]
    middleware = [Middleware(Protection, settings=settings)] if settings.token or settings.user_header else []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=views.warm_up, name="rdmt-dashboard-warm-up", daemon=True).start()
        yield

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.started = datetime.now(UTC)
    return app
