"""Pixels that became bad and that recovered since the previous file: compact masks and the metrics.

Pure: boolean masks and packed bytes in, metrics and notes out (no store, no Kafka). A monitor names the
pixel classes it tracks (``Monitor.tracked_pixels``, e.g. ``("hot", "dead")``) and returns one boolean
image per class in ``MonitorResult.masks``. Between measuring a file and evaluating it, the embedded
pipeline (from the store's ``pixel_masks`` table) and the streaming evaluator (from its state) find the
masks of the previous file of the same identity and add, per tracked class ``c``:

* ``n_new_<c>``: pixels in class ``c`` now that were not in the previous file;
* ``n_recovered_<c>``: pixels in class ``c`` in the previous file that are not now;

at the three scales (detector, 32 amplifiers, 1,024 super-pixels), NaN with a note when there is no
previous mask or its shape differs. A cross-file check (:data:`HOT_MASK_CHECK`) adds to a DARK the
fraction of its hot pixels flagged HOT in the current MASK of the detector (``hot_mask_agreement``).

A mask is kept as :func:`pack_mask` bytes: a 12-byte header (magic, rows, columns), then
``zlib(np.packbits(mask))``. A 4096 x 4096 mask is 2 MiB as bits; the hot-pixel mask of a synthetic
full-size dark (2,001 hot pixels) packs to 8.8 kB, its dead-pixel mask (501) to 3.8 kB (see
docs/pixel-changes.md).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .geometry import N_AMPLIFIERS, N_SUPERPIXELS
from .measure.blockstats import ScaleValues, count_at_scales
from .records import Metric, MetricSpec

MAGIC = b"RPM1"  # RDMT pixel mask, format 1
_HEADER = struct.Struct("<4sII")  # magic, rows, columns
ZLIB_LEVEL = 6  # 23 ms and 8.8 kB for a full-size hot mask (level 9: 86 ms, 7.3 kB; level 1: 5 ms, 17.9 kB)
NOTE = "pixel changes"  # the note key of the pixel-change metrics
AGREEMENT_NOTE = "hot mask agreement"  # the note key of the cross-file check
NO_EARLIER_FILE = "no earlier file of this identity with pixel masks"  # starts the NOTE of a first file


def waits_for_earlier_file(notes: Mapping[str, str]) -> bool:
    """The pixel-change metrics are NaN only because no earlier file of the identity has masks (a first file)."""
    return notes.get(NOTE, "").startswith(NO_EARLIER_FILE)


class MaskFormatError(ValueError):
    """Bytes that are not a packed pixel mask."""


def pack_mask(mask: np.ndarray) -> bytes:
    """A 2-D boolean mask as compact bytes (header, then zlib of its bits)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a pixel mask is 2-D, got shape {mask.shape}")
    bits = np.packbits(mask.astype(bool, copy=False), axis=None)
    return _HEADER.pack(MAGIC, *mask.shape) + zlib.compress(bits.tobytes(), ZLIB_LEVEL)


def mask_shape(data: bytes) -> tuple[int, int]:
    """(rows, columns) of a packed mask, read from its header."""
    if len(data) < _HEADER.size:
        raise MaskFormatError(f"a packed pixel mask has a {_HEADER.size}-byte header, got {len(data)} bytes")
    magic, rows, cols = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MaskFormatError(f"not a packed pixel mask: starts with {bytes(data[:4])!r}, expected {MAGIC!r}")
    return rows, cols


def unpack_mask(data: bytes) -> np.ndarray:
    """The boolean mask of :func:`pack_mask` bytes."""
    rows, cols = mask_shape(data)
    try:
        bits = np.frombuffer(zlib.decompress(bytes(data[_HEADER.size :])), dtype=np.uint8)
    except zlib.error as exc:
        raise MaskFormatError(f"packed pixel mask is corrupt: {exc}") from exc
    if bits.size != (rows * cols + 7) // 8:
        raise MaskFormatError(f"packed pixel mask holds {bits.size} bytes of bits, expected {(rows * cols + 7) // 8}")
    return np.unpackbits(bits, count=rows * cols).astype(bool).reshape(rows, cols)


def pack_masks(masks: Mapping[str, np.ndarray]) -> dict[str, bytes]:
    """Each mask of ``masks`` packed, by class."""
    return {name: pack_mask(mask) for name, mask in masks.items()}


@dataclass(frozen=True)
class PixelMasks:
    """The packed masks of one earlier file: its ``file_key`` and ``packed[class]`` (:func:`pack_mask` bytes)."""

    file_key: str
    packed: Mapping[str, bytes]


# -- metric specs --------------------------------------------------------------------------------


def new_metric(pixel_class: str) -> str:
    return f"n_new_{pixel_class}"


def recovered_metric(pixel_class: str) -> str:
    return f"n_recovered_{pixel_class}"


def pixel_change_specs(classes: Iterable[str]) -> tuple[MetricSpec, ...]:
    """``n_new_<c>`` and ``n_recovered_<c>`` of each tracked class: extensive counts in pixels."""
    specs: list[MetricSpec] = []
    for c in classes:
        specs.append(
            MetricSpec(new_metric(c), "pixels", f"Pixels {c} now and not in the previous file", extensive=True)
        )
        specs.append(
            MetricSpec(recovered_metric(c), "pixels", f"Pixels {c} in the previous file and not now", extensive=True)
        )
    return tuple(specs)


@dataclass(frozen=True)
class CrossCheck:
    """A class of one monitor's masks compared with a class of another monitor's latest file, same detector."""

    monitor: str  # the monitor whose files get the metric, e.g. dark
    pixel_class: str  # its class, e.g. hot
    reference_monitor: str  # the monitor of the reference file, e.g. mask
    reference_class: str  # the reference's class, e.g. hot (the HOT flag)
    spec: MetricSpec


HOT_MASK_CHECK = CrossCheck(
    "dark",
    "hot",
    "mask",
    "hot",
    MetricSpec(
        "hot_mask_agreement",
        "fraction",
        "Fraction of the dark's hot pixels flagged HOT in the detector's current MASK (NaN without hot pixels)",
    ),
)
CROSS_CHECKS = (HOT_MASK_CHECK,)


def cross_check_for(monitor: str) -> CrossCheck | None:
    """The cross-file check of ``monitor``'s files, if it has one."""
    return next((c for c in CROSS_CHECKS if c.monitor == monitor), None)


def derived_specs(monitor: str, classes: Iterable[str]) -> tuple[MetricSpec, ...]:
    """The metrics added to ``monitor``'s files after measuring: pixel changes, then its cross-file check.

    A monitor lists them in its ``metric_specs`` (``METRICS + derived_specs(name, tracked_pixels)``), so
    the registry, the configuration and ``rdmt history`` know them.
    """
    check = cross_check_for(monitor)
    return pixel_change_specs(classes) + ((check.spec,) if check is not None else ())


def is_absolute_only(metric: str, monitor: str, classes: Iterable[str]) -> bool:
    """True for a derived metric: only the absolute evaluators (mission, soc) judge it (see evaluate)."""
    return metric in {spec.name for spec in derived_specs(monitor, classes)}


# -- metrics -------------------------------------------------------------------------------------


def _nan() -> ScaleValues:
    return ScaleValues(float("nan"), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))


def pixel_change_metrics(
    classes: Iterable[str],
    current: Mapping[str, np.ndarray],
    previous: Mapping[str, np.ndarray] | None,
    previous_key: str = "",
) -> tuple[list[Metric], dict[str, str]]:
    """``n_new_<c>`` and ``n_recovered_<c>`` of each class, at the three scales, and a note.

    Parameters
    ----------
    classes : iterable of str
        The tracked classes, in the order of the metrics.
    current, previous : mapping of str to ndarray
        Boolean masks (square frames, side divisible by 32) of this file and of the previous file of the
        same identity; ``previous`` is None when there is none.
    previous_key : str
        The previous file's key, for the note.

    Returns
    -------
    tuple
        The metrics (NaN where a class has no mask in either file, or the shapes differ) and the notes
        (``{"pixel changes": ...}``).
    """
    metrics: list[Metric] = []
    missing: list[str] = []
    for c in classes:
        new_spec, recovered_spec = pixel_change_specs([c])
        now = current.get(c)
        before = previous.get(c) if previous is not None else None
        if now is None or before is None or now.shape != before.shape:
            if previous is not None:
                missing.append(
                    f"{c}: no mask in this file" if now is None
                    else f"{c}: no mask in the previous file" if before is None
                    else f"{c}: shape {now.shape} differs from the previous {before.shape}"
                )  # fmt: skip
            metrics += [Metric(new_spec, _nan()), Metric(recovered_spec, _nan())]
            continue
        now, before = now.astype(bool, copy=False), before.astype(bool, copy=False)
        metrics += [
            Metric(new_spec, count_at_scales(now & ~before)),
            Metric(recovered_spec, count_at_scales(before & ~now)),
        ]
    if previous is None:
        note = f"{NO_EARLIER_FILE}: new and recovered pixels are NaN"
    else:
        note = f"since {previous_key}" if previous_key else "since the previous file"
        if missing:
            note += f" (NaN for {'; '.join(missing)})"
    return metrics, {NOTE: note}


def mask_agreement(
    check: CrossCheck, masks: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray] | None, reference_key: str
) -> tuple[Metric, dict[str, str]]:
    """The fraction of ``masks[check.pixel_class]`` pixels also in ``reference[check.reference_class]``, per cell.

    NaN in a cell without a pixel of the class, and everywhere (with the note saying why) when either
    mask is missing or their shapes differ.
    """
    mine = masks.get(check.pixel_class)
    theirs = reference.get(check.reference_class) if reference is not None else None
    if mine is None:
        return Metric(check.spec, _nan()), {AGREEMENT_NOTE: f"this file has no {check.pixel_class} mask"}
    if theirs is None:
        why = (
            f"no {check.reference_monitor} file known for this detector"
            if reference is None
            else f"{reference_key} has no {check.reference_class} mask"
        )
        return Metric(check.spec, _nan()), {AGREEMENT_NOTE: why}
    if mine.shape != theirs.shape:
        note = f"shape {mine.shape} differs from {reference_key}'s {theirs.shape}"
        return Metric(check.spec, _nan()), {AGREEMENT_NOTE: note}
    mine = mine.astype(bool, copy=False)
    both = count_at_scales(mine & theirs.astype(bool, copy=False))
    total = count_at_scales(mine)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = ScaleValues(
            detector=both.detector / total.detector if total.detector else float("nan"),
            amplifier=np.where(total.amplifier > 0, both.amplifier / total.amplifier, np.nan),
            superpixel=np.where(total.superpixel > 0, both.superpixel / total.superpixel, np.nan),
        )
    return Metric(check.spec, values), {AGREEMENT_NOTE: f"against {reference_key}"}


def unpack_all(packed: PixelMasks | None) -> dict[str, np.ndarray] | None:
    """The unpacked masks of ``packed`` (None for None).

    Raises
    ------
    MaskFormatError
        When a stored mask cannot be read (damaged, or written by a format this version does not know).
    """
    return None if packed is None else {c: unpack_mask(data) for c, data in packed.packed.items()}
