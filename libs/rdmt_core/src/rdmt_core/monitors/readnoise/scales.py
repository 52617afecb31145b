"""Percentiles and sigma-clipped statistics at the three scales from ONE sort of the super-pixels.

Shared by the readnoise, gain and saturation monitors (a candidate for ``rdmt_core.measure``, which
this package may not edit). :func:`rdmt_core.measure.blockstats.distribution_at_scales` and
:func:`rdmt_core.measure.clipped.clipped_at_scales` each sort the frame twice (super-pixels, then
amplifier strips): about 0.45 s for a 4096 x 4096 frame on one thread. Here only the 1,024
super-pixels are sorted; an amplifier strip is the union of its 32 sorted super-pixel rows and the
detector the union of all 1,024, and their order statistics are found by a bisection over the ordered
integer image of the floats (:func:`~rdmt_core.measure.blockstats.sortable`) that is vectorised over
every (query, row) pair, each row's count coming from a binary search confined to the positions
already bracketed. Exact: the same numbers as ``np.percentile`` and astropy's ``sigma_clipped_stats``
(the clipping rules of :mod:`rdmt_core.measure.clipped`) on each cell's finite pixels, to rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues, _percentiles_of_sorted, from_sortable, sortable, superpixel_rows
from ...measure.clipped import (
    MAXITERS,
    SIGMA,
    _group_moments,
    _search,
    _window_sums,
    clip_sorted,
    row_moments,
    sorted_rows,
)

AMP_OF_CELL = np.arange(N_SUPERPIXELS) % GRID  # 0-based amplifier of each super-pixel row
# Amplifiers and the detector in one pass: every super-pixel row twice, once in its amplifier (groups
# 0..31) and once in the detector (group 32).
SCALE_ROWS = np.concatenate([np.arange(N_SUPERPIXELS), np.arange(N_SUPERPIXELS)])
SCALE_GROUPS = np.concatenate([AMP_OF_CELL, np.full(N_SUPERPIXELS, N_AMPLIFIERS)])
GATHER = 512  # a union selection stops narrowing once its bracket holds this few values, then reads them


@dataclass(frozen=True)
class SortedCells:
    """The frame's super-pixels, one per row, each sorted with its non-finite values last."""

    rows: np.ndarray  # (1024, cell*cell)
    n_valid: np.ndarray  # int64 (1024,), finite values per row

    @classmethod
    def of(cls, frame: np.ndarray) -> SortedCells:
        """Sort the super-pixels of ``frame`` (square, side divisible by 32; float32 unless float64)."""
        values = np.asarray(frame, dtype=np.float32) if frame.dtype != np.float64 else frame
        rows, n_valid = sorted_rows(superpixel_rows(values))
        return cls(rows, n_valid)

    @functools.cached_property
    def searcher(self) -> _Searcher:
        """Binary searches in these rows (with a cached sample of them)."""
        return _Searcher(self.rows)


def at_scales(per_cell: np.ndarray) -> ScaleValues:
    """A count per super-pixel summed into amplifier and detector values."""
    per_cell = np.asarray(per_cell, dtype=np.float64)
    amplifier = np.bincount(AMP_OF_CELL, weights=per_cell, minlength=N_AMPLIFIERS)
    return ScaleValues(float(per_cell.sum()), amplifier, per_cell)


def count_sorted(cells: SortedCells, value: float, inclusive: bool) -> np.ndarray:
    """Finite values of each super-pixel below ``value`` (``< value``, or ``<= value`` when ``inclusive``)."""
    n_rows = cells.rows.shape[0]
    ids = np.arange(n_rows)
    zero = np.zeros(n_rows, dtype=np.int64)
    bound = np.full(n_rows, value, dtype=np.float64)
    return cells.searcher(ids, zero, cells.n_valid.astype(np.int64), bound, right=inclusive)


def select_in_groups(
    rows: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    group: np.ndarray,
    query_group: np.ndarray,
    rank: np.ndarray,
    row_ids: np.ndarray | None = None,
    searcher: _Searcher | None = None,
) -> np.ndarray:
    """Order statistics of unions of sorted-row windows, one per query.

    Query ``q`` asks for the ``rank[q]``-th smallest (0-based) value of the union of the windows
    ``rows[r, lo[r]:hi[r]]`` of the rows ``r`` whose ``group[r]`` is ``query_group[q]``. Every rank
    must be below its group's number of values. Returns float64, one value per query. Exact.
    With ``row_ids``, entry ``i`` of ``lo``, ``hi`` and ``group`` is a window of row ``row_ids[i]``,
    so one row can belong to several groups (an amplifier and the detector) in one call.

    A bisection over the ordered integer image of the floats, alternating with interpolation on the
    counts, vectorised over every (query, row) pair; each row's count is a binary search confined to
    the positions already bracketed. Once a query's bracket holds at most :data:`GATHER` values they
    are read and the rank picked among them.
    """
    search = searcher or _Searcher(rows)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=int(max(group.max(), query_group.max())) + 1)
    starts = np.cumsum(sizes) - sizes
    n_pairs = sizes[query_group]
    pair_query = np.repeat(np.arange(len(query_group)), n_pairs)
    within = np.arange(int(n_pairs.sum())) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    pair_entry = order[starts[query_group][pair_query] + within]
    pair_row = pair_entry if row_ids is None else row_ids[pair_entry]
    starts_q = _segment_starts(n_pairs)
    rank = np.asarray(rank, dtype=np.int64)
    a, b = lo[pair_entry].copy(), hi[pair_entry].copy()  # bracket positions: count < value(low), count <= value(high)
    filled = b > a
    last_index = rows.shape[1] - 1
    first = np.where(filled, rows[pair_row, np.minimum(a, last_index)], np.inf)
    last = np.where(filled, rows[pair_row, np.clip(b - 1, 0, last_index)], -np.inf)
    low = sortable(np.minimum.reduceat(first, starts_q).astype(rows.dtype))
    high = sortable(np.maximum.reduceat(last, starts_q).astype(rows.dtype))
    # A narrower first guess: the union's quantile lies near the rows' own quantiles at the same fraction.
    # Checked by counting; a query whose guess does not bracket its rank keeps the full range.
    n_row = b - a
    total = np.bincount(pair_query, weights=n_row, minlength=len(query_group))
    fraction = (rank / np.maximum(total - 1, 1))[pair_query]
    at = fraction * np.maximum(n_row - 1, 0)
    g_lo = a + np.clip(np.floor(at).astype(np.int64) - 1, 0, np.maximum(n_row - 1, 0))
    g_hi = a + np.clip(np.ceil(at).astype(np.int64) + 1, 0, np.maximum(n_row - 1, 0))
    guess_low = np.minimum.reduceat(np.where(filled, rows[pair_row, np.minimum(g_lo, last_index)], np.inf), starts_q)
    guess_high = np.maximum.reduceat(np.where(filled, rows[pair_row, np.minimum(g_hi, last_index)], -np.inf), starts_q)
    guess_low, guess_high = guess_low.astype(rows.dtype), guess_high.astype(rows.dtype)
    a_guess = search(pair_row, a, b, guess_low[pair_query], right=False)
    b_guess = search(pair_row, a_guess, b, guess_high[pair_query], right=True)
    below = np.bincount(pair_query, weights=a_guess - a, minlength=len(query_group))
    upto = np.bincount(pair_query, weights=b_guess - a, minlength=len(query_group))
    good = (below <= rank) & (upto >= rank + 1)
    low, high = np.where(good, sortable(guess_low), low), np.where(good, sortable(guess_high), high)
    a, b = np.where(good[pair_query], a_guess, a), np.where(good[pair_query], b_guess, b)
    n_q = len(query_group)
    target = rank + 1
    lo_pair = lo[pair_entry]
    step = 0
    while True:
        below = np.bincount(pair_query, weights=a - lo_pair, minlength=n_q).astype(np.int64)
        upto = np.bincount(pair_query, weights=b - lo_pair, minlength=n_q).astype(np.int64)
        open_ = (low < high) & (upto - below > GATHER)
        if not open_.any():
            break
        width = high - low
        if step % 2 == 0:  # interpolate on the counts at the bracket's ends (values are smooth), ...
            t = np.clip((target - below) / np.maximum(upto - below, 1), 0.0, 1.0)
            middle = low + np.minimum((t * width.astype(np.float64)).astype(width.dtype), np.maximum(width, 1) - 1)
        else:  # ... and bisect every other step, so the bracket at least halves every two steps
            middle = low + width // 2
        step += 1
        value = from_sortable(middle, rows.dtype)
        live = open_[pair_query]
        p = np.nonzero(live)[0]
        position = a.copy()
        position[p] = search(pair_row[p], a[p], b[p], value[pair_query[p]], right=True)
        count = np.bincount(pair_query, weights=position - lo_pair, minlength=n_q)
        enough = count >= target
        high = np.where(open_ & enough, middle, high)
        low = np.where(open_ & ~enough, middle + 1, low)
        b = np.where(live & enough[pair_query], position, b)
        a = np.where(live & ~enough[pair_query], position, a)
    out = from_sortable(low, rows.dtype).astype(np.float64)  # a query whose bracket is one value
    # The rest: at most GATHER values lie in the bracket; read them and pick the rank among them.
    pick = np.nonzero(low < high)[0]
    if pick.size:
        chosen = np.isin(pair_query, pick)
        ids = np.nonzero(chosen)[0]
        lengths = (b - a)[ids]
        segment = np.repeat(ids, lengths)
        offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat = pair_row[segment] * rows.shape[1] + a[segment] + (np.arange(int(lengths.sum())) - offsets)
        values = rows.ravel()[flat]
        query_of_value = pair_query[segment]
        order = np.lexsort((values, query_of_value))
        values, query_of_value = values[order], query_of_value[order]
        first_of_query = np.searchsorted(query_of_value, pick)
        out[pick] = values[first_of_query + (rank[pick] - below[pick])]
    return out


def _segment_starts(n_pairs: np.ndarray) -> np.ndarray:
    return (np.cumsum(n_pairs) - n_pairs).astype(np.intp)


class _Searcher:
    """``clipped._search`` on sorted rows, in two stages: first in every STEP-th value of each row (a copy
    small enough to stay in cache), then in the full row between the two sample points that bracket the
    answer. The same answers, with far fewer reads scattered over the full rows (reading them is what
    costs: each probe of a 64 MB array is a cache miss)."""

    STEP = 64

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.sample = np.ascontiguousarray(rows[:, :: self.STEP])

    def __call__(
        self, row_ids: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: np.ndarray, right: bool
    ) -> np.ndarray:
        step = self.STEP
        if row_ids.size == 0 or int((hi - lo).max(initial=0)) <= 2 * step:
            return _search(self.rows, row_ids, lo, hi, value, right)
        j0 = -(-lo // step)  # first sample index at or after lo
        j1 = -(-hi // step)  # first sample index at or after hi: samples j0..j1-1 lie in [lo, hi)
        j = _search(self.sample, row_ids, j0, np.maximum(j1, j0), value, right)  # first sample past the answer
        narrow_lo = np.maximum(lo, (j - 1) * step + 1)
        narrow_hi = np.minimum(hi, j * step)
        narrow_lo = np.minimum(narrow_lo, narrow_hi)
        return _search(self.rows, row_ids, narrow_lo, narrow_hi, value, right)


def _group_percentiles(cells: SortedCells, qs: Sequence[float]) -> np.ndarray:
    """Linear-interpolated percentiles ``qs`` of the 32 amplifiers' and the detector's finite values.

    Shape (len(qs), 33): amplifiers 1..32, then the detector.
    """
    row_ids, group, n_groups = SCALE_ROWS, SCALE_GROUPS, N_AMPLIFIERS + 1
    n = np.bincount(group, weights=cells.n_valid[row_ids], minlength=n_groups).astype(np.int64)
    out = np.full((len(qs), n_groups), np.nan)
    has = np.nonzero(n > 0)[0]
    if has.size == 0:
        return out
    lo_rank, hi_rank, fracs, query_group = [], [], [], []
    for q in qs:
        position = (q / 100.0) * (n[has] - 1)
        below = np.floor(position).astype(np.int64)
        lo_rank.append(below)
        hi_rank.append(np.minimum(below + 1, n[has] - 1))
        fracs.append(position - below)
        query_group.append(has)
    ranks = np.concatenate(lo_rank + hi_rank)
    groups = np.concatenate(query_group + query_group)
    zero = np.zeros(len(row_ids), dtype=np.int64)
    values = select_in_groups(cells.rows, zero, cells.n_valid[row_ids], group, groups, ranks, row_ids, cells.searcher)
    half = len(values) // 2
    below_v, above_v = values[:half].reshape(len(qs), -1), values[half:].reshape(len(qs), -1)
    frac = np.stack(fracs)
    lerp = below_v + (above_v - below_v) * frac
    out[:, has] = np.where(frac >= 0.5, above_v - (above_v - below_v) * (1 - frac), lerp)
    return out


def percentiles_at_scales(cells: SortedCells, qs: Sequence[float]) -> dict[float, ScaleValues]:
    """Exact percentiles ``qs`` (linear interpolation, as ``np.percentile``) of each cell's finite values."""
    sp = _percentiles_of_sorted(cells.rows, cells.n_valid, qs)
    both = _group_percentiles(cells, qs)
    return {q: ScaleValues(float(both[i, N_AMPLIFIERS]), both[i, :N_AMPLIFIERS], sp[i]) for i, q in enumerate(qs)}


def _group_medians(
    search: _Searcher, row_ids: np.ndarray, lo: np.ndarray, hi: np.ndarray, group: np.ndarray, n_groups: int
) -> np.ndarray:
    n = np.bincount(group, weights=hi - lo, minlength=n_groups).astype(np.int64)
    out = np.full(n_groups, np.nan)
    has = np.nonzero(n > 0)[0]
    if has.size:
        ranks = np.concatenate([(n[has] - 1) // 2, n[has] // 2])
        values = select_in_groups(search.rows, lo, hi, group, np.concatenate([has, has]), ranks, row_ids, search)
        out[has] = (values[: has.size] + values[has.size :]) / 2.0
    return out


def _clip_groups(
    search: _Searcher,
    row_ids: np.ndarray,
    n_valid: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    moments: tuple[np.ndarray, np.ndarray, np.ndarray],
    sigma: float,
    maxiters: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped count, mean, median and std of each group of sorted-row windows (the rules of ``clip_sorted``).

    Entry ``i`` of ``n_valid``, ``group`` and ``moments`` is row ``row_ids[i]``; each entry keeps its own window,
    so a row can be clipped in several groups at once. Groups are clipped independently.
    """
    rows = search.rows
    lo = np.zeros(len(row_ids), dtype=np.int64)
    hi = np.asarray(n_valid, dtype=np.int64).copy()
    median = _group_medians(search, row_ids, lo, hi, group, n_groups)
    centre = np.nan_to_num(median)
    shift = centre[group]
    n0, mean0, m20 = (np.asarray(m, dtype=np.float64) for m in moments)
    offset = np.where(n0 > 0, mean0 - shift, 0.0)
    s1, s2 = n0 * offset, np.where(n0 > 0, m20, 0.0) + n0 * offset**2
    for _ in range(maxiters):
        count, mean, std = _group_moments(hi - lo, s1, s2, group, n_groups, centre)
        with np.errstate(invalid="ignore"):
            low_bound, high_bound = (median - sigma * std)[group], (median + sigma * std)[group]
        r = np.nonzero(hi > lo)[0]
        new_lo, new_hi = lo.copy(), hi.copy()
        new_lo[r] = search(row_ids[r], lo[r], hi[r], low_bound[r], right=False)
        new_hi[r] = search(row_ids[r], new_lo[r], hi[r], high_bound[r], right=True)
        changed = np.nonzero((new_lo != lo) | (new_hi != hi))[0]
        if changed.size == 0:
            break
        ids = np.concatenate([changed, changed])
        t1, t2 = _window_sums(
            rows, row_ids[ids], np.concatenate([lo[changed], new_hi[changed]]),
            np.concatenate([new_lo[changed], hi[changed]]), shift[ids],
        )  # fmt: skip
        k = changed.size
        before = s2[changed].copy()
        s1[changed] -= t1[:k] + t1[k:]
        s2[changed] -= t2[:k] + t2[k:]
        lo, hi = new_lo, new_hi
        refresh = changed[(s2[changed] < 1e-8 * before) | (s2[changed] < 0)]
        if refresh.size:
            s1[refresh], s2[refresh] = _window_sums(rows, row_ids[refresh], lo[refresh], hi[refresh], shift[refresh])
        median = _group_medians(search, row_ids, lo, hi, group, n_groups)
    count, mean, std = _group_moments(hi - lo, s1, s2, group, n_groups, centre)
    return count, mean, np.where(count > 0, median, np.nan), std


@dataclass(frozen=True)
class Clipped:
    """Sigma-clipped mean, median and std (population) at the three scales."""

    mean: ScaleValues
    median: ScaleValues
    std: ScaleValues


def clipped_from_cells(cells: SortedCells, sigma: float = SIGMA, maxiters: int = MAXITERS) -> Clipped:
    """Sigma-clipped statistics (astropy's rules, see :mod:`rdmt_core.measure.clipped`) of each cell at each scale.

    Each scale is clipped on its own pixels: an amplifier's bounds come from its own median and std.
    """
    n_cell, mean_cell, m2_cell = row_moments(cells.rows, cells.n_valid)
    sp = clip_sorted(cells.rows, cells.n_valid, sigma, maxiters, moments=(n_cell, mean_cell, m2_cell))
    moments = (n_cell[SCALE_ROWS], mean_cell[SCALE_ROWS], m2_cell[SCALE_ROWS])
    both = _clip_groups(
        cells.searcher, SCALE_ROWS, cells.n_valid[SCALE_ROWS], SCALE_GROUPS, N_AMPLIFIERS + 1, moments, sigma, maxiters
    )

    def scale(i: int, cell_values: np.ndarray) -> ScaleValues:
        values = both[i].astype(np.float64)
        return ScaleValues(float(values[N_AMPLIFIERS]), values[:N_AMPLIFIERS], cell_values.astype(np.float64))

    return Clipped(mean=scale(1, sp.mean), median=scale(2, sp.median), std=scale(3, sp.std))


__all__ = [
    "Clipped",
    "SortedCells",
    "at_scales",
    "clipped_from_cells",
    "count_sorted",
    "percentiles_at_scales",
    "select_in_groups",
]
