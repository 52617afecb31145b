"""Point-source detection shared by the Level-2 star monitors (astrometry, psf_shape).

One implementation, pure numpy and scipy, for a full WFI frame (the science
array placed in the 4096x4096 frame with its 4-pixel border set to NaN):

1. **background and noise** per block of 128x128 pixels (a super-pixel of a
   full frame; reduced test frames keep 128-pixel blocks, since a few dozen
   pixels cannot give a background): the median and the interquartile range
   (sigma = IQR / 1.349) of the finite pixels of every second row and column,
   leaving out pixels 3 sigma above the median (twice): stars and their wings
   would otherwise raise the background, and the second moments of faint stars
   are sensitive to it.
2. **candidates**: pixels brighter than ``background + detection_threshold *
   sigma``, compared against their block's values (no full-size background map).
   The WFI PSF is undersampled (FWHM about 1.6 pixels), so a star's peak pixel
   holds about a quarter of its flux and detection on the pixels themselves,
   without a matched filter, loses little for the bright stars the monitors use
   (a faint-source finder is not the goal).
3. **local maxima**: a candidate is a peak when no 8-connected neighbour is
   brighter (ties go to the lower row, then column, so a flat saturated top
   gives one peak); peaks closer than ``merge_radius`` to a brighter peak are
   dropped (the plateau of a saturated star, noise in bright wings). Peaks whose
   four neighbours hold on average less than ``spike_fraction`` of the peak are
   single-pixel events (cosmic rays, hot pixels), not stars.
4. **flags per star**: *saturated* when a pixel within 2 pixels carries the DQ
   SATURATED flag or the peak (background included) reaches ``max_peak``;
   *isolated* when no other peak lies within ``isolation_radius``; *complete*
   when the ``(2 * stamp_radius + 1)``-pixel stamp lies on finite pixels
   without DO_NOT_USE.

Everything is vectorised over the candidates; the full frame is read about four
times (finite test, the block statistics on a quarter of it, the threshold, the
indices of candidates). Candidates are worked a band of 128 rows at a time and
stamps a chunk of stars at a time, so the working memory is that of the block
statistics (about 50 MiB at full size) however crowded the field: all the
candidates of a Galactic-Bulge field at once (17 % of the pixels) took 650 MiB.
Positions are frame pixel coordinates, 0-based, with
pixel centres on integers: frame ``(x, y)`` is science pixel ``(x - 4, y - 4)``
of a Level-2 file.

Also here: grouping stars into the cells of the three scales and per-cell
statistics, used by both monitors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from roman_datamodels import dqflags
from scipy.spatial import cKDTree

from ..blockstats import ScaleValues
from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS

SATURATED = int(dqflags.pixel.SATURATED)
DO_NOT_USE = int(dqflags.pixel.DO_NOT_USE)
SATURATION_RADIUS = 2  # pixels around the peak checked for the SATURATED flag
IQR_TO_SIGMA = 1.0 / 1.3490  # sigma of a normal distribution from its interquartile range
CLIP_SIGMA = 3.0  # pixels this far above a block's median are left out of its background
BLOCK = 128  # pixels: side of the blocks of the background and noise statistics
STAMP_CHUNK = 4096  # stars whose stamps are gathered at once


class DetectionOptions(BaseModel):
    """Options of star detection, shared by the star monitors (their options extend these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detection_threshold: float = Field(
        5.0, gt=0, description="A peak pixel must exceed its block's background by this many sigma."
    )
    isolation_radius: float = Field(
        8.0, ge=0, description="Pixels: a star with another detected peak closer than this is not isolated."
    )
    merge_radius: float = Field(
        2.5, ge=0, description="Pixels: a peak this close to a brighter one is part of it (saturated tops, wings)."
    )
    spike_fraction: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="A peak whose 4 neighbours average less than this fraction of it is a single-pixel event "
        "(cosmic ray, hot pixel), not a star; lower it for very undersampled PSFs.",
    )
    max_peak: float = Field(
        1500.0,
        gt=0,
        description="DN/s: a star whose brightest pixel (background included) reaches this is treated as "
        "saturated (non-linear), whatever its DQ flags.",
    )
    stamp_radius: int = Field(5, ge=2, le=15, description="Pixels: half-size of the stamp that must be valid.")


@dataclass(frozen=True)
class Stars:
    """Detected point sources of one frame and the frame's background statistics.

    Per-star arrays share one order (brightest ``flux`` first). ``x`` and ``y`` are
    frame pixel coordinates of the peak refined by a 3x3 centroid; ``peak`` and
    ``flux`` (the sum of the 5x5 box) are background-subtracted, in the image's
    unit; ``snr`` is the peak over its block's pixel sigma.
    """

    x: np.ndarray
    y: np.ndarray
    peak_x: np.ndarray  # int: column of the peak pixel
    peak_y: np.ndarray  # int: row of the peak pixel
    peak: np.ndarray
    flux: np.ndarray
    snr: np.ndarray
    background: np.ndarray  # per star: the background of its block
    saturated: np.ndarray  # bool
    isolated: np.ndarray  # bool
    complete: np.ndarray  # bool
    block_background: np.ndarray  # (n, n) per block of ``block`` pixels, NaN where a block has no finite pixel
    block_sigma: np.ndarray  # (n, n)
    block: int
    n_finite: int
    problem: str | None = None  # why nothing could be detected (all NaN, constant image)

    @property
    def size(self) -> int:
        return int(self.x.size)

    def usable(self, min_snr: float = 0.0) -> np.ndarray:
        """Indices of isolated, unsaturated stars with complete stamps and ``snr >= min_snr``, brightest first."""
        keep = self.isolated & ~self.saturated & self.complete & (self.snr >= min_snr)
        return np.flatnonzero(keep)


def _empty_stars(
    block_background: np.ndarray, block_sigma: np.ndarray, block: int, n_finite: int, problem: str | None
) -> Stars:
    real, flag, index = np.empty(0), np.empty(0, dtype=bool), np.empty(0, dtype=np.int64)
    return Stars(
        x=real,
        y=real,
        peak_x=index,
        peak_y=index,
        peak=real,
        flux=real,
        snr=real,
        background=real,
        saturated=flag,
        isolated=flag,
        complete=flag,
        block_background=block_background,
        block_sigma=block_sigma,
        block=block,
        n_finite=n_finite,
        problem=problem,
    )


def block_size(side: int) -> int:
    """Side of the background blocks of a frame: 128 pixels, or the whole frame when it does not divide."""
    return BLOCK if side % BLOCK == 0 else side


def _blocks(frame: np.ndarray, block: int) -> np.ndarray:
    """(n, block, n, block) view of a square frame."""
    n = frame.shape[0] // block
    return frame.reshape(n, block, n, block)


def _ranked(rows: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """The value of rank ``q * (count - 1)`` (rounded) of each sorted row, over its first ``count`` values."""
    rank = np.rint(q * (np.maximum(count, 1) - 1)).astype(np.int64)
    return rows[np.arange(rows.shape[0]), rank].astype(np.float64)


def block_statistics(data: np.ndarray, valid: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Background (median) and noise (IQR sigma) of each block: two (n, n) arrays, NaN when empty.

    Pixels more than ``CLIP_SIGMA`` sigma above the median (stars) are left out, twice, so the
    background is the sky's level rather than one raised by the light of stars.
    """
    step = 2 if block % 2 == 0 else 1
    sampled = np.where(valid[::step, ::step], data[::step, ::step], np.float32(np.nan))
    m = block // step
    n = data.shape[0] // block
    rows = _blocks(sampled, m).swapaxes(1, 2).reshape(n * n, m * m)
    rows.sort(axis=1)  # NaN last
    count = np.count_nonzero(~np.isnan(rows), axis=1)
    for _ in range(3):
        median = _ranked(rows, count, 0.5)
        sigma = (_ranked(rows, count, 0.75) - _ranked(rows, count, 0.25)) * IQR_TO_SIGMA
        limit = (median + CLIP_SIGMA * sigma).astype(rows.dtype)
        count = np.minimum(count, np.count_nonzero(rows <= limit[:, None], axis=1))
    empty = count == 0
    median[empty], sigma[empty] = np.nan, np.nan
    return median.reshape(n, n), sigma.reshape(n, n)


def _neighbour_offsets() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dy, dx = np.mgrid[-1:2, -1:2]
    dy, dx = dy.ravel(), dx.ravel()
    centre = (dy == 0) & (dx == 0)
    dy, dx = dy[~centre], dx[~centre]
    before = (dy < 0) | ((dy == 0) & (dx < 0))  # earlier in row-major order: ties go to them
    return dy, dx, before


def local_maxima(data: np.ndarray, threshold: np.ndarray, block: int) -> np.ndarray:
    """Flat indices (row-major) of the pixels above their block's threshold that are local maxima.

    A candidate is a peak when no 8-connected neighbour is brighter (ties go to the earlier pixel
    in row-major order); NaN neighbours compare False, so a candidate beside one is not a peak, nor
    is one on the frame edge. The frame is worked a band of ``block`` rows at a time, so memory is
    bounded by a band however crowded the field (all candidates at once, with (n, 8) neighbour
    arrays, cost about 240 bytes each: over 600 MB in a Galactic-Bulge field).

    Parameters
    ----------
    data : ndarray
        Square frame.
    threshold : ndarray
        (side / block, side / block) float32: the candidate threshold of each block (inf for none).
    block : int
        Side of the blocks.
    """
    side = data.shape[0]
    n = side // block
    flat = data.reshape(-1)
    dy, dx, before = _neighbour_offsets()
    found = []
    for band in range(n):
        top = band * block
        above = data[top : top + block].reshape(block, n, block) > threshold[band][None, :, None]
        index = np.flatnonzero(above) + top * side
        row, column = np.divmod(index, side)
        index = index[(row >= 1) & (row < side - 1) & (column >= 1) & (column < side - 1)]
        values = flat[index]
        is_peak = np.ones(index.size, dtype=bool)
        for step, earlier in zip(dy * side + dx, before, strict=True):
            neighbour = flat[index + step]
            is_peak &= (values > neighbour) if earlier else (values >= neighbour)
        found.append(index[is_peak])
    return np.concatenate(found)


def _stamp_measures(
    data: np.ndarray, dq: np.ndarray, by: np.ndarray, bx: np.ndarray, bkg: np.ndarray, options: DetectionOptions
) -> tuple[np.ndarray, ...]:
    """Completeness, DQ saturation, 5x5 flux and 3x3 centroid (frame pixels) of the stars peaking at ``(by, bx)``."""
    side = data.shape[0]
    r = options.stamp_radius
    complete = (by >= r) & (by < side - r) & (bx >= r) & (bx < side - r)
    sy = np.clip(by, r, side - r - 1)
    sx = np.clip(bx, r, side - r - 1)
    columns = sx[:, None] + np.arange(-r, r + 1)[None, :]
    for dy in range(-r, r + 1):  # a row of the stamp at a time
        rows = (sy + dy)[:, None]
        complete &= np.all(np.isfinite(data[rows, columns]), axis=1) & ~np.any(dq[rows, columns] & DO_NOT_USE, axis=1)
    box_offsets = np.arange(-SATURATION_RADIUS, SATURATION_RADIUS + 1)
    rows = sy[:, None, None] + box_offsets[None, :, None]
    columns = sx[:, None, None] + box_offsets[None, None, :]
    saturated = np.any(dq[rows, columns] & SATURATED, axis=(1, 2))
    box = np.nan_to_num(data[rows, columns] - bkg[:, None, None])  # 5x5, background subtracted
    flux = box.sum(axis=(1, 2))
    core = np.clip(box[:, 1:4, 1:4], 0.0, None)
    total = core.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    x = bx + np.where(total > 0, (core.sum(axis=1) * np.array([-1.0, 0.0, 1.0])).sum(axis=1) / safe, 0.0)
    y = by + np.where(total > 0, (core.sum(axis=2) * np.array([-1.0, 0.0, 1.0])).sum(axis=1) / safe, 0.0)
    return complete, saturated, flux, x, y


def detect_stars(data: np.ndarray, dq: np.ndarray, options: DetectionOptions) -> Stars:
    """Detect point sources in a frame and flag the ones fit for measurement.

    Parameters
    ----------
    data : ndarray
        Square frame (side divisible by 32), DN/s; NaN marks pixels that are not
        science pixels (the Level-2 border) or are invalid.
    dq : ndarray
        Data-quality flags, same shape (SATURATED and DO_NOT_USE are used).
    options : DetectionOptions
        Threshold, isolation, merge radius, peak limit, stamp size.

    Returns
    -------
    Stars
        The detections, brightest first; empty with ``problem`` set when the frame
        has no finite pixel or no noise (a constant image).
    """
    side = data.shape[0]
    block = block_size(side)
    valid = np.isfinite(data)
    n_finite = int(np.count_nonzero(valid))
    if n_finite == 0:
        nan_grid = np.full((side // block,) * 2, np.nan)
        return _empty_stars(nan_grid, nan_grid, block, 0, "no finite pixel in the image")
    background, sigma = block_statistics(data, valid, block)
    if not np.any(sigma > 0):
        problem = "the image has no noise (constant values): no star to detect"
        return _empty_stars(background, sigma, block, n_finite, problem)

    # Candidates above their block's threshold that are local maxima, then single-pixel events dropped.
    threshold = np.where(sigma > 0, background + options.detection_threshold * sigma, np.inf).astype(np.float32)
    index = local_maxima(data, threshold, block)
    by, bx = np.divmod(index, side)
    bkg = background[by // block, bx // block]
    flat = data.reshape(-1)
    peak = flat[index] - bkg
    four = np.column_stack([flat[index + step] for step in (-side, -1, 1, side)])  # the 4-connected neighbours
    spike = (four - bkg[:, None]).mean(axis=1) < options.spike_fraction * peak
    keep = ~spike
    by, bx, bkg, peak = by[keep], bx[keep], bkg[keep], peak[keep]
    if by.size == 0:
        return _empty_stars(background, sigma, block, n_finite, None)

    # Merge peaks close to a brighter one, brightest first.
    order = np.argsort(-peak, kind="stable")
    by, bx, bkg, peak = by[order], bx[order], bkg[order], peak[order]
    positions = np.column_stack([bx, by]).astype(np.float64)
    tree = cKDTree(positions)
    if options.merge_radius > 0 and by.size > 1:
        pairs = tree.query_pairs(options.merge_radius, output_type="ndarray")
        drop = np.zeros(by.size, dtype=bool)
        drop[pairs.max(axis=1)] = True  # the later (fainter) peak of each close pair
        if drop.any():
            by, bx, bkg, peak = by[~drop], bx[~drop], bkg[~drop], peak[~drop]
            positions = positions[~drop]
            tree = cKDTree(positions)

    # Isolation: any other peak within the radius.
    if by.size > 1 and options.isolation_radius > 0:
        distance, _ = tree.query(positions, k=2)
        isolated = distance[:, 1] > options.isolation_radius
    else:
        isolated = np.ones(by.size, dtype=bool)

    # Stamps, a chunk of stars at a time (bounded memory in a crowded field).
    measured = [
        _stamp_measures(data, dq, by[i : i + STAMP_CHUNK], bx[i : i + STAMP_CHUNK], bkg[i : i + STAMP_CHUNK], options)
        for i in range(0, by.size, STAMP_CHUNK)
    ]
    complete, saturated, flux, x, y = (np.concatenate(column) for column in zip(*measured, strict=True))
    saturated |= (peak + bkg) >= options.max_peak
    snr = peak / sigma[by // block, bx // block]

    order = np.argsort(-flux, kind="stable")
    return Stars(
        x=x[order],
        y=y[order],
        peak_x=bx[order].astype(np.int64),
        peak_y=by[order].astype(np.int64),
        peak=peak[order],
        flux=flux[order],
        snr=snr[order],
        background=bkg[order],
        saturated=saturated[order],
        isolated=isolated[order],
        complete=complete[order],
        block_background=background,
        block_sigma=sigma,
        block=block,
        n_finite=n_finite,
    )


# --- cells of the three scales and per-cell statistics ---


def scale_cells(x: np.ndarray, y: np.ndarray, side: int) -> dict[str, np.ndarray]:
    """0-based cell index of each position at each scale: amplifier index (0..31), super-pixel (0..1023)."""
    cell = side // GRID
    col = np.clip(np.floor(np.asarray(x) + 0.5).astype(np.int64) // cell, 0, GRID - 1)
    row = np.clip(np.floor(np.asarray(y) + 0.5).astype(np.int64) // cell, 0, GRID - 1)
    return {"detector": np.zeros(col.size, dtype=np.int64), "amplifier": col, "superpixel": row * GRID + col}


_N_CELLS = {"detector": 1, "amplifier": N_AMPLIFIERS, "superpixel": N_SUPERPIXELS}


def counts_at_scales(groups: dict[str, np.ndarray]) -> ScaleValues:
    """Number of positions in each cell of each scale."""
    counts = {s: np.bincount(g, minlength=_N_CELLS[s]).astype(np.float64) for s, g in groups.items()}
    return ScaleValues(float(counts["detector"][0]), counts["amplifier"], counts["superpixel"])


def binned(values: np.ndarray, index: np.ndarray, n_cells: int, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell ``mean``, ``rms`` or ``median`` of ``values`` grouped by ``index``; and the counts.

    Cells without values are NaN. The median of an even count is the mean of the two middle values.
    """
    count = np.bincount(index, minlength=n_cells)
    out = np.full(n_cells, np.nan)
    has = count > 0
    if statistic == "mean":
        out[has] = np.bincount(index, weights=values, minlength=n_cells)[has] / count[has]
    elif statistic == "rms":
        out[has] = np.sqrt(np.bincount(index, weights=values * values, minlength=n_cells)[has] / count[has])
    elif statistic == "median":
        order = np.lexsort((values, index))
        ordered = values[order]
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        lo = start + (count - 1) // 2
        hi = start + count // 2
        out[has] = 0.5 * (ordered[lo[has]] + ordered[hi[has]])
    else:
        raise ValueError(f"unknown statistic {statistic!r}")
    return out, count


def stat_at_scales(
    values: np.ndarray, groups: dict[str, np.ndarray], statistic: str, min_detector: int, min_cell: int
) -> ScaleValues:
    """A per-cell statistic at the three scales; NaN in cells with fewer values than the minimum.

    ``min_detector`` applies to the detector, ``min_cell`` to amplifiers and super-pixels.
    """
    out = {}
    for scale, index in groups.items():
        value, count = binned(values, index, _N_CELLS[scale], statistic)
        out[scale] = np.where(count >= (min_detector if scale == "detector" else min_cell), value, np.nan)
    return ScaleValues(float(out["detector"][0]), out["amplifier"], out["superpixel"])


def nan_at_scales() -> ScaleValues:
    """A metric with no value anywhere."""
    return ScaleValues(float("nan"), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))


def detector_only(value: float) -> ScaleValues:
    """A metric defined at the detector scale only (NaN at the others)."""
    return ScaleValues(float(value), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))
