"""The metric store: one DDL and one set of queries for chDB and a ClickHouse server.

Writing a file's results is all-or-nothing: metrics and evaluations are
inserted first and a row in ``files`` is written last, as the commit marker.
Only committed files count as history. If a write fails, the rows already
written are deleted; rows left by a crash (no marker) are deleted before the
same file is written again. Writing the same file and monitor again with the
same run id and release changes nothing.

The masks of a monitor's tracked pixel classes (the dark's hot and dead pixels) are written with the
file's rows, to ``pixel_masks``, and read back as the previous file's masks of the next file of the same
identity (:meth:`Store.previous_masks`) and as the reference of a cross-file check
(:meth:`Store.reference_masks`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources

import numpy as np
import pandas as pd

from ..errors import StoreError
from ..evaluators import History
from ..geometry import SCALES, cells
from ..pixel_masks import PixelMasks, pack_mask
from ..records import FileResult, Status, worst
from .backends import Backend, StoreURL, connect, parse_store_url

__all__ = ["Store", "StoreURL", "open_store", "parse_store_url"]


def quote(value: object) -> str:
    """A SQL literal for a string, number or datetime."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return f"toDateTime64('{utc.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value)) if isinstance(value, float | np.floating) else str(int(value))
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


class Store:
    """RDMT tables in a ClickHouse engine (chDB or server)."""

    def __init__(self, backend: Backend, url: StoreURL) -> None:
        self.backend = backend
        self.url = url
        self.db = backend.database
        ddl = resources.files("rdmt_core.store").joinpath("schema.sql").read_text(encoding="utf-8")
        try:
            for statement in _statements(ddl.replace("{db}", self.db)):
                backend.execute(statement)
            backend.use_database()
        except Exception as exc:
            backend.close()
            raise StoreError(f"store {url.display}: cannot create tables ({exc})") from exc

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    # -- writing -----------------------------------------------------------------------------

    def _where_file(self, result: FileResult) -> str:
        return (
            f"monitor = {quote(result.monitor)} AND detector = {quote(result.identity.detector)} "
            f"AND release = {quote(result.release)} AND file_key = {quote(result.identity.file_key)} "
            f"AND run_id = {quote(result.run_id)}"  # leading sort-key columns first, so the index serves it
        )

    def is_committed(self, result: FileResult) -> bool:
        frame = self.backend.query(f"SELECT count() AS n FROM {self.db}.files WHERE {self._where_file(result)}")
        return int(frame["n"].iloc[0]) > 0

    def write(self, result: FileResult, masks: Mapping[str, np.ndarray] | None = None) -> bool:
        """Store one file's metrics, evaluations and pixel ``masks`` (by class) atomically; False if already stored."""
        try:
            if self.is_committed(result):
                return False
            self._delete_uncommitted(result)
            stored_at = pd.Timestamp.now(tz="UTC")
            metrics = metrics_frame(result, stored_at)
            evaluations = evaluations_frame(result, stored_at)
            try:
                self.backend.insert("metrics", metrics)
                if len(evaluations):
                    self.backend.insert("evaluations", evaluations)
                if masks:
                    self.backend.insert("pixel_masks", masks_frame(result, masks, stored_at))
                self.backend.insert("files", files_frame(result, len(metrics), evaluations, stored_at))
            except Exception as original:
                try:
                    self._delete_uncommitted(result)
                except Exception as cleanup:  # keep the first error; say the cleanup failed too
                    original.add_note(f"cleaning up the partial write failed as well: {cleanup}")
                raise
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store {self.url.display}: writing {result.identity.source} failed ({exc})") from exc
        return True

    def _delete_uncommitted(self, result: FileResult) -> None:
        where = self._where_file(result)
        for table in ("metrics", "evaluations", "pixel_masks"):
            if int(self.backend.query(f"SELECT count() AS n FROM {self.db}.{table} WHERE {where}")["n"].iloc[0]):
                self.backend.execute(f"DELETE FROM {self.db}.{table} WHERE {where}")

    # -- reading -----------------------------------------------------------------------------

    def sql(self, query: str) -> pd.DataFrame:
        """Run any query (the public SQL interface); the default database is RDMT's (``metrics`` = ``rdmt.metrics``)."""
        try:
            return self.backend.query(query)
        except Exception as exc:
            raise StoreError(f"query failed: {str(exc).splitlines()[0] if str(exc) else exc}") from exc

    def history(
        self,
        monitor: str,
        detector: str,
        release: str,
        before: datetime,
        exclude_key: str,
        window: int,
        *,
        kind: str | None = None,
        optical_element: str = "",
        exposure_mode: str = "",
    ) -> History:
        """Committed deliveries of ``monitor`` on ``detector`` strictly before ``before``, oldest first.

        Only files of the same optical element and exposure mode count (and of the same ``kind``
        when given): a F158 flat is compared with earlier F158 flats, not with F087 ones. Rows of a
        store written before these columns existed read as empty, like files without them.
        """
        kind_filter = f"AND kind = {quote(kind)} " if kind is not None else ""
        files = self.backend.query(
            f"SELECT file_key, argMax(run_id, stored_at) AS run_id, any(file_time) AS t "
            f"FROM {self.db}.files WHERE monitor = {quote(monitor)} AND detector = {quote(detector)} "
            f"AND release = {quote(release)} AND file_time < {quote(before)} AND file_key != {quote(exclude_key)} "
            f"{kind_filter}AND optical_element = {quote(optical_element)} "
            f"AND exposure_mode = {quote(exposure_mode)} "
            f"GROUP BY file_key ORDER BY t DESC LIMIT {int(window)}"
        )
        if files.empty:
            return History()
        files = files.iloc[::-1].reset_index(drop=True)  # oldest first
        pairs = ", ".join(f"({quote(k)}, {quote(r)})" for k, r in zip(files.file_key, files.run_id, strict=True))
        rows = self.backend.query(
            f"SELECT file_key, metric, toString(scale) AS scale, cell, value FROM {self.db}.metrics "
            f"WHERE monitor = {quote(monitor)} AND detector = {quote(detector)} AND release = {quote(release)} "
            f"AND (file_key, run_id) IN ({pairs})"
        )
        order = {key: i for i, key in enumerate(files.file_key)}
        row_index = rows.file_key.map(order).to_numpy()
        values: dict[tuple[str, str], np.ndarray] = {}
        for (metric, scale), group in rows.groupby(["metric", "scale"], sort=False, observed=True):
            n_cells = len(cells(str(scale)))
            grid = np.full((len(files), n_cells), np.nan)
            cell_pos = group.cell.to_numpy(dtype=np.int64) - (1 if scale == "amplifier" else 0)
            grid[row_index[group.index], cell_pos] = group.value.to_numpy(dtype=np.float64)
            values[(str(metric), str(scale))] = grid
        return History(values)

    def previous_masks(
        self,
        monitor: str,
        detector: str,
        release: str,
        before: datetime,
        exclude_key: str,
        *,
        kind: str,
        optical_element: str = "",
        exposure_mode: str = "",
    ) -> PixelMasks | None:
        """The packed masks of the latest committed file strictly before ``before`` with masks, or None.

        The same monitor, detector, release, kind, optical element and exposure mode as the file
        being evaluated (its history group, as :meth:`history`); the latest run of each file.
        """
        group = (
            f"AND kind = {quote(kind)} AND optical_element = {quote(optical_element)} "
            f"AND exposure_mode = {quote(exposure_mode)}"
        )
        return self._latest_masks(
            monitor, detector, release, f"file_time < {quote(before)} AND file_key != {quote(exclude_key)} {group}"
        )

    def reference_masks(self, monitor: str, detector: str, release: str, until: datetime) -> PixelMasks | None:
        """The packed masks of ``monitor``'s latest committed file of ``detector`` with a time at or before ``until``.

        The reference of a cross-file check: for a DARK, the MASK in effect at the dark's useafter.
        """
        return self._latest_masks(monitor, detector, release, f"file_time <= {quote(until)}")

    def _latest_masks(self, monitor: str, detector: str, release: str, condition: str) -> PixelMasks | None:
        where = f"monitor = {quote(monitor)} AND detector = {quote(detector)} AND release = {quote(release)}"
        latest = (  # the latest committed run of each file
            f"SELECT file_key, argMax(run_id, stored_at) FROM {self.db}.files WHERE {where} GROUP BY file_key"
        )
        found = self.backend.query(
            f"SELECT file_key, run_id FROM {self.db}.pixel_masks WHERE {where} AND {condition} "
            f"AND (file_key, run_id) IN ({latest}) ORDER BY file_time DESC, file_key DESC LIMIT 1"
        )
        if found.empty:
            return None
        file_key, run_id = str(found.file_key.iloc[0]), str(found.run_id.iloc[0])
        rows = self.backend.query(
            f"SELECT class, argMax(data, stored_at) AS data FROM {self.db}.pixel_masks WHERE {where} "
            f"AND file_key = {quote(file_key)} AND run_id = {quote(run_id)} GROUP BY class"
        )
        packed = {str(c): base64.b64decode(d) for c, d in zip(rows["class"], rows.data, strict=True)}
        return PixelMasks(file_key, packed)

    def optical_elements(self, monitor: str, detector: str) -> list[str]:
        """The optical elements of the files of ``monitor`` on ``detector`` (empty ones left out), sorted."""
        frame = self.backend.query(
            f"SELECT DISTINCT optical_element FROM {self.db}.files WHERE monitor = {quote(monitor)} "
            f"AND detector = {quote(detector)} AND optical_element != '' ORDER BY optical_element"
        )
        return [str(e) for e in frame.optical_element]

    def metric_history(
        self,
        monitor: str,
        metric: str,
        detector: str,
        scale: str = "detector",
        release: str | None = None,
        optical_element: str | None = None,
    ) -> pd.DataFrame:
        """Values of one metric over deliveries (latest run per file), with the worst status of each.

        ``optical_element`` keeps the files of that element only (e.g. ``F158``); the columns
        ``optical_element`` and ``exposure_mode`` tell the files' groups apart.
        """
        if scale not in SCALES:
            raise StoreError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
        release_filter = f"AND release = {quote(release)}" if release else ""
        element_filter = f"AND optical_element = {quote(optical_element.upper())}" if optical_element else ""
        return self.backend.query(
            f"""
            SELECT m.release AS release, m.file_time AS file_time, m.optical_element AS optical_element,
                   m.exposure_mode AS exposure_mode, m.file_key AS file_key, m.cell AS cell,
                   m.value AS value, m.unit AS unit, ifNull(e.status, '') AS status, m.run_id AS run_id
            FROM {self.db}.metrics AS m
            INNER JOIN (
                SELECT release, file_key, argMax(run_id, stored_at) AS run_id FROM {self.db}.files
                WHERE monitor = {quote(monitor)} AND detector = {quote(detector)} {release_filter} {element_filter}
                GROUP BY release, file_key
            ) AS f ON m.release = f.release AND m.file_key = f.file_key AND m.run_id = f.run_id
            LEFT JOIN (
                SELECT release, file_key, run_id, cell, toString(max(status)) AS status FROM {self.db}.evaluations
                WHERE monitor = {quote(monitor)} AND detector = {quote(detector)} AND metric = {quote(metric)}
                  AND scale = {quote(scale)}
                GROUP BY release, file_key, run_id, cell
            ) AS e ON m.release = e.release AND m.file_key = e.file_key AND m.run_id = e.run_id AND m.cell = e.cell
            WHERE m.monitor = {quote(monitor)} AND m.detector = {quote(detector)} AND m.metric = {quote(metric)}
              AND m.scale = {quote(scale)}
            ORDER BY m.release, m.optical_element, m.exposure_mode, m.file_time, m.cell
            """
        )


def open_store(url: str) -> Store:
    """Connect to the store at ``url`` and create the tables if needed."""
    backend, parsed = connect(url)
    return Store(backend, parsed)


def _statements(ddl: str) -> list[str]:
    lines = [line for line in ddl.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _identity_columns(result: FileResult, n: int) -> dict[str, object]:
    ident = result.identity
    return {
        "run_id": [result.run_id] * n,
        "release": [result.release] * n,
        "monitor": [result.monitor] * n,
        "detector": [ident.detector] * n,
        "kind": [ident.kind] * n,
        "optical_element": [ident.optical_element] * n,
        "exposure_mode": [ident.exposure_mode] * n,
        "file_key": [ident.file_key] * n,
        "file_time": pd.DatetimeIndex([pd.Timestamp(ident.file_time)] * n),
        "source": [ident.source] * n,
    }


def metrics_frame(result: FileResult, stored_at: pd.Timestamp) -> pd.DataFrame:
    """One row per metric value, columns as in the ``metrics`` table."""
    names, units, scales, cell_ids, values = [], [], [], [], []
    for metric in result.metrics:
        for scale in SCALES:
            v = metric.values.at(scale)
            names.append(np.full(len(v), metric.spec.name, dtype=object))
            units.append(np.full(len(v), metric.spec.unit, dtype=object))
            scales.append(np.full(len(v), scale, dtype=object))
            cell_ids.append(cells(scale))
            values.append(v)
    n = sum(len(v) for v in values)
    frame = pd.DataFrame(_identity_columns(result, n))
    frame["metric"] = np.concatenate(names)
    frame["unit"] = np.concatenate(units)
    frame["scale"] = np.concatenate(scales)
    frame["cell"] = np.concatenate(cell_ids).astype(np.uint16)
    frame["value"] = np.concatenate(values)
    frame["stored_at"] = stored_at
    return frame


def evaluations_frame(result: FileResult, stored_at: pd.Timestamp) -> pd.DataFrame:
    """One row per evaluation, columns as in the ``evaluations`` table."""
    blocks = result.evaluations
    n = sum(len(b.cells) for b in blocks)
    frame = pd.DataFrame(_identity_columns(result, n))
    if not blocks:
        columns = ("metric", "scale", "cell", "evaluator", "status", "reference", "threshold", "reason", "stored_at")
        return frame.assign(**{c: [] for c in columns})
    frame["metric"] = np.concatenate([np.full(len(b.cells), b.metric, dtype=object) for b in blocks])
    frame["scale"] = np.concatenate([np.full(len(b.cells), b.scale, dtype=object) for b in blocks])
    frame["cell"] = np.concatenate([b.cells for b in blocks]).astype(np.uint16)
    frame["evaluator"] = np.concatenate([np.full(len(b.cells), b.evaluator, dtype=object) for b in blocks])
    frame["status"] = np.concatenate([b.status for b in blocks]).astype(object)
    frame["reference"] = np.concatenate([b.reference for b in blocks]).astype(np.float64)
    frame["threshold"] = np.concatenate([np.full(len(b.cells), b.threshold) for b in blocks])
    frame["reason"] = np.concatenate([b.reason for b in blocks]).astype(object)
    frame["stored_at"] = stored_at
    return frame


def masks_frame(result: FileResult, masks: Mapping[str, np.ndarray], stored_at: pd.Timestamp) -> pd.DataFrame:
    """One row per pixel class, columns as in the ``pixel_masks`` table (the mask packed, then base64)."""
    names = sorted(masks)
    frame = pd.DataFrame(_identity_columns(result, len(names))).drop(columns="source")
    frame["class"] = names
    frame["shape"] = ["x".join(str(n) for n in masks[c].shape) for c in names]
    frame["n_pixels"] = np.array([int(np.count_nonzero(masks[c])) for c in names], dtype=np.uint32)
    frame["data"] = [base64.b64encode(pack_mask(masks[c])).decode("ascii") for c in names]
    frame["stored_at"] = stored_at
    return frame


def files_frame(result: FileResult, n_metrics: int, evaluations: pd.DataFrame, stored_at: pd.Timestamp) -> pd.DataFrame:
    statuses = evaluations["status"]
    frame = pd.DataFrame(_identity_columns(result, 1))
    frame["exposure_type"] = [result.identity.exposure_type]
    frame["n_metrics"] = np.array([n_metrics], dtype=np.uint32)
    frame["n_evaluations"] = np.array([len(evaluations)], dtype=np.uint32)
    frame["n_fail"] = np.array([(statuses == Status.FAIL.value).sum()], dtype=np.uint32)
    frame["n_caution"] = np.array([(statuses == Status.CAUTION.value).sum()], dtype=np.uint32)
    frame["status"] = [worst({Status(s) for s in statuses.unique()}).value if len(statuses) else Status.PASS.value]
    frame["stored_at"] = stored_at
    return frame
