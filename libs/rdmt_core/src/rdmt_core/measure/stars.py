"""Point-source detection shared by the Level-2 star monitors (astrometry, psf_shape).

One implementation, pure numpy and scipy, for a full WFI frame (the science
array placed in the 4096x4096 frame with its 4-pixel border set to NaN):

1. **background and noise** per block of 128x128 pixels (a super-pixel of a
   full frame; reduced test frames keep 128-pixel blocks, since a few dozen
   pixels cannot give a background): the median and the interquartile range
   (sigma = IQR / 1.349) of the usable pixels (finite, without DQ DO_NOT_USE)
   of every second row and column,
   leaving out pixels 3 sigma above the median (twice): stars and their wings
   would otherwise raise the background, and the second moments of faint stars
   are sensitive to it.
2. **candidates**: usable pixels brighter than ``background + detection_threshold *
   sigma``, compared against their block's values (no full-size background map).
   The WFI PSF is undersampled (FWHM about 1.6 pixels), so a star's peak pixel
   holds about a quarter of its flux and detection on the pixels themselves,
   without a matched filter, loses little for the bright stars the monitors use
   (a faint-source finder is not the goal).
3. **local maxima**: a candidate is a peak when no usable 8-connected
   neighbour is brighter (ties go to the lower row, then column, so a flat
   saturated top gives one peak; unusable neighbours are left out, so a bad
   pixel beside a star does not hide it); peaks closer than ``merge_radius`` to
   a brighter peak are dropped (the plateau of a saturated star, noise in bright
   wings). Peaks whose usable 4-connected neighbours hold on average less than
   ``spike_fraction`` of the peak (or that have none) are single-pixel events
   (cosmic rays, hot pixels), not stars.
4. **rings, spikes and wings of brighter stars** (:func:`psf_features`): the
   WFI PSF's Airy rings and six diffraction spikes give local maxima well above
   the threshold around bright stars (about five per real star on average at
   F158, two dozen around a saturated one). Stars are compared by their
   brightness ``B`` (the peak; for a saturated star, whose clipped peaks are all
   alike, its pixels 4 to 6 pixels out scaled, :func:`brightness`). A peak with
   ``B <= 0.4 / d^2`` times a brighter star's ``d`` pixels away (the bound of every
   local maximum of the pixel-convolved galsim.roman PSFs from F062 to F213, from
   the first ring to the spikes 120 pixels out), or within 4 pixels ``B <= 0.15``
   of it (the first ring of an off-centre star), cannot be told from that star's
   PSF and is dropped. A peak above those bounds but below the noise-widened ones
   (``psf_envelope / d^2``, 1.2; within 4 pixels 0.3) is most likely a ring or
   spike pixel lifted by noise, but may be a faint companion: it is not counted
   as a source either, but it still takes part in the isolation test, so the
   brighter star with it in its stamp is not isolated (and not measured).
   ``Stars.n_psf_features`` counts both, ``Stars.n_possible_companions`` the
   second kind. Pairs are found per class of search radius with
   :meth:`scipy.spatial.cKDTree.sparse_distance_matrix` (no Python loop over pairs).
5. **flags per star**: *saturated* when a pixel within 2 pixels carries the DQ
   SATURATED flag or the peak (background included) reaches ``max_peak``;
   *isolated* when no other peak lies within ``isolation_radius``; *measurable*
   when the ``(2 * stamp_radius + 1)``-pixel stamp lies inside the frame and at
   most ``max_masked_pixels`` of the 24 pixels around the peak in its 5x5 box
   are unusable. Unusable pixels are not a reason to drop a star: the monitors
   leave them out of what they measure (the PSF fit's mask, zero weight in the
   moments), so scattered bad pixels (1-2 % of an H4RG detector) cost few stars.

Everything is vectorised over the candidates; the full frame is read about four
times (finite test, the block statistics on a quarter of it, the threshold, the
indices of candidates). Candidates are worked a band of 128 rows at a time and
stamps a chunk of stars at a time, so the working memory is about that of the
block statistics (50 to 60 MiB at full size) however crowded the field: all the
candidates of a Galactic-Bulge field at once (17 % of the pixels) took 650 MiB.
Positions are frame pixel coordinates, 0-based, with
pixel centres on integers: frame ``(x, y)`` is science pixel ``(x - 4, y - 4)``
of a Level-2 file.

Grouping stars into the cells of the three scales and per-cell statistics are
in :mod:`.star_cells`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from roman_datamodels import dqflags
from scipy.spatial import cKDTree

from .detection_options import DetectionOptions
from .dq import flagged_pixels

SATURATED = int(dqflags.pixel.SATURATED)
DO_NOT_USE = int(dqflags.pixel.DO_NOT_USE)
SATURATION_RADIUS = 2  # pixels around the peak checked for the SATURATED flag
IQR_TO_SIGMA = 1.0 / 1.3490  # sigma of a normal distribution from its interquartile range
CLIP_SIGMA = 3.0  # pixels this far above a block's median are left out of its background
BLOCK = 128  # pixels: side of the blocks of the background and noise statistics
STAMP_CHUNK = 4096  # stars whose stamps are gathered at once
WING_INNER, WING_OUTER = 4, 6  # pixels: the ring whose mean estimates a saturated star's peak
WING_TO_PEAK = 0.0009  # mean of the pixel-convolved PSF 4-6 pixels out over its peak: the least of F062-F213 (F062)
RING_RADIUS = 4.0  # pixels: the first Airy ring (2.5-3 pixels out in F213) ...
RING_LEVEL = 0.15  # ... reaches this fraction of the star's peak pixel (a star centred off its pixel) ...
RING_FRACTION = 0.3  # ... and is likely a feature below this one (noise, the PSF's change over the field)
PSF_ENVELOPE = 0.4  # every ring and spike maximum of the WFI PSFs is below this over d^2 times the peak
PAIR_BUDGET = 1 << 20  # neighbour pairs (expected) looked up at once: bounded memory in a crowded field
MAX_FEATURE_RADIUS = 256.0  # pixels: rings and spikes of the brightest stars are not looked for farther
NO_USABLE_PIXEL = "no usable pixel in the image (all non-finite or DO_NOT_USE)"


@dataclass(frozen=True)
class Stars:
    """Detected point sources of one frame and the frame's background statistics.

    Per-star arrays share one order (brightest ``flux`` first). ``x`` and ``y`` are
    frame pixel coordinates of the peak refined by a 3x3 centroid; ``peak`` and
    ``flux`` (the sum of the usable pixels of the 5x5 box) are background-subtracted,
    in the image's unit; ``snr`` is the peak over its block's pixel sigma;
    ``n_masked`` counts the unusable pixels of the 5x5 box (the peak is always usable).
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
    measurable: np.ndarray  # bool: stamp inside the frame, at most ``max_masked_pixels`` unusable in the 5x5 box
    n_masked: np.ndarray  # int: unusable pixels in the 5x5 box
    block_background: np.ndarray  # (n, n) per block of ``block`` pixels, NaN where a block has no usable pixel
    block_sigma: np.ndarray  # (n, n)
    block: int
    n_usable: int  # pixels of the frame that are finite and without DO_NOT_USE
    problem: str | None = None  # why nothing could be detected (no usable pixel, constant image)
    n_psf_features: int = 0  # peaks rejected as rings, spikes or wing noise of brighter stars
    n_possible_companions: int = (
        0  # of those, the ones above the PSF's own bound: they make their neighbours not isolated
    )

    @property
    def size(self) -> int:
        return int(self.x.size)

    def sources_note(self, threshold: float) -> str:
        """What was detected, for a monitor's notes: real sources, and the PSF features left out."""
        return (
            f"{self.size} point sources above {threshold:g} sigma ({self.n_psf_features} peaks on the Airy rings, "
            f"diffraction spikes or wings of brighter stars not counted; {self.n_possible_companions} of them above "
            "the PSF's own bound, possibly faint companions: their brighter neighbours are not isolated)"
        )

    def usable(self, min_snr: float = 0.0) -> np.ndarray:
        """Indices of isolated, unsaturated, measurable stars with ``snr >= min_snr``, brightest first."""
        keep = self.isolated & ~self.saturated & self.measurable & (self.snr >= min_snr)
        return np.flatnonzero(keep)


def _empty_stars(
    block_background: np.ndarray, block_sigma: np.ndarray, block: int, n_usable: int, problem: str | None
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
        measurable=flag,
        n_masked=index,
        block_background=block_background,
        block_sigma=block_sigma,
        block=block,
        n_usable=n_usable,
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


def block_statistics(data: np.ndarray, usable: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Background (median) and noise (IQR sigma) of each block's ``usable`` pixels: two (n, n) arrays, NaN when empty.

    Pixels more than ``CLIP_SIGMA`` sigma above the median (stars) are left out, twice, so the
    background is the sky's level rather than one raised by the light of stars.
    """
    step = 2 if block % 2 == 0 else 1
    sampled = np.where(usable[::step, ::step], data[::step, ::step], np.float32(np.nan))
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


def usable_pixels(data: np.ndarray, dq: np.ndarray) -> np.ndarray:
    """Boolean frame: True on the pixels a measurement may use (finite, without DQ DO_NOT_USE)."""
    usable = np.isfinite(data)
    usable.reshape(-1)[flagged_pixels(dq, ("DO_NOT_USE",))] = False
    return usable


def local_maxima(data: np.ndarray, usable: np.ndarray, threshold: np.ndarray, block: int) -> np.ndarray:
    """Flat indices (row-major) of the usable pixels above their block's threshold that are local maxima.

    A candidate is a peak when no usable 8-connected neighbour is brighter (ties go to the earlier
    pixel in row-major order); unusable neighbours are left out, and candidates on the frame edge
    are dropped. The frame is worked a band of ``block`` rows at a time, so memory is bounded by a
    band however crowded the field (all candidates at once, with (n, 8) int64 neighbour indices,
    cost about 240 bytes each: over 600 MB in a Galactic-Bulge field).

    Parameters
    ----------
    data, usable : ndarray
        Square frame and its :func:`usable_pixels`.
    threshold : ndarray
        (side / block, side / block) float32: the candidate threshold of each block (inf for none).
    block : int
        Side of the blocks.
    """
    side = data.shape[0]
    n = side // block
    flat, flat_usable = data.reshape(-1), usable.reshape(-1)
    dy, dx, before = _neighbour_offsets()
    found = []
    for band in range(n):
        rows = slice(band * block, (band + 1) * block)
        above = data[rows].reshape(block, n, block) > threshold[band][None, :, None]
        above &= usable[rows].reshape(block, n, block)
        index = np.flatnonzero(above) + band * block * side
        row, column = np.divmod(index, side)
        index = index[(row >= 1) & (row < side - 1) & (column >= 1) & (column < side - 1)]
        values = flat[index]
        is_peak = np.ones(index.size, dtype=bool)
        for step, earlier in zip(dy * side + dx, before, strict=True):
            neighbour = flat[index + step]
            brighter = (neighbour >= values) if earlier else (neighbour > values)
            is_peak &= ~(brighter & flat_usable[index + step])
        found.append(index[is_peak])
    return np.concatenate(found)


def brightness(
    data: np.ndarray,
    usable: np.ndarray,
    dq: np.ndarray,
    bx: np.ndarray,
    by: np.ndarray,
    bkg: np.ndarray,
    peak: np.ndarray,
    options: DetectionOptions,
) -> np.ndarray:
    """Peak value a star would have without saturation: its peak, or for a saturated star its wings scaled.

    A saturated star's peak is clipped; the mean of its pixels 4 to 6 pixels from the peak over
    :data:`WING_TO_PEAK` (the smallest ratio of the WFI filters, so that the estimate errs high) is
    used when larger.
    """
    side = data.shape[0]
    out = peak.astype(np.float64).copy()
    flat_dq = dq.reshape(-1)
    saturated = ((peak + bkg) >= options.max_peak) | ((flat_dq[by * side + bx] & SATURATED) != 0)
    if not saturated.any():
        return out
    dy, dx = np.mgrid[-WING_OUTER : WING_OUTER + 1, -WING_OUTER : WING_OUTER + 1]
    ring = (np.hypot(dx, dy) >= WING_INNER) & (np.hypot(dx, dy) <= WING_OUTER)
    dy, dx = dy[ring], dx[ring]
    index = np.flatnonzero(saturated)
    rows = np.clip(by[index, None] + dy[None, :], 0, side - 1)
    columns = np.clip(bx[index, None] + dx[None, :], 0, side - 1)
    ok = usable[rows, columns]
    values = np.where(ok, data[rows, columns] - bkg[index, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        wing = values.sum(axis=1) / np.count_nonzero(ok, axis=1) / WING_TO_PEAK
    out[index] = np.fmax(out[index], wing)
    return out


def _radius_classes(radius: np.ndarray) -> np.ndarray:
    """Class of each search radius: radii within a factor 2^(1/4) share one (the class's largest is searched)."""
    return np.ceil(4.0 * np.log2(np.maximum(radius, 1.0))).astype(np.int64)


def _neighbour_pairs(positions: np.ndarray, tree: cKDTree, source: np.ndarray, radius: np.ndarray, density: float):
    """Yield ``(i, j, d2)``: every peak ``j`` within ``radius[i]`` of a peak ``i`` of ``source``, as arrays.

    Vectorised: the sources are grouped by radius class (:func:`_radius_classes`) and each group's pairs
    come from :meth:`cKDTree.sparse_distance_matrix` against all the peaks (no Python loop over pairs),
    as many sources at a time as give about :data:`PAIR_BUDGET` pairs at the peaks' mean ``density``
    (per pixel), so that memory stays bounded in a crowded field.
    """
    classes = _radius_classes(radius[source])
    for k in np.unique(classes):
        members = source[classes == k]
        reach = float(radius[members].max())
        chunk = max(64, int(PAIR_BUDGET / (np.pi * reach**2 * max(density, 1e-9))))
        for start in range(0, members.size, chunk):
            part = members[start : start + chunk]
            pairs = cKDTree(positions[part]).sparse_distance_matrix(tree, reach, output_type="ndarray")
            i, j, d = part[pairs["i"]], pairs["j"].astype(np.int64), pairs["v"]
            near = d <= radius[i]
            yield i[near], j[near], d[near] ** 2


def psf_features(
    data: np.ndarray,
    usable: np.ndarray,
    dq: np.ndarray,
    bx: np.ndarray,
    by: np.ndarray,
    bkg: np.ndarray,
    peak: np.ndarray,
    sigma: np.ndarray,
    options: DetectionOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks that lie within the PSF of a brighter star: ``(feature, likely)`` boolean masks.

    Brightness is that of :func:`brightness` (``B``, the peak or a saturated star's wing estimate), for
    the comparison (``B_j < B_i``, ties to the later peak) as for the bounds. A peak ``j`` at ``d``
    pixels from a brighter ``i`` is

    * a **feature** (``feature``) when ``B_j <= PSF_ENVELOPE * B_i / d^2`` (0.4: the bound of every
      local maximum of the galsim.roman PSFs, pixel-convolved, F062 to F213, relative to their peak,
      from the first ring at 2 pixels out to the spikes 120 pixels away) or, within
      :data:`RING_RADIUS` pixels, ``B_j <= RING_LEVEL * B_i`` (the first ring of a star centred off its
      pixel: up to 15 % of its peak pixel). Below the PSF's own bound it cannot be told from the PSF;
    * a **likely feature** (``likely``, not in ``feature``) when it is only below the bound widened for
      noise and the PSF's change over the field: ``psf_envelope * B_i / d^2`` (1.2), or within
      :data:`RING_RADIUS`, :data:`RING_FRACTION` (0.3) of ``B_i``. It is most likely a ring or spike
      pixel lifted by noise, but may be a real faint companion: it is not counted as a source, yet the
      brighter star is not isolated (a companion in its stamp would bias its shape and centroid).

    ``psf_envelope = 0`` keeps every peak (both masks False); a smaller ``psf_envelope`` than the PSF's
    bound lowers both bounds to it.
    """
    n = peak.size
    feature, likely = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n < 2 or options.psf_envelope <= 0:
        return feature, likely
    b = brightness(data, usable, dq, bx, by, bkg, peak, options)
    # beyond this radius the envelope is below the faintest peak that can be detected
    faintest = max(float(np.nanmin(b)), float(np.nanmin(options.detection_threshold * sigma)))
    radius = np.sqrt(options.psf_envelope * b / max(faintest, 1e-30))
    radius = np.clip(np.nan_to_num(radius), RING_RADIUS, MAX_FEATURE_RADIUS)
    source = np.flatnonzero(radius > max(options.merge_radius, 1.0))
    if source.size == 0:
        return feature, likely
    positions = np.column_stack([bx, by]).astype(np.float64)
    tree = cKDTree(positions)
    own = min(PSF_ENVELOPE, options.psf_envelope)  # the PSF's own bound (or a smaller one chosen)
    density = n / max(int(np.count_nonzero(usable)), 1)
    for i, j, d2 in _neighbour_pairs(positions, tree, source, radius, density):
        fainter = (b[j] < b[i]) | ((b[j] == b[i]) & (j > i))
        within_ring = d2 <= RING_RADIUS**2
        scale = b[i] / np.maximum(d2, 1.0)
        bound = np.where(within_ring, np.maximum(own * scale, RING_LEVEL * b[i]), own * scale)
        wide = np.where(
            within_ring, np.maximum(options.psf_envelope * scale, RING_FRACTION * b[i]), options.psf_envelope * scale
        )
        candidate = fainter & (d2 > 0)
        feature[j[candidate & (b[j] <= bound)]] = True
        likely[j[candidate & (b[j] < wide)]] = True
    return feature, likely & ~feature


def _stamp_measures(
    data: np.ndarray,
    usable: np.ndarray,
    dq: np.ndarray,
    by: np.ndarray,
    bx: np.ndarray,
    bkg: np.ndarray,
    options: DetectionOptions,
) -> tuple[np.ndarray, ...]:
    """Measurability, unusable pixels, DQ saturation, flux and centroid of the stars peaking at ``(by, bx)``.

    All on the 5x5 box around the peak (kept inside the frame), unusable pixels counting 0; the centroid
    (frame pixels) is that of the positive pixels of the 3x3 core.
    """
    side = data.shape[0]
    r = options.stamp_radius
    inside = (by >= r) & (by < side - r) & (bx >= r) & (bx < side - r)
    sy = np.clip(by, SATURATION_RADIUS, side - SATURATION_RADIUS - 1)
    sx = np.clip(bx, SATURATION_RADIUS, side - SATURATION_RADIUS - 1)
    box_offsets = np.arange(-SATURATION_RADIUS, SATURATION_RADIUS + 1)
    rows = sy[:, None, None] + box_offsets[None, :, None]
    columns = sx[:, None, None] + box_offsets[None, None, :]
    ok = usable[rows, columns]
    n_masked = box_offsets.size**2 - np.count_nonzero(ok, axis=(1, 2))
    measurable = inside & (n_masked <= options.max_masked_pixels)
    saturated = np.any(dq[rows, columns] & SATURATED, axis=(1, 2))
    box = np.where(ok, data[rows, columns] - bkg[:, None, None], 0.0)  # background subtracted
    flux = box.sum(axis=(1, 2))
    core = np.clip(box[:, 1:4, 1:4], 0.0, None)
    total = core.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    x = sx + np.where(total > 0, (core.sum(axis=1) * np.array([-1.0, 0.0, 1.0])).sum(axis=1) / safe, 0.0)
    y = sy + np.where(total > 0, (core.sum(axis=2) * np.array([-1.0, 0.0, 1.0])).sum(axis=1) / safe, 0.0)
    return measurable, n_masked, saturated, flux, x, y


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
        Threshold, isolation, merge radius, peak limit, stamp size, unusable pixels allowed.

    Returns
    -------
    Stars
        The detections, brightest first; empty with ``problem`` set when the frame
        has no usable pixel or no noise (a constant image).
    """
    side = data.shape[0]
    block = block_size(side)
    usable = usable_pixels(data, dq)
    n_usable = int(np.count_nonzero(usable))
    if n_usable == 0:
        nan_grid = np.full((side // block,) * 2, np.nan)
        return _empty_stars(nan_grid, nan_grid, block, 0, NO_USABLE_PIXEL)
    background, sigma = block_statistics(data, usable, block)
    if not np.any(sigma > 0):
        problem = "the image has no noise (constant values): no star to detect"
        return _empty_stars(background, sigma, block, n_usable, problem)

    # Candidates above their block's threshold that are local maxima, then single-pixel events dropped.
    threshold = np.where(sigma > 0, background + options.detection_threshold * sigma, np.inf).astype(np.float32)
    index = local_maxima(data, usable, threshold, block)
    by, bx = np.divmod(index, side)
    bkg = background[by // block, bx // block]
    flat = data.reshape(-1)
    peak = flat[index] - bkg
    four = [index + step for step in (-side, -1, 1, side)]  # the 4-connected neighbours
    ok = np.column_stack([usable.reshape(-1)[i] for i in four])
    four_sum = np.where(ok, np.column_stack([flat[i] for i in four]) - bkg[:, None], 0.0).sum(axis=1)
    n_ok = np.count_nonzero(ok, axis=1)
    spike = (n_ok == 0) | (four_sum < options.spike_fraction * peak * n_ok)
    keep = ~spike
    by, bx, bkg, peak = by[keep], bx[keep], bkg[keep], peak[keep]
    if by.size == 0:
        return _empty_stars(background, sigma, block, n_usable, None)

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

    # Airy rings, diffraction spikes and noise peaks in the wings of brighter stars are not sources. Peaks
    # only likely to be such features (above the PSF's own bound) may be faint companions: they are not
    # counted as sources but still make their neighbours non-isolated.
    feature, likely = psf_features(data, usable, dq, bx, by, bkg, peak, sigma[by // block, bx // block], options)
    n_likely = int(likely.sum())
    n_features = int(feature.sum()) + n_likely
    if feature.any():
        keep = ~feature
        by, bx, bkg, peak, likely = by[keep], bx[keep], bkg[keep], peak[keep], likely[keep]
        positions = positions[keep]
        tree = cKDTree(positions)

    # Isolation: any other peak within the radius (likely features included).
    if by.size > 1 and options.isolation_radius > 0:
        distance, _ = tree.query(positions, k=2)
        isolated = distance[:, 1] > options.isolation_radius
    else:
        isolated = np.ones(by.size, dtype=bool)
    if likely.any():
        keep = ~likely
        by, bx, bkg, peak, isolated = by[keep], bx[keep], bkg[keep], peak[keep], isolated[keep]

    # Stamps, a chunk of stars at a time (bounded memory in a crowded field).
    chunks = [slice(i, i + STAMP_CHUNK) for i in range(0, by.size, STAMP_CHUNK)]
    measured = [_stamp_measures(data, usable, dq, by[c], bx[c], bkg[c], options) for c in chunks]
    measurable, n_masked, saturated, flux, x, y = (np.concatenate(column) for column in zip(*measured, strict=True))
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
        measurable=measurable[order],
        n_masked=n_masked[order].astype(np.int64),
        block_background=background,
        block_sigma=sigma,
        block=block,
        n_usable=n_usable,
        n_psf_features=n_features,
        n_possible_companions=n_likely,
    )


def masked_note(stars: Stars, chosen: np.ndarray, min_snr: float, max_masked: int) -> str:
    """A note fragment on unusable pixels: ``chosen`` stars measured without some, eligible ones with too many.

    "" when no star of S/N ``min_snr`` or more that is isolated and unsaturated touches an unusable pixel.
    """
    with_masked = int(np.count_nonzero(stars.n_masked[chosen] > 0))
    eligible = stars.isolated & ~stars.saturated & (stars.snr >= min_snr)
    too_many = int(np.count_nonzero(eligible & (stars.n_masked > max_masked)))
    if with_masked == 0 and too_many == 0:
        return ""
    return (
        f"; {with_masked} measured with unusable pixels (non-finite or DO_NOT_USE) left out, {too_many} not used for "
        f"more than {max_masked} of them in the 5x5 box around the peak (bad pixels, the image edge)"
    )
