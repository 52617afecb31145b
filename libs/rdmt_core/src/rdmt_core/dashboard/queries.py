"""What the dashboard reads from the store: fixed SQL templates, validated values, bounded results.

Nothing from the browser becomes SQL: each view's request is parsed into typed values (a monitor
the store has, a detector of WFI01..WFI18, a metric name that is an identifier, a scale, a cell in
range, a release or run id of safe characters, ISO dates), and those values are put into the
templates below as literals by the store's own :func:`rdmt_core.store.quote`. Every query that can
grow with the store is bounded: the trend by a time range and a row limit, the others by the latest
file of each identity or one file. The store is opened without its DDL (no CREATE, no ALTER) and
nothing here inserts or deletes: a read-only ClickHouse user is enough.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ..errors import StoreError
from ..geometry import DETECTORS, N_AMPLIFIERS, N_SUPERPIXELS, SCALES
from ..store import quote
from ..store.backends import Backend, StoreURL

EVALUATORS = ("mission", "soc", "change", "trend")
SEVERITY = {"pass": 1, "incomplete": 2, "caution": 3, "fail": 4}
IMAGE_MONITORS = ("astrometry", "background", "one_over_f", "psf_shape")  # Level-2 images: daily by default
DEFAULT_CADENCE = {**{m: timedelta(days=2) for m in IMAGE_MONITORS}}
DEFAULT_REFERENCE_CADENCE = timedelta(days=45)  # reference files: about monthly, with a margin
MAX_TREND_ROWS = 20_000
DEFAULT_TREND_DAYS = 3650

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_FILE_KEY = re.compile(r"^[A-Za-z0-9_]+/WFI\d\d(/[A-Za-z0-9_.-]+)*/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")


class BadRequest(ValueError):
    """A request value that is not valid; the message says which and why (shown to the user, status 400)."""


def monitor_name(value: str) -> str:
    if not _IDENTIFIER.match(value or ""):
        raise BadRequest(f"monitor {value!r} is not a monitor name")
    return value


def metric_name(value: str) -> str:
    if not _IDENTIFIER.match(value or ""):
        raise BadRequest(f"metric {value!r} is not a metric name")
    return value


def detector_name(value: str) -> str:
    if value not in DETECTORS:
        raise BadRequest(f"detector {value!r} is not one of WFI01..WFI18")
    return value


def scale_name(value: str) -> str:
    if value not in SCALES:
        raise BadRequest(f"scale {value!r} is not one of {', '.join(SCALES)}")
    return value


def cell_number(scale: str, value: str | int) -> int:
    try:
        cell = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"cell {value!r} is not a number") from None
    low, high = {"detector": (0, 0), "amplifier": (1, N_AMPLIFIERS), "superpixel": (0, N_SUPERPIXELS - 1)}[scale]
    if not low <= cell <= high:
        raise BadRequest(f"cell {cell} is out of range for scale {scale} ({low}..{high})")
    return cell


def safe_name(value: str, what: str) -> str:
    """A release or run id: letters, digits and ``._:-``, at most 128 characters."""
    if not _NAME.match(value or ""):
        raise BadRequest(f"{what} {value!r} is not valid (letters, digits and ._:- only)")
    return value


def file_key(value: str) -> str:
    if not _FILE_KEY.match(value or ""):
        raise BadRequest(f"file key {value!r} is not valid")
    return value


def timestamp(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{what} {value!r} is not an ISO date (YYYY-MM-DD)") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``35d`` or ``2w`` as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 12h, 35d or 2w")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def file_stem(detector: str, monitor: str, kind: str, optical_element: str, exposure_mode: str, t: datetime) -> str:
    """The stem of a file's report and ECSV, as :func:`rdmt_core.outputs.names.file_stem` names it."""
    parts = [detector, monitor, kind, optical_element, exposure_mode]
    series = "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", p).strip("-") or "unknown" for p in parts if p)
    return f"{series}_{pd.Timestamp(t).strftime('%Y%m%dT%H%M%S')}"


@dataclass
class Cadence:
    """How long each monitor may go without a new file before the Now page calls it overdue."""

    per_monitor: dict[str, timedelta] = field(default_factory=dict)

    def of(self, monitor: str) -> timedelta:
        if monitor in self.per_monitor:
            return self.per_monitor[monitor]
        return DEFAULT_CADENCE.get(monitor, DEFAULT_REFERENCE_CADENCE)


class DashboardStore:
    """Read-only queries of the dashboard, serialised on one connection (a chDB session is not thread-safe)."""

    def __init__(self, backend: Backend, url: StoreURL) -> None:
        self.backend = backend
        self.url = url
        self.db = backend.database
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, object]] = {}
        self._verdicts: dict[str, dict[tuple, dict[str, str]]] = {}  # release -> committed file -> failing verdicts

    def close(self) -> None:
        self.backend.close()

    def query(self, sql: str) -> pd.DataFrame:
        """Run one of the templates; a column name wins over an alias of the same name (``max(status) AS status``)."""
        with self._lock:
            try:
                return self.backend.query(f"{sql.rstrip()}\nSETTINGS prefer_column_name_to_alias = 1")
            except Exception as exc:
                raise StoreError(f"query failed: {str(exc).splitlines()[0] if str(exc) else exc}") from exc

    def _cached(self, key: str, seconds: float, compute):
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and now - hit[0] < seconds:
            return hit[1]
        value = compute()
        self._cache[key] = (now, value)
        return value

    # -- what the store holds ------------------------------------------------------------------

    def releases(self) -> list[str]:
        def compute():
            frame = self.query(f"SELECT DISTINCT release FROM {self.db}.files")
            names = sorted(str(r) for r in frame.release)
            return sorted(names, key=lambda r: r != "live")  # live first

        return self._cached("releases", 30, compute)

    def monitors(self) -> list[str]:
        return self._cached(
            "monitors",
            30,
            lambda: sorted(str(m) for m in self.query(f"SELECT DISTINCT monitor FROM {self.db}.files").monitor),
        )

    def known_monitor(self, value: str) -> str:
        monitor_name(value)
        if value not in self.monitors():
            raise BadRequest(f"monitor {value!r} has no file in the store")
        return value

    def known_release(self, value: str | None) -> str:
        value = value or "live"
        safe_name(value, "release")
        if value not in self.releases():
            raise BadRequest(f"release {value!r} has no file in the store")
        return value

    def metrics_of(self, monitor: str) -> list[tuple[str, str]]:
        """(metric, unit) of ``monitor``, from the latest file it wrote."""

        def compute():
            latest = self.query(
                f"SELECT detector, file_key, argMax(run_id, stored_at) AS run_id FROM {self.db}.files "
                f"WHERE monitor = {quote(monitor)} GROUP BY detector, file_key ORDER BY max(file_time) DESC LIMIT 1"
            )
            if latest.empty:
                return []
            row = latest.iloc[0]
            frame = self.query(
                f"SELECT metric, any(unit) AS unit FROM {self.db}.metrics WHERE monitor = {quote(monitor)} "
                f"AND detector = {quote(row.detector)} AND scale = 'detector' AND file_key = {quote(row.file_key)} "
                f"AND run_id = {quote(row.run_id)} GROUP BY metric ORDER BY metric"
            )
            return [(str(m), str(u)) for m, u in zip(frame.metric, frame.unit, strict=True)]

        return self._cached(f"metrics:{monitor}", 60, compute)

    # -- the latest files ------------------------------------------------------------------------

    def latest_files(self, release: str, detector: str | None = None) -> pd.DataFrame:
        """The latest file (latest run) of every identity (monitor, detector, kind, element, mode) of ``release``."""
        where = f"release = {quote(release)}" + (f" AND detector = {quote(detector)}" if detector else "")
        return self.query(
            f"""
            SELECT monitor, detector, kind, optical_element, exposure_mode,
                   argMax(file_key, (file_time, stored_at)) AS file_key,
                   argMax(run_id, (file_time, stored_at)) AS run_id,
                   max(file_time) AS file_time,
                   toString(argMax(status, (file_time, stored_at))) AS status,
                   argMax(n_fail, (file_time, stored_at)) AS n_fail,
                   argMax(n_caution, (file_time, stored_at)) AS n_caution,
                   max(stored_at) AS last_arrival
            FROM {self.db}.files WHERE {where}
            GROUP BY monitor, detector, kind, optical_element, exposure_mode
            ORDER BY monitor, detector, kind, optical_element, exposure_mode
            """
        )

    def verdicts_by_evaluator(
        self, files: pd.DataFrame, release: str, scale: str | None = None, failing_only: bool = False
    ) -> pd.DataFrame:
        """Per file of ``files`` (monitor, detector, file_key, run_id) and evaluator: worst status and counts.

        ``failing_only`` reads the caution and fail verdicts only. The files' ``file_key`` is not a leading
        column of the table's sorting key: the cheap columns (status, file_time) are read first (PREWHERE),
        so the file keys are compared on the few rows left.
        """
        if files.empty:
            return pd.DataFrame(columns=["monitor", "detector", "file_key", "run_id", "evaluator", "status", "n_fail"])
        tuples = ", ".join(
            f"({quote(m)}, {quote(d)}, {quote(k)}, {quote(r)})"
            for m, d, k, r in zip(files.monitor, files.detector, files.file_key, files.run_id, strict=True)
        )
        pairs = ", ".join(
            sorted({f"({quote(m)}, {quote(d)})" for m, d in zip(files.monitor, files.detector, strict=True)})
        )
        times = ", ".join(sorted({quote(pd.Timestamp(t).to_pydatetime()) for t in files.file_time}))
        prewhere = f"file_time IN ({times})" + (" AND status >= 'caution'" if failing_only else "")
        scale_filter = f"AND scale = {quote(scale)}" if scale else ""
        return self.query(
            f"""
            SELECT monitor, detector, file_key, run_id, evaluator, toString(max(status)) AS status,
                   countIf(status = 'fail') AS n_fail, countIf(status = 'caution') AS n_caution
            FROM {self.db}.evaluations
            PREWHERE {prewhere}
            WHERE (monitor, detector) IN ({pairs}) AND release = {quote(release)} {scale_filter}
              AND (monitor, detector, file_key, run_id) IN ({tuples})
            GROUP BY monitor, detector, file_key, run_id, evaluator
            """
        )

    def _failing_evaluators(self, files: pd.DataFrame, release: str) -> dict[tuple, dict[str, str]]:
        """The evaluators at caution or fail of each file with any (by monitor, detector, file key, run id).

        A committed file's verdicts never change (another run has another run id), so they are kept
        (up to 50,000 files) and only the files not seen before are read: the Now page reads the
        evaluations table when new files have arrived.
        """
        with_any = files[files.n_fail + files.n_caution > 0]
        keys = [(m, d, k, r) for m, d, k, r in zip(with_any.monitor, with_any.detector, with_any.file_key,
                                                    with_any.run_id, strict=True)]  # fmt: skip
        known = self._verdicts.setdefault(release, {})
        missing = [i for i, key in enumerate(keys) if key not in known]
        if missing:
            rows = self.verdicts_by_evaluator(with_any.iloc[missing], release, failing_only=True)
            fresh: dict[tuple, dict[str, str]] = {keys[i]: {} for i in missing}
            for row in rows.itertuples():
                if row.status in ("fail", "caution"):
                    fresh.setdefault((row.monitor, row.detector, row.file_key, row.run_id), {})[row.evaluator] = (
                        row.status
                    )
            if len(known) + len(fresh) > 50_000:
                known.clear()
            known.update(fresh)
        return {key: known[key] for key in keys}

    def now(self, release: str, cadence: Cadence, at: datetime | None = None) -> dict:
        """The Now grid: per monitor and detector, the worst status of its latest files and who fails."""
        at = at or datetime.now(UTC)
        files = self.latest_files(release)
        bad: dict[tuple[str, str], dict[str, str]] = {}
        for (monitor, detector, _key, _run), verdicts in self._failing_evaluators(files, release).items():
            per = bad.setdefault((monitor, detector), {})
            for evaluator, status in verdicts.items():
                if SEVERITY[status] > SEVERITY.get(per.get(evaluator, "pass"), 0):
                    per[evaluator] = status
        cells: dict[tuple[str, str], dict] = {}
        latest_run: dict[str, tuple[str, pd.Timestamp, pd.Timestamp]] = {}
        last_arrival: dict[str, pd.Timestamp] = {}
        for row in files.itertuples(index=False):  # one pass: a few hundred rows, no per-group pandas calls
            file_time = pd.Timestamp(row.file_time)
            arrival = pd.Timestamp(row.last_arrival)
            arrival = arrival.tz_localize(UTC) if arrival.tzinfo is None else arrival.tz_convert(UTC)
            cell = cells.get((row.monitor, row.detector))
            if cell is None:
                cell = cells[(row.monitor, row.detector)] = {
                    "status": row.status, "file_time": file_time, "arrival": arrival, "n_files": 0,
                    "run_id": str(row.run_id), "evaluators": bad.get((row.monitor, row.detector), {}),
                }  # fmt: skip
            elif SEVERITY.get(row.status, 0) > SEVERITY.get(cell["status"], 0):
                cell["status"] = row.status
            if file_time > cell["file_time"]:
                cell["file_time"], cell["run_id"] = file_time, str(row.run_id)
            cell["arrival"] = max(cell["arrival"], arrival)
            cell["n_files"] += 1
            known = latest_run.get(row.monitor)
            if known is None or (file_time, arrival) > (known[1], known[2]):
                latest_run[row.monitor] = (str(row.run_id), file_time, arrival)
            last_arrival[row.monitor] = max(last_arrival.get(row.monitor, arrival), arrival)
        for (monitor, _detector), cell in cells.items():
            cell["overdue"] = at - cell["arrival"] > cadence.of(monitor)
        monitors = sorted(latest_run)
        overdue_monitors = {m for m in monitors if at - last_arrival[m] > cadence.of(m)}
        latest_run = {m: (run, t) for m, (run, t, _) in latest_run.items()}
        return {"monitors": monitors, "cells": cells, "latest_run": latest_run, "overdue": overdue_monitors, "at": at}

    # -- a run ---------------------------------------------------------------------------------------

    def runs(self, release: str, limit: int = 50) -> pd.DataFrame:
        return self.query(
            f"SELECT run_id, min(stored_at) AS started, count() AS n_files, toString(max(status)) AS status, "
            f"groupUniqArray(monitor) AS monitors FROM {self.db}.files WHERE release = {quote(release)} "
            f"GROUP BY run_id ORDER BY started DESC LIMIT {int(limit)}"
        )

    def run_files(self, run_id: str, release: str) -> pd.DataFrame:
        return self.query(
            f"""
            SELECT monitor, detector, kind, optical_element, exposure_mode, file_key, run_id, file_time,
                   source, toString(status) AS status, n_fail, n_caution, n_metrics, n_evaluations
            FROM {self.db}.files FINAL WHERE run_id = {quote(run_id)} AND release = {quote(release)}
            ORDER BY detector, monitor, file_time
            """
        )

    def file_row(self, monitor: str, detector: str, key: str, run_id: str, release: str) -> pd.DataFrame:
        return self.query(
            f"SELECT monitor, detector, kind, optical_element, exposure_mode, file_key, run_id, file_time, "
            f"toString(status) AS status FROM {self.db}.files WHERE monitor = {quote(monitor)} "
            f"AND detector = {quote(detector)} AND release = {quote(release)} AND file_key = {quote(key)} "
            f"AND run_id = {quote(run_id)} LIMIT 1"
        )

    def detector_verdicts(self, files: pd.DataFrame, release: str) -> pd.DataFrame:
        """Detector-scale values and verdicts of ``files``: one row per metric and evaluator."""
        if files.empty:
            return pd.DataFrame()
        detector = str(files.detector.iloc[0])
        tuples = ", ".join(
            f"({quote(m)}, {quote(k)}, {quote(r)})"
            for m, k, r in zip(files.monitor, files.file_key, files.run_id, strict=True)
        )
        monitors = ", ".join(quote(m) for m in sorted(set(files.monitor)))
        values = self.query(
            f"SELECT monitor, file_key, metric, any(unit) AS unit, any(value) AS value FROM {self.db}.metrics "
            f"WHERE monitor IN ({monitors}) AND detector = {quote(detector)} AND scale = 'detector' "
            f"AND release = {quote(release)} AND (monitor, file_key, run_id) IN ({tuples}) "
            f"GROUP BY monitor, file_key, metric"
        )
        verdicts = self.query(
            f"SELECT monitor, file_key, metric, evaluator, toString(status) AS status, reason "
            f"FROM {self.db}.evaluations WHERE monitor IN ({monitors}) AND detector = {quote(detector)} "
            f"AND scale = 'detector' AND release = {quote(release)} AND (monitor, file_key, run_id) IN ({tuples})"
        )
        return values.merge(verdicts, on=["monitor", "file_key", "metric"], how="left")

    def detector_history(self, detector: str, release: str, monitors: list[str], days: int = 400) -> pd.DataFrame:
        """Detector-scale values of every metric of ``monitors`` on ``detector`` over the last ``days`` of files."""
        names = ", ".join(quote(m) for m in monitors) or "''"
        return self.query(
            f"""
            SELECT m.monitor AS monitor, m.metric AS metric, m.file_time AS file_time, m.value AS value,
                   m.optical_element AS optical_element, m.exposure_mode AS exposure_mode
            FROM {self.db}.metrics AS m
            WHERE m.monitor IN ({names}) AND m.detector = {quote(detector)} AND m.scale = 'detector' AND m.cell = 0
              AND m.release = {quote(release)}
              AND (m.monitor, m.file_key, m.run_id) IN (
                  SELECT monitor, file_key, argMax(run_id, stored_at) FROM {self.db}.files
                  WHERE monitor IN ({names}) AND detector = {quote(detector)} AND release = {quote(release)}
                    AND file_time >= (SELECT max(file_time) FROM {self.db}.files WHERE detector = {quote(detector)}
                                      AND release = {quote(release)}) - INTERVAL {int(days)} DAY
                  GROUP BY monitor, file_key)
            ORDER BY monitor, metric, file_time
            LIMIT {MAX_TREND_ROWS}
            """
        )

    # -- trend -----------------------------------------------------------------------------------------

    def trend(
        self,
        monitor: str,
        metric: str,
        scale: str,
        cell: int,
        detectors: list[str],
        releases: list[str],
        start: datetime | None,
        end: datetime | None,
        limit: int = MAX_TREND_ROWS,
    ) -> pd.DataFrame:
        """One metric at one scale and cell over time: value, mission and SOC limits, worst status, failing evaluators.

        One row per file (latest run) and release, oldest first; at most ``limit`` rows between ``start``
        and ``end`` (by default ten years up to 400 days ahead: a reference file's useafter can be in the future).
        """
        end = end or datetime.now(UTC) + timedelta(days=400)  # a reference file's useafter may be ahead
        start = start or end - timedelta(days=DEFAULT_TREND_DAYS)
        dets = ", ".join(quote(d) for d in detectors)
        rels = ", ".join(quote(r) for r in releases)
        base = (
            f"monitor = {quote(monitor)} AND detector IN ({dets}) AND release IN ({rels}) "
            f"AND file_time >= {quote(start)} AND file_time <= {quote(end)}"
        )
        where = f"{base} AND metric = {quote(metric)} AND scale = {quote(scale)} AND cell = {int(cell)}"
        latest = (
            f"SELECT release, file_key, argMax(run_id, stored_at) FROM {self.db}.files WHERE {base} "
            f"GROUP BY release, file_key"
        )
        values = self.query(
            f"""
            SELECT release, detector, file_time, file_key, run_id, optical_element, exposure_mode, value, unit
            FROM {self.db}.metrics WHERE {where} AND (release, file_key, run_id) IN ({latest})
            ORDER BY file_time, detector, release LIMIT {int(limit)}
            """
        )
        verdicts = self.query(
            f"""
            SELECT release, file_key, run_id, toString(max(status)) AS status,
                   anyIf(reference, evaluator = 'mission') AS mission_limit,
                   anyIf(reference, evaluator = 'soc') AS soc_limit,
                   arrayStringConcat(arraySort(groupUniqArrayIf(evaluator, status = 'fail')), ', ') AS failing
            FROM {self.db}.evaluations WHERE {where} AND (release, file_key, run_id) IN ({latest})
            GROUP BY release, file_key, run_id
            """
        )
        frame = values.merge(verdicts, on=["release", "file_key", "run_id"], how="left")
        frame["status"] = frame["status"].fillna("").astype(str)
        frame["failing"] = frame["failing"].fillna("").astype(str)
        return frame

    # -- super-pixel map ---------------------------------------------------------------------------------

    def previous_file(self, file: pd.Series) -> pd.DataFrame:
        """The latest run of the file of the same identity (and release) just before ``file``."""
        return self.query(
            f"""
            SELECT file_key, argMax(run_id, stored_at) AS run_id, any(file_time) AS file_time
            FROM {self.db}.files
            WHERE monitor = {quote(file.monitor)} AND detector = {quote(file.detector)}
              AND release = {quote(file.release)} AND kind = {quote(file.kind)}
              AND optical_element = {quote(file.optical_element)} AND exposure_mode = {quote(file.exposure_mode)}
              AND file_time < {quote(pd.Timestamp(file.file_time).to_pydatetime())}
            GROUP BY file_key ORDER BY max(file_time) DESC LIMIT 1
            """
        )

    def superpixels(self, monitor: str, detector: str, metric: str, key: str, run_id: str, release: str) -> np.ndarray:
        """The 1,024 super-pixel values of one metric of one file (NaN where missing), row-major."""
        frame = self.query(
            f"SELECT cell, value FROM {self.db}.metrics WHERE monitor = {quote(monitor)} "
            f"AND detector = {quote(detector)} AND metric = {quote(metric)} AND scale = 'superpixel' "
            f"AND release = {quote(release)} AND file_key = {quote(key)} AND run_id = {quote(run_id)} "
            f"LIMIT {N_SUPERPIXELS}"
        )
        values = np.full(N_SUPERPIXELS, np.nan)
        values[frame.cell.to_numpy(dtype=np.int64)] = frame.value.to_numpy(dtype=np.float64)
        return values

    def superpixel_status(
        self, monitor: str, detector: str, metric: str, key: str, run_id: str, release: str
    ) -> np.ndarray:
        """The worst status of each super-pixel (as text; '' where none)."""
        frame = self.query(
            f"SELECT cell, toString(max(status)) AS status FROM {self.db}.evaluations "
            f"WHERE monitor = {quote(monitor)} AND detector = {quote(detector)} AND metric = {quote(metric)} "
            f"AND scale = 'superpixel' AND release = {quote(release)} AND file_key = {quote(key)} "
            f"AND run_id = {quote(run_id)} GROUP BY cell"
        )
        status = np.full(N_SUPERPIXELS, "", dtype=object)
        status[frame.cell.to_numpy(dtype=np.int64)] = frame.status.to_numpy()
        return status
