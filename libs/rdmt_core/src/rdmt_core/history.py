"""The evaluator's history as compact state: a per-detector window of deliveries, and evaluation against it.

Pure: no Kafka, no state store. :class:`HistoryWindow` keeps, for one (release, monitor, detector and
the file's kind, optical element and exposure mode when it has them: :func:`state_prefix`),
the values of the last ``capacity`` deliveries ordered by ``file_time``, and gives the
:class:`~rdmt_core.evaluators.History` of a file as the embedded pipeline's store would: the
deliveries strictly before the file's time, other than the file itself.

A late or replayed delivery is inserted at its time, and a file delivered again (same ``file_key``)
replaces its earlier values, so redelivery is idempotent. For a state store, the window splits into a
small index (:meth:`HistoryWindow.index`) and one blob per delivery (:func:`pack_values`), so that no
changelog message grows with the window (one dark delivery is about 90 kB of float64 values).

Pixel masks (``metric_record.masks``, the packed masks of a monitor's tracked pixel classes) are kept
beside the values, one blob per delivery of the window (:func:`save_masks`, ``<prefix>|masks|<file_key>``),
and dropped with it: the previous file's masks (:func:`load_previous_masks`) are those of the latest
earlier delivery of the window that has some, as the embedded store's ``pixel_masks`` table gives them.
The masks of another monitor's files of the same detector (the MASK for a DARK's cross-file check,
:func:`load_reference_masks`) are read from that monitor's window in the same partition: records are
keyed by detector.
"""

from __future__ import annotations

import bisect
import json
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from .evaluators import History
from .geometry import FULL_SIDE, SCALES, Geometry
from .monitors import get_monitor
from .pixel_masks import PixelMasks, cross_check_for, unpack_mask
from .records import Metric
from .results import add_pixel_changes, evaluate
from .wire import evaluation_record, masks_of_record, result_from_record

if TYPE_CHECKING:
    from .config import RdmtConfig

Values = dict[tuple[str, str], np.ndarray]  # (metric, scale) -> per-cell values, float64
_HEADER = struct.Struct("<I")  # length of the JSON header of a packed blob


def to_millis(value: datetime | int) -> int:
    """Milliseconds since the Unix epoch of a decoded ``timestamp-millis`` (datetime) or an int."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    return int(value)


def values_of(metrics: Iterable[Metric]) -> Values:
    """Per (metric, scale) values of ``metrics``: what the history keeps of a delivery."""
    return {(m.spec.name, scale): m.values.at(scale) for m in metrics for scale in SCALES}


def pack_values(values: Values) -> bytes:
    """Compact bytes of ``values``: a JSON header naming the arrays, then their float64 data."""
    names = sorted(values)
    header = json.dumps([[metric, scale, len(values[metric, scale])] for metric, scale in names]).encode()
    body = b"".join(np.ascontiguousarray(values[name], dtype="<f8").tobytes() for name in names)
    return _HEADER.pack(len(header)) + header + body


def unpack_values(data: bytes) -> Values:
    """The values packed by :func:`pack_values`."""
    (size,) = _HEADER.unpack_from(data)
    start = _HEADER.size + size
    out: Values = {}
    for metric, scale, n in json.loads(data[_HEADER.size : start]):
        out[metric, scale] = np.frombuffer(data, dtype="<f8", count=n, offset=start).copy()
        start += 8 * n
    return out


@dataclass(frozen=True, order=True)
class Delivery:
    """One delivery in a window: its time (ms since the epoch) and its file key."""

    file_time_ms: int
    file_key: str


class HistoryWindow:
    """The last ``capacity`` deliveries of one (release, monitor, detector), ordered by file time.

    Parameters
    ----------
    capacity : int
        Deliveries kept; the oldest are dropped first. Give at least the trend window.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a history window keeps at least 1 delivery, got capacity {capacity}")
        self.capacity = capacity
        self._deliveries: list[Delivery] = []
        self._values: dict[str, Values] = {}

    def __len__(self) -> int:
        return len(self._deliveries)

    @property
    def deliveries(self) -> list[Delivery]:
        """Kept deliveries, oldest first."""
        return list(self._deliveries)

    def add(self, file_key: str, file_time: datetime | int, values: Values) -> list[str]:
        """Insert a delivery at its time (replacing an earlier one with the same key); return dropped keys."""
        dropped = [d.file_key for d in self._deliveries if d.file_key == file_key]
        self._deliveries = [d for d in self._deliveries if d.file_key != file_key]
        bisect.insort(self._deliveries, Delivery(to_millis(file_time), file_key))
        self._values[file_key] = values
        while len(self._deliveries) > self.capacity:
            oldest = self._deliveries.pop(0)
            dropped.append(oldest.file_key)
            del self._values[oldest.file_key]
        return [key for key in dropped if key not in self._values]  # a replaced key is kept, not dropped

    def history_before(self, file_time: datetime | int, exclude_key: str) -> History:
        """Deliveries strictly before ``file_time``, other than ``exclude_key``, oldest first."""
        before = to_millis(file_time)
        earlier = [d for d in self._deliveries if d.file_time_ms < before and d.file_key != exclude_key]
        rows = [self._values[d.file_key] for d in earlier]
        return history_from(rows)

    def index(self) -> list[list[Any]]:
        """The kept deliveries as ``[[file_time_ms, file_key], ...]`` (JSON), oldest first."""
        return [[d.file_time_ms, d.file_key] for d in self._deliveries]

    def values(self, file_key: str) -> Values:
        return self._values[file_key]

    @classmethod
    def from_index(cls, capacity: int, index: Iterable[list[Any]], load: Callable[[str], Values]) -> HistoryWindow:
        """Rebuild a window from :meth:`index` and a ``load(file_key)`` of each delivery's values."""
        window = cls(capacity)
        for file_time_ms, file_key in index:
            window.add(file_key, int(file_time_ms), load(file_key))
        return window


def history_from(rows: list[Values]) -> History:
    """A :class:`History` from deliveries' values, oldest first; a (metric, scale) missing from a row is NaN."""
    names: dict[tuple[str, str], int] = {}
    for row in rows:
        for name, value in row.items():
            names.setdefault(name, len(value))
    out = {}
    for name, n_cells in names.items():
        grid = np.full((len(rows), n_cells), np.nan)
        for i, row in enumerate(rows):
            if name in row:
                grid[i] = row[name]
        out[name] = grid
    return History(out)


def window_capacity(config: RdmtConfig, monitor: str, detector: str) -> int:
    """Deliveries to keep per (release, monitor, detector): the trend window, plus one for the newest."""
    return config.evaluators_for(monitor, detector).trend.window + 1


def state_prefix(record: Mapping[str, Any]) -> str:
    """Name of a record's history in the detector's state: ``<release>|<monitor>``, then the file's group.

    A file with an optical element or an exposure mode has the history of its kind, element and mode:
    ``<release>|<monitor>|FLAT|F158|`` (as the embedded store's :meth:`~rdmt_core.store.Store.history`
    selects them), so a F158 flat is compared only with F158 flats. A file without them keeps the
    prefix it had before they existed, so the state of a running evaluator stays valid.
    """
    prefix = f"{record['release']}|{record['monitor']}"
    element, mode = record.get("optical_element") or "", record.get("exposure_mode") or ""
    return f"{prefix}|{record['kind']}|{element}|{mode}" if element or mode else prefix


def evaluate_record(
    record: Mapping[str, Any],
    config: RdmtConfig,
    window: HistoryWindow,
    now: datetime | None = None,
    previous_masks: PixelMasks | None = None,
    reference_masks: PixelMasks | None = None,
) -> tuple[dict[str, Any], Values]:
    """Evaluate one metric record against the earlier deliveries in ``window``.

    A record of a monitor that tracks pixel classes gets its pixel-change metrics first (from the record's
    ``masks`` and ``previous_masks``; NaN with a note without them) and its cross-file check against
    ``reference_masks``; the evaluation record carries them with the other metrics, not the masks.

    Parameters
    ----------
    record : mapping
        A decoded ``metric_record``.
    config : RdmtConfig
        Evaluator settings (per monitor and detector).
    window : HistoryWindow
        The detector's history for the record's release and monitor; not modified.
    now : datetime, optional
        ``evaluated_at`` (default: the current time).
    previous_masks, reference_masks : PixelMasks, optional
        The packed masks of the previous file of the record's identity (:func:`load_previous_masks`) and of
        the cross-file check's reference (:func:`load_reference_masks`).

    Returns
    -------
    tuple
        The ``evaluation_record`` (with the record's metrics and notes) and the record's values for
        :meth:`HistoryWindow.add`.

    Raises
    ------
    rdmt_core.errors.ConfigError
        When the record's monitor is unknown.
    ValueError
        When a metric has the wrong number of values.
    """
    monitor = get_monitor(record["monitor"])  # an unknown monitor has no evaluators: a dead letter
    measured = result_from_record(record, monitor.title)
    if monitor.tracked_pixels:
        masks = {c: unpack_mask(data) for c, data in masks_of_record(record).items()}
        measured = add_pixel_changes(measured, masks, previous_masks, reference_masks)
    history = window.history_before(record["file_time"], record["file_key"])
    # Only ratios of pixel counts matter (to scale count limits), so the full-size geometry serves every size.
    pixels = Geometry(FULL_SIDE, monitor.border).pixels_per_cell()
    evaluated = evaluate(measured, config, history, pixels)
    return evaluation_record(evaluated, record, now or datetime.now(UTC)), values_of(evaluated.metrics)


def load_window(state: Any, record: Mapping[str, Any], capacity: int) -> HistoryWindow:
    """The window of ``record``'s release and monitor from a key-value ``state`` (quixstreams ``State``).

    The state holds, under ``<release>|<monitor>|``, an ``index`` and one packed blob per delivery.
    """
    prefix = state_prefix(record)

    def load(file_key: str) -> Values:
        blob = state.get_bytes(f"{prefix}|{file_key}")
        return {} if blob is None else unpack_values(blob)

    return HistoryWindow.from_index(capacity, state.get(f"{prefix}|index", []), load)


def save_window(state: Any, record: Mapping[str, Any], window: HistoryWindow, values: Values) -> None:
    """Add ``record``'s ``values`` to ``window`` and write what changed to ``state`` (dropped blobs deleted)."""
    prefix = state_prefix(record)
    for dropped in window.add(record["file_key"], record["file_time"], values):
        state.delete(f"{prefix}|{dropped}")
        if state.exists(f"{prefix}|masks|{dropped}"):
            state.delete(f"{prefix}|masks|{dropped}")
    state.set_bytes(f"{prefix}|{record['file_key']}", pack_values(values))
    state.set(f"{prefix}|index", window.index())


def pack_mask_set(packed: Mapping[str, bytes]) -> bytes:
    """The packed masks of one file (class -> :func:`~rdmt_core.pixel_masks.pack_mask` bytes) as one blob."""
    names = sorted(packed)
    header = json.dumps([[name, len(packed[name])] for name in names]).encode()
    return _HEADER.pack(len(header)) + header + b"".join(bytes(packed[name]) for name in names)


def unpack_mask_set(data: bytes) -> dict[str, bytes]:
    """The masks packed by :func:`pack_mask_set`."""
    (size,) = _HEADER.unpack_from(data)
    start = _HEADER.size + size
    out = {}
    for name, n in json.loads(data[_HEADER.size : start]):
        out[name] = bytes(data[start : start + n])
        start += n
    return out


def save_masks(state: Any, record: Mapping[str, Any], window: HistoryWindow) -> None:
    """Keep ``record``'s masks (if any) with its delivery in the window; call after :func:`save_window`.

    A record without masks of a file kept earlier with masks (a redelivery from an older writer) leaves
    none: the masks kept always belong to the file's latest record.
    """
    key = f"{state_prefix(record)}|masks|{record['file_key']}"
    masks = masks_of_record(record)
    if masks and record["file_key"] in {d.file_key for d in window.deliveries}:
        state.set_bytes(key, pack_mask_set(masks))
    elif state.exists(key):  # no masks now, or the record is older than every kept delivery (not kept)
        state.delete(key)


def _latest_masks(state: Any, prefix: str, deliveries: Iterable[Delivery]) -> PixelMasks | None:
    for delivery in sorted(deliveries, reverse=True):  # latest first
        blob = state.get_bytes(f"{prefix}|masks|{delivery.file_key}")
        if blob is not None:
            return PixelMasks(delivery.file_key, unpack_mask_set(blob))
    return None


def load_previous_masks(state: Any, record: Mapping[str, Any], window: HistoryWindow) -> PixelMasks | None:
    """The masks of the latest delivery of ``window`` before ``record`` (in time, other than itself) with masks."""
    before = to_millis(record["file_time"])
    earlier = [d for d in window.deliveries if d.file_time_ms < before and d.file_key != record["file_key"]]
    return _latest_masks(state, state_prefix(record), earlier)


def load_reference_masks(state: Any, record: Mapping[str, Any]) -> PixelMasks | None:
    """The masks of the cross-file check's reference for ``record`` (the detector's MASK for a DARK), or None.

    The latest delivery of the reference monitor (same release and detector, in this detector's state)
    whose time is at or before the record's, as :meth:`rdmt_core.store.Store.reference_masks` gives it.
    """
    check = cross_check_for(record["monitor"])
    if check is None:
        return None
    reference = {"release": record["release"], "monitor": check.reference_monitor}  # a MASK has no element or mode
    prefix = state_prefix(reference)
    until = to_millis(record["file_time"])
    index = state.get(f"{prefix}|index", [])
    return _latest_masks(state, prefix, [Delivery(int(t), k) for t, k in index if int(t) <= until])
