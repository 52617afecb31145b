"""Exact order statistics and sigma-clipped statistics of *groups* of sorted rows, vectorised over the groups.

What it is for: a monitor measures every cell of several scales at once (super-pixels, amplifier strips,
the detector, an amplifier's even or odd columns). Sorting each scale on its own sorts the frame once
per scale. Here the frame is copied once into rows (one per super-pixel, or one per column parity and
super-pixel), each row is sorted once (:class:`SortedRows`), and every cell of every scale is a *group*:
the union of some of those rows. Percentiles, medians and sigma-clipped mean, median and std of all
groups are then read from the sorted rows, exactly, without merging or copying a union.

A :class:`Grouping` is three things: ``row_ids`` (the physical row of each *virtual row*), ``group``
(the group of each virtual row) and ``n_groups``. A physical row may appear several times, once per
group it belongs to (a super-pixel row in its super-pixel, its amplifier and the detector); each
appearance keeps its own window ``[lo, hi)`` of values, so clipping a row in one group does not clip
it in another. :meth:`Grouping.concat` puts several scales into one grouping, computed in one pass.

Order statistics (:func:`select`): the ``k``-th smallest value of the union of a group's windows lies
between the smallest of its rows' own ``floor(k n_r / N)``-th values and the largest of their
``ceil((k+1) n_r / N) - 1``-th (for a group of one row the two are the answer). The bracket is then
narrowed over the ordered integer image of the floats (:func:`~rdmt_core.measure.blockstats.sortable`):
each step probes two values just either side of the answer interpolated on the counts at the bracket's
ends (bisecting instead where that did not halve the bracket), counting ``<= value`` by a vectorised
binary search in every row confined to the positions already bracketed (:meth:`SortedRows.search`);
once a group's bracket holds at most :data:`GATHER` values they are read and ranked. The next order
statistic comes with it, so a percentile (numpy's ``linear`` method) or an even-sized median costs one
selection. Exact whatever the data: interpolation only chooses where to count.

Sigma clipping (:func:`clip`) follows ONE rule, astropy's ``sigma_clipped_stats`` with its defaults,
as :mod:`rdmt_core.measure.clipped`: each iteration takes the median and the population std of the
values kept so far, keeps ``|x - median| <= sigma * std`` (bounds inclusive), and stops when nothing
changes or after ``maxiters`` iterations; the result is the mean, median and std of what is kept.
Every group is clipped independently. In a sorted row the kept values of a window are a sub-window:
its ends move by binary search, and the float64 sums that give the mean and std lose only the trimmed
values (summed again where cancellation would threaten); a group that stopped changing is left alone.
The clipped values are a group's smallest and largest, so its new median is the old set's order
statistic a known number of ranks from the old median: that gives :func:`select` a narrow first
bracket, confirmed by counting (a wrong one costs a search, never a wrong answer).

Non-finite values (NaN, +-inf) are ignored everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from .blockstats import ScaleValues, from_sortable, sortable, superpixel_rows
from .clipped import (
    MAXITERS,
    REFRESH_FRACTION,
    SIGMA,
    ClippedStats,
    group_moments,
    row_moments,
    search_windows,
    sorted_rows,
    window_sums,
)

GATHER = 256  # a group's bracket holding this few values is read and ranked instead of narrowed further


@dataclass(frozen=True)
class Grouping:
    """Virtual rows: the physical row (``row_ids``) and the group (0..``n_groups``-1) of each."""

    row_ids: np.ndarray
    group: np.ndarray
    n_groups: int

    @classmethod
    def by_label(cls, label: np.ndarray, n_groups: int) -> Grouping:
        """Every physical row once, in group ``label[row]``."""
        label = np.asarray(label, dtype=np.int64)
        return cls(np.arange(label.size), label, n_groups)

    @staticmethod
    def concat(*groupings: Grouping) -> tuple[Grouping, list[slice]]:
        """One grouping of all ``groupings`` (group ids offset), and the slice of each one's groups."""
        row_ids, groups, slices, offset = [], [], [], 0
        for g in groupings:
            row_ids.append(g.row_ids)
            groups.append(g.group + offset)
            slices.append(slice(offset, offset + g.n_groups))
            offset += g.n_groups
        return Grouping(np.concatenate(row_ids), np.concatenate(groups), offset), slices

    def sizes(self) -> np.ndarray:
        """Virtual rows per group."""
        return np.bincount(self.group, minlength=self.n_groups)


class SortedRows:
    """Rows each sorted ascending with their ``n_valid`` finite values first, and binary searches in them.

    A search runs in two stages: first in every :attr:`STEP`-th value of each row (a copy small enough to
    stay in cache), then in the full row between the two sample points that bracket the answer. The same
    answers as :func:`~rdmt_core.measure.clipped.search_windows`, with far fewer reads scattered over the
    full rows (each probe of a large array is a cache miss).
    """

    STEP = 64

    def __init__(self, rows: np.ndarray, n_valid: np.ndarray) -> None:
        self.rows = rows
        self.n_valid = np.asarray(n_valid, dtype=np.int64)
        self._sample: np.ndarray | None = None

    @classmethod
    def sort(cls, rows: np.ndarray) -> SortedRows:
        """Sort ``rows`` in place (infinities become NaN; NaNs last): pass a copy you own."""
        return cls(*sorted_rows(rows))

    @classmethod
    def of_superpixels(cls, frame: np.ndarray) -> SortedRows:
        """The 1,024 super-pixels of ``frame`` (square, side divisible by 32), one per row, sorted.

        float32 unless ``frame`` is float64. Row ``i`` is super-pixel ``i`` (see :func:`superpixel_scales`).
        """
        values = np.asarray(frame, dtype=np.float64 if frame.dtype == np.float64 else np.float32)
        return cls.sort(superpixel_rows(values))

    def search(self, row_ids: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: np.ndarray, right: bool) -> np.ndarray:
        """For rows ``row_ids``, the first index in ``[lo, hi)`` whose value is >= ``value`` (> with ``right``)."""
        step = self.STEP
        if row_ids.size == 0 or int((hi - lo).max(initial=0)) <= 2 * step:
            return search_windows(self.rows, row_ids, lo, hi, value, right)
        if self._sample is None:
            self._sample = np.ascontiguousarray(self.rows[:, ::step])
        j0 = -(-lo // step)  # first sample index at or after lo
        j1 = -(-hi // step)  # first sample index at or after hi: samples j0..j1-1 lie in [lo, hi)
        j = search_windows(self._sample, row_ids, j0, np.maximum(j1, j0), value, right)  # first sample past it
        narrow_hi = np.minimum(hi, j * step)
        narrow_lo = np.minimum(np.maximum(lo, (j - 1) * step + 1), narrow_hi)
        return search_windows(self.rows, row_ids, narrow_lo, narrow_hi, value, right)

    def count_below(self, value: float, inclusive: bool) -> np.ndarray:
        """Finite values of each row below ``value`` (``< value``, or ``<= value`` when ``inclusive``)."""
        ids = np.arange(self.rows.shape[0])
        bound = np.full(ids.size, value, dtype=np.float64)
        return self.search(ids, np.zeros_like(self.n_valid), self.n_valid, bound, right=inclusive)

    def full_windows(self, g: Grouping) -> tuple[np.ndarray, np.ndarray]:
        """The windows ``[0, n_valid)`` of the virtual rows of ``g``."""
        hi = self.n_valid[g.row_ids]
        return np.zeros_like(hi), hi.copy()


def select(
    data: SortedRows,
    g: Grouping,
    lo: np.ndarray,
    hi: np.ndarray,
    rank: np.ndarray,
    want: np.ndarray | None = None,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``rank``-th and the next smallest (0-based) value of each group's union of windows. Exact.

    Parameters
    ----------
    data : SortedRows
        The sorted rows.
    g : Grouping
        The groups; virtual row ``i`` has the window ``data.rows[g.row_ids[i], lo[i]:hi[i]]``.
    lo, hi : ndarray
        The windows (int64, per virtual row), inside each row's finite values.
    rank : ndarray
        Per group, the 0-based rank asked for.
    want : ndarray of bool, optional
        Only the groups marked here are searched (the others are NaN).
    guess : tuple of ndarray, optional
        Per group, a value range thought to hold the answer (NaN: none). It narrows the first bracket
        where counting confirms it; a wrong guess costs a search, never a wrong answer.

    Returns
    -------
    first, second : ndarray
        float64 per group: the ``rank``-th smallest value and the ``rank+1``-th (the ``rank``-th again
        when there is none). NaN where the group has no value at that rank.
    """
    rows = data.rows
    n_r = hi - lo
    total = np.bincount(g.group, weights=n_r, minlength=g.n_groups).astype(np.int64)
    rank = np.broadcast_to(np.asarray(rank, dtype=np.int64), (g.n_groups,))
    valid = (rank >= 0) & (rank < total)
    if want is not None:
        valid &= want
    first = np.full(g.n_groups, np.nan)
    second = np.full(g.n_groups, np.nan)
    one_row = g.sizes() == 1
    # a group of one row: read by index
    single = np.nonzero(valid[g.group] & one_row[g.group])[0]
    if single.size:
        grp, rid, at = g.group[single], g.row_ids[single], lo[single] + rank[g.group[single]]
        first[grp] = rows[rid, at]
        second[grp] = rows[rid, np.minimum(at + 1, hi[single] - 1)]
    valid &= ~one_row
    sub = np.nonzero(valid[g.group] & (n_r > 0))[0]
    if sub.size == 0:
        return first, second
    grp, rid, start, stop = g.group[sub], g.row_ids[sub], lo[sub], hi[sub]
    n, tot, k = stop - start, total[grp], rank[grp]
    # the bracket: each row's own rank quantile bounds the union's (see the module docstring)
    up = rows[rid, start + ((k + 1) * n + tot - 1) // tot - 1]
    down = rows[rid, start + (k * n) // tot]
    v_hi = np.full(g.n_groups, -np.inf, dtype=rows.dtype)
    v_lo = np.full(g.n_groups, np.inf, dtype=rows.dtype)
    np.maximum.at(v_hi, grp, up)
    np.minimum.at(v_lo, grp, down)
    v_lo, v_hi = np.where(valid, v_lo, 0).astype(rows.dtype), np.where(valid, v_hi, 0).astype(rows.dtype)
    key_lo, key_hi = sortable(v_lo), sortable(v_hi)
    target = np.where(valid, rank, 0) + 1
    if guess is None:
        a = data.search(rid, start, stop, v_lo[grp], right=False)  # values < float(key_lo)
        b = data.search(rid, a, stop, v_hi[grp], right=True)  # values <= float(key_hi)
    else:
        with np.errstate(invalid="ignore"):
            g_lo = np.maximum(np.asarray(guess[0], dtype=np.float64), v_lo).astype(rows.dtype)
            g_hi = np.minimum(np.asarray(guess[1], dtype=np.float64), v_hi).astype(rows.dtype)
            use = valid & (g_lo <= g_hi)  # False where the guess is NaN
        try_lo, try_hi = np.where(use, g_lo, v_lo), np.where(use, g_hi, v_hi)
        a = data.search(rid, start, stop, try_lo[grp], right=False)
        b = data.search(rid, a, stop, try_hi[grp], right=True)
        # keep each end of the guess that counting confirms; search again from the provable end otherwise
        too_high = use & (np.bincount(grp, weights=a - start, minlength=g.n_groups) >= target)
        too_low = use & (np.bincount(grp, weights=b - start, minlength=g.n_groups) < target)
        keep_lo, keep_hi = use & ~too_high, use & ~too_low
        v_lo, v_hi = np.where(keep_lo, try_lo, v_lo), np.where(keep_hi, try_hi, v_hi)
        key_lo, key_hi = sortable(v_lo), sortable(v_hi)
        redo = np.nonzero(too_high[grp])[0]
        if redo.size:
            a[redo] = data.search(rid[redo], start[redo], a[redo], v_lo[grp[redo]], right=False)
        redo = np.nonzero(too_low[grp])[0]
        if redo.size:
            b[redo] = data.search(rid[redo], b[redo], stop[redo], v_hi[grp[redo]], right=True)
    bisect = np.zeros(g.n_groups, dtype=bool)
    while True:
        below = np.bincount(grp, weights=a - start, minlength=g.n_groups).astype(np.int64)
        upto = np.bincount(grp, weights=b - start, minlength=g.n_groups).astype(np.int64)
        open_ = valid & (key_lo < key_hi) & (upto - below > GATHER)
        if not open_.any():
            break
        # Two probes around the count-interpolated answer, so both ends of the bracket move (values are
        # dense and smooth near a quantile); a group whose bracket did not halve is bisected next.
        width = key_hi - key_lo
        span = np.maximum(upto - below, 1).astype(np.float64)
        t = (target - below) / span
        margin = 1.0 / 32 + 4.0 / span
        fraction = np.clip(np.stack([t - margin, t + margin]), 0.0, 1.0)
        # interpolated in value, not in key (the keys' step doubles at each power of two)
        low_v = from_sortable(key_lo, rows.dtype).astype(np.float64)
        high_v = from_sortable(key_hi, rows.dtype).astype(np.float64)
        guess = sortable((low_v + fraction * (high_v - low_v)).astype(rows.dtype))
        halfway = key_lo + width // 2
        guess[:, bisect] = halfway[bisect]
        probe = np.clip(guess, key_lo, np.maximum(key_hi, 1) - 1)
        live = np.nonzero(open_[grp])[0]
        n_live = live.size
        both = np.concatenate([live, live])
        value = from_sortable(probe, rows.dtype)
        found = data.search(
            rid[both], a[both], b[both], np.concatenate([value[0, grp[live]], value[1, grp[live]]]), right=True
        )
        position = np.tile(a, (2, 1))
        position[0, live], position[1, live] = found[:n_live], found[n_live:]
        count = np.stack([np.bincount(grp, weights=p - start, minlength=g.n_groups) for p in position])
        enough = count >= target  # per probe; the second probe is at or above the first
        first_enough, second_enough = open_ & enough[0], open_ & ~enough[0] & enough[1]
        neither = open_ & ~enough[1]
        key_hi = np.where(first_enough, probe[0], np.where(second_enough, probe[1], key_hi))
        key_lo = np.where(second_enough, probe[0] + 1, np.where(neither, probe[1] + 1, key_lo))
        on = np.zeros(len(sub), dtype=bool)
        on[live] = True
        a = np.where(on & second_enough[grp], position[0], np.where(on & neither[grp], position[1], a))
        b = np.where(on & first_enough[grp], position[0], np.where(on & second_enough[grp], position[1], b))
        new_span = np.bincount(grp, weights=b - a, minlength=g.n_groups)
        bisect = open_ & (new_span > span / 2)
    answer = from_sortable(key_lo, rows.dtype).astype(np.float64)
    after = answer.copy()
    pick = valid & (key_lo < key_hi)
    upto = np.bincount(grp, weights=b - start, minlength=g.n_groups).astype(np.int64)
    known = np.zeros(g.n_groups, dtype=bool)  # groups whose next order statistic is among the gathered values
    if pick.any():  # at most GATHER values in each bracket: read them and rank
        low_value = from_sortable(key_lo, rows.dtype)
        r = np.nonzero(pick[grp])[0]
        # values < float(key_lo), recounted (-0.0 and +0.0 have two keys but compare equal)
        begin = a.copy()
        zero = r[low_value[grp[r]] == 0]
        begin[zero] = data.search(rid[zero], start[zero], a[zero], low_value[grp[zero]], right=False)
        lengths = b[r] - begin[r]
        segment = np.repeat(r, lengths)
        offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat = rid[segment] * rows.shape[1] + begin[segment] + (np.arange(int(lengths.sum())) - offsets)
        values, owner = rows.reshape(-1)[flat], grp[segment]
        if values.dtype.itemsize == 4:  # one sort of (group, value) packed in 64 bits: faster than lexsort
            packed = np.sort((owner.astype(np.uint64) << np.uint64(32)) | sortable(values).astype(np.uint64))
            values = from_sortable(packed.astype(np.uint32), values.dtype)
            owner = (packed >> np.uint64(32)).astype(np.int64)
        else:
            order = np.lexsort((values, owner))
            values, owner = values[order], owner[order]
        picked = np.nonzero(pick)[0]
        below = np.bincount(grp, weights=begin - start, minlength=g.n_groups).astype(np.int64)
        at = np.searchsorted(owner, picked) + target[picked] - 1 - below[picked]
        answer[picked] = values[at]
        known[picked] = target[picked] < upto[picked]
        after[picked] = np.where(known[picked], values[np.minimum(at + 1, values.size - 1)], answer[picked])
    # the next order statistic of the others: the same value if it repeats, else the smallest value above it
    # (every value before ``a`` is <= the answer, so each row is searched from there)
    rest = np.nonzero(~known[grp])[0]
    if rest.size:
        within = grp[rest]
        position = data.search(rid[rest], a[rest], stop[rest], answer[within], right=True)
        at_or_below = np.bincount(within, weights=position - start[rest], minlength=g.n_groups)
        above = np.where(position < stop[rest], rows[rid[rest], np.minimum(position, rows.shape[1] - 1)], np.inf)
        smallest_above = np.full(g.n_groups, np.inf)
        np.minimum.at(smallest_above, within, above.astype(np.float64))
        repeats = (at_or_below >= target + 1) | ~np.isfinite(smallest_above)
        after = np.where(known, after, np.where(repeats, answer, smallest_above))
    first[valid], second[valid] = answer[valid], after[valid]
    return first, second


def interpolate(below: np.ndarray, above: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """numpy's ``linear`` percentile between two order statistics (its lerp form, so the rounding matches)."""
    lerp = below + (above - below) * frac
    return np.where(frac >= 0.5, above - (above - below) * (1 - frac), lerp)


def percentiles(data: SortedRows, g: Grouping, qs: Sequence[float]) -> dict[float, np.ndarray]:
    """Exact percentiles ``qs`` (numpy's ``linear`` method) of each group's finite values; NaN for an empty group.

    One selection for all ``qs`` and groups together.
    """
    lo, hi = data.full_windows(g)
    n = np.bincount(g.group, weights=hi - lo, minlength=g.n_groups).astype(np.int64)
    everything, slices = Grouping.concat(*([g] * len(qs)))
    positions = [(q / 100.0) * np.maximum(n - 1, 0) for q in qs]
    ranks = [np.floor(p).astype(np.int64) for p in positions]
    tiled = len(qs)
    first, second = select(data, everything, np.tile(lo, tiled), np.tile(hi, tiled), np.concatenate(ranks))
    return {
        q: interpolate(first[part], second[part], position - rank)
        for q, part, position, rank in zip(qs, slices, positions, ranks, strict=True)
    }


def medians(
    data: SortedRows,
    g: Grouping,
    lo: np.ndarray,
    hi: np.ndarray,
    want: np.ndarray | None = None,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The median of each group's union of windows (NaN where empty or not in ``want``); see :func:`select`."""
    n = np.bincount(g.group, weights=hi - lo, minlength=g.n_groups).astype(np.int64)
    below, above = select(data, g, lo, hi, (n - 1) // 2, want, guess)
    return np.where(n % 2 == 1, below, (below + above) / 2.0)


def clip(
    data: SortedRows,
    g: Grouping,
    sigma: float = SIGMA,
    maxiters: int = MAXITERS,
    moments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    median: np.ndarray | None = None,
    with_median: bool = True,
) -> ClippedStats:
    """Sigma-clipped count, mean, median and std (ddof=0) of each group: astropy's ``sigma_clipped_stats``.

    Parameters
    ----------
    data : SortedRows
        The sorted rows.
    g : Grouping
        The groups, each clipped on its own values.
    sigma, maxiters : float, int
        Values with ``|x - median| <= sigma * std`` are kept; at most ``maxiters`` iterations.
    moments : tuple of ndarray, optional
        Per physical row ``(n, mean, M2)`` of its finite values when already known (saves a pass over
        the rows; see :func:`moments_of_sums`); ``M2`` is the sum of squared deviations from the mean.
    median : ndarray, optional
        Each group's median of all its finite values, when already known.
    with_median : bool
        False when only the count, mean and std are wanted: the median of the finally kept values is
        then not searched for (NaN in the result) where the last iteration still clipped.

    Returns
    -------
    ClippedStats
        Per group; its ``lo`` and ``hi`` are the kept windows of the virtual rows.
    """
    lo, hi = data.full_windows(g)
    group, n_groups = g.group, g.n_groups
    if median is None:
        median = medians(data, g, lo, hi)
    median = np.asarray(median, dtype=np.float64).copy()
    centre = np.nan_to_num(median)
    shift = centre[group]  # each virtual row's sums are kept about its group's first median (well conditioned)
    per_row = moments or row_moments(data.rows, data.n_valid)
    n0, mean0, m20 = (np.asarray(m, dtype=np.float64)[g.row_ids] for m in per_row)
    offset = np.where(n0 > 0, mean0 - shift, 0.0)
    s1, s2 = n0 * offset, np.where(n0 > 0, m20, 0.0) + n0 * offset**2
    active = np.ones(n_groups, dtype=bool)
    iterations = 0
    for _ in range(maxiters):
        count, mean, std = group_moments(hi - lo, s1, s2, group, n_groups, centre)
        with np.errstate(invalid="ignore"):
            low_bound, high_bound = (median - sigma * std)[group], (median + sigma * std)[group]
        r = np.nonzero(active[group] & (hi > lo))[0]
        new_lo, new_hi = lo.copy(), hi.copy()
        if r.size:
            ids = g.row_ids[r]
            new_lo[r] = data.search(ids, lo[r], hi[r], low_bound[r], right=False)
            new_hi[r] = data.search(ids, new_lo[r], hi[r], high_bound[r], right=True)
        iterations += 1
        changed = np.nonzero((new_lo != lo) | (new_hi != hi))[0]
        if changed.size == 0:
            break
        k = changed.size
        ids = np.concatenate([changed, changed])
        t1, t2 = window_sums(
            data.rows,
            g.row_ids[ids],
            np.concatenate([lo[changed], new_hi[changed]]),
            np.concatenate([new_lo[changed], hi[changed]]),
            shift[ids],
        )
        before = s2[changed].copy()
        s1[changed] -= t1[:k] + t1[k:]
        s2[changed] -= t2[:k] + t2[k:]
        guess = _median_guess(median, std, hi - lo, new_hi - new_lo, new_lo - lo, group, n_groups)
        lo, hi = new_lo, new_hi
        refresh = changed[(s2[changed] < REFRESH_FRACTION * before) | (s2[changed] < 0)]
        if refresh.size:
            s1[refresh], s2[refresh] = window_sums(
                data.rows, g.row_ids[refresh], lo[refresh], hi[refresh], shift[refresh]
            )
        active = np.bincount(group[changed], minlength=n_groups) > 0
        if iterations < maxiters or with_median:
            median = np.where(active, medians(data, g, lo, hi, active, guess), median)
        else:
            median = np.where(active, np.nan, median)
    count, mean, std = group_moments(hi - lo, s1, s2, group, n_groups, centre)
    n_valid = np.bincount(group, weights=data.n_valid[g.row_ids], minlength=n_groups).astype(np.int64)
    return ClippedStats(
        count=count,
        mean=mean,
        median=np.where(count > 0, median, np.nan),
        std=std,
        n_valid=n_valid,
        lo=lo,
        hi=hi,
        iterations=iterations,
    )


def _median_guess(
    median: np.ndarray,
    std: np.ndarray,
    n_before: np.ndarray,
    n_after: np.ndarray,
    trimmed_low: np.ndarray,
    group: np.ndarray,
    n_groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each group's median moves when its windows lose values: a value range to confirm by counting.

    The values clipped from a group are its smallest and its largest, so the new median is the old set's
    order statistic ``shift`` ranks away from the old median; ranks become values through the density at
    the median of a normal distribution of the old std (a guess: :func:`select` checks it).
    """
    count = np.bincount(group, weights=n_before, minlength=n_groups)
    kept = np.bincount(group, weights=n_after, minlength=n_groups)
    low = np.bincount(group, weights=trimmed_low, minlength=n_groups)
    shift = (kept - 1) // 2 + low - (count - 1) // 2
    with np.errstate(invalid="ignore", divide="ignore"):
        per_rank = std * np.sqrt(2 * np.pi) / count  # value step between neighbouring order statistics
        centre = median + shift * per_rank
        half = (16 + np.abs(shift) / 2) * per_rank
    return centre - half, centre + half


def row_sums(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 sums of ``x`` and ``x**2`` of each row (all finite: set left-out values to 0 first)."""
    return rows.sum(axis=1, dtype=np.float64), np.einsum("ij,ij->i", rows, rows, dtype=np.float64)


def moments_of_sums(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row ``(n, mean, M2)`` from the count and the sums of ``x`` and ``x**2``, as :func:`clip` takes them."""
    n = np.asarray(n, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / n, 0.0)
    return n, mean, np.maximum(s2 - s1 * mean, 0.0)


# The three scales over super-pixel rows (row i = super-pixel i, as blockstats.superpixel_rows lays them).
AMP_OF_CELL = np.arange(N_SUPERPIXELS) % GRID  # 0-based amplifier of each super-pixel


def superpixel_scales() -> tuple[Grouping, list[slice]]:
    """Super-pixels (one row each), amplifiers (their 32 rows) and the detector (all rows), as one grouping.

    The slices give the groups of each scale, in that order (see :func:`to_scales`).
    """
    return Grouping.concat(
        Grouping.by_label(np.arange(N_SUPERPIXELS), N_SUPERPIXELS),
        Grouping.by_label(AMP_OF_CELL, N_AMPLIFIERS),
        Grouping.by_label(np.zeros(N_SUPERPIXELS, dtype=np.int64), 1),
    )


def to_scales(values: np.ndarray, parts: list[slice]) -> ScaleValues:
    """Per-group values of :func:`superpixel_scales` as :class:`ScaleValues`."""
    sp, amp, det = (np.asarray(values[p], dtype=np.float64) for p in parts)
    return ScaleValues(float(det[0]), amp, sp)


def percentiles_at_scales(data: SortedRows, qs: Sequence[float]) -> dict[float, ScaleValues]:
    """Exact percentiles ``qs`` of each cell of the three scales, from sorted super-pixel rows."""
    scales, parts = superpixel_scales()
    return {q: to_scales(values, parts) for q, values in percentiles(data, scales, qs).items()}


def sum_at_scales(per_cell: np.ndarray) -> ScaleValues:
    """A count per super-pixel summed into amplifier and detector values."""
    per_cell = np.asarray(per_cell, dtype=np.float64)
    amplifier = np.bincount(AMP_OF_CELL, weights=per_cell, minlength=N_AMPLIFIERS)
    return ScaleValues(float(per_cell.sum()), amplifier, per_cell)


__all__ = [
    "GATHER",
    "Grouping",
    "SortedRows",
    "clip",
    "interpolate",
    "medians",
    "moments_of_sums",
    "percentiles",
    "percentiles_at_scales",
    "row_sums",
    "select",
    "sum_at_scales",
    "superpixel_scales",
    "to_scales",
]
