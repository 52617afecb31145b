"""Exact order statistics and a sigma-clipped spread of *groups* of sorted rows, vectorised over the groups.

``rdmt_core.measure.clipped`` clips each sorted row, or the union of all rows; the reference-file
monitors need unions of chosen rows (a super-pixel = its two column-parity rows, an amplifier = 32 or
64 rows, the detector = all), several at once, within a one-thread budget of ~0.3 s for a
4096 x 4096 frame. This module adds that, reusing the row search and window sums of
``measure.clipped`` and the ordered-integer image of floats of ``measure.blockstats``. (It belongs in
``measure/``; it lives here because this package's author may not edit ``measure/``. The flat monitor
imports it from here.)

A *grouping* is three arrays: ``row_ids`` (the physical row of each virtual row), ``group`` (its group)
and ``n_groups``. A physical row may appear in several groups (a super-pixel, its amplifier and the
detector), each appearance with its own window ``[lo, hi)`` of kept values.

Order statistics: the ``k``-th smallest value of the union of a group's windows is searched for over
the ordered integer image of the floats (interpolation steps alternating with bisection), counting with
a vectorised binary search in every row; the bracket starts at the rows' own ``k/n`` quantiles, which
bound the union's (for a group of one row it is exact at once). When every bracket holds at most
``FINISH`` values they are gathered and ranked. Exact, no copy of the union.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...measure.blockstats import from_sortable, sortable
from ...measure.clipped import _search, _window_sums

FINISH = 4096  # values left in a group's bracket when the search gathers them instead of narrowing further


@dataclass(frozen=True)
class Grouping:
    """Virtual rows: physical row, group (0..n_groups-1) of each."""

    row_ids: np.ndarray
    group: np.ndarray
    n_groups: int

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


def _select_pair(
    rows: np.ndarray, g: Grouping, lo: np.ndarray, hi: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``rank``-th and ``rank+1``-th smallest (0-based) value of each group's union of windows.

    NaN where the group has no value at that rank (the second is the first when ``rank+1`` is past the end).
    """
    n_r = hi - lo
    total = np.bincount(g.group, weights=n_r, minlength=g.n_groups).astype(np.int64)
    valid = (total > 0) & (rank < total) & (rank >= 0)
    tot = np.maximum(total, 1)[g.group]
    rk = np.where(valid, rank, 0)[g.group]
    last = rows.shape[1] - 1
    # bracket: each row's own rank quantile bounds the union's (see the module docstring)
    up_idx = lo + ((rk + 1) * n_r + tot - 1) // tot - 1
    up = np.where((n_r > 0) & (up_idx >= lo), rows[g.row_ids, np.clip(up_idx, 0, last)], -np.inf)
    low_idx = lo + (rk * n_r) // tot
    down = np.where((n_r > 0) & (low_idx < hi), rows[g.row_ids, np.clip(low_idx, 0, last)], np.inf)
    v_hi = np.full(g.n_groups, -np.inf, dtype=rows.dtype)
    v_lo = np.full(g.n_groups, np.inf, dtype=rows.dtype)
    np.maximum.at(v_hi, g.group, up.astype(rows.dtype))
    np.minimum.at(v_lo, g.group, down.astype(rows.dtype))
    v_lo = np.where(valid, v_lo, 0).astype(rows.dtype)
    v_hi = np.where(valid, v_hi, 0).astype(rows.dtype)
    k_lo, k_hi = sortable(v_lo).astype(np.int64), sortable(v_hi).astype(np.int64)
    key_type = sortable(v_lo[:1]).dtype
    target = np.where(valid, rank, 0) + 1

    def count_at_most(keys: np.ndarray, sub: np.ndarray) -> np.ndarray:
        """Per group, how many values of the windows of virtual rows ``sub`` are <= the float of ``keys``."""
        grp = g.group[sub]
        value = from_sortable(keys.astype(key_type), rows.dtype)[grp]
        count = _search(rows, g.row_ids[sub], lo[sub], hi[sub], value, right=True) - lo[sub]
        return np.bincount(grp, weights=count, minlength=g.n_groups)

    # Safeguarded interpolation search over the keys: the counts below and at the bracket's ends give
    # a guess by interpolation (the values are dense and smooth near a quantile), alternating with
    # bisection so the worst case stays logarithmic. ``below``: values < float(k_lo); ``upto``: <= float(k_hi).
    active = k_lo < k_hi
    live = np.nonzero(active[g.group])[0]  # a group of one row is bracketed exactly: nothing to search
    upto = count_at_most(k_hi, live)
    below = count_at_most(np.maximum(k_lo - 1, 0), live)
    step = 0
    while active.any():
        sub = np.nonzero(active[g.group])[0]
        if step % 2 == 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = (target - below) / np.maximum(upto - below, 1)
            guess = k_lo + np.floor(np.clip(frac, 0.0, 1.0) * (k_hi - k_lo)).astype(np.int64)
            middle = np.clip(guess, k_lo, np.maximum(k_hi - 1, k_lo))
        else:
            middle = k_lo + (k_hi - k_lo) // 2
        count = count_at_most(middle, sub)
        enough = count >= target
        k_hi = np.where(active & enough, middle, k_hi)
        upto = np.where(active & enough, count, upto)
        k_lo = np.where(active & ~enough, middle + 1, k_lo)
        below = np.where(active & ~enough, count, below)
        active = k_lo < k_hi
        step += 1
        few = active & (upto - below <= FINISH)
        if few.any() and np.array_equal(few, active):  # every bracket holds few values: gather and pick
            k_lo, k_hi = _finish(rows, g, lo, hi, few, k_lo, k_hi, target, key_type)
            active &= ~few
    k_lo = k_lo.astype(key_type)
    first = from_sortable(k_lo, rows.dtype)
    # the next order statistic: the same value if it repeats, else the smallest value above it
    position = _search(rows, g.row_ids, lo, hi, first[g.group], right=True)
    at_or_below = np.bincount(g.group, weights=position - lo, minlength=g.n_groups)
    above = np.where(position < hi, rows[g.row_ids, np.minimum(position, last)], np.inf).astype(np.float64)
    smallest_above = np.full(g.n_groups, np.inf)
    np.minimum.at(smallest_above, g.group, above)
    second = np.where(at_or_below >= target + 1, first.astype(np.float64), smallest_above)
    second = np.where(np.isfinite(second), second, first.astype(np.float64))
    nan = np.full(g.n_groups, np.nan)
    return np.where(valid, first.astype(np.float64), nan), np.where(valid, second, nan)


def _finish(
    rows: np.ndarray,
    g: Grouping,
    lo: np.ndarray,
    hi: np.ndarray,
    few: np.ndarray,
    k_lo: np.ndarray,
    k_hi: np.ndarray,
    target: np.ndarray,
    key_type: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """Close the brackets of groups ``few``: their ``target``-th smallest value (1-based), from the bracket.

    The values below the bracket are counted here, exactly (-0.0 and +0.0 have two keys but compare equal,
    so a count at the key below the bracket can include the bracket's zeros).
    """
    sub = np.nonzero(few[g.group])[0]
    grp = g.group[sub]
    ids = g.row_ids[sub]
    low = from_sortable(k_lo.astype(key_type), rows.dtype)[grp]
    high = from_sortable(k_hi.astype(key_type), rows.dtype)[grp]
    start = _search(rows, ids, lo[sub], hi[sub], low, right=False)
    stop = _search(rows, ids, start, hi[sub], high, right=True)
    lengths = stop - start
    segment = np.repeat(np.arange(sub.size), lengths)
    offsets = np.cumsum(lengths) - lengths
    flat = ids[segment] * rows.shape[1] + start[segment] + (np.arange(int(lengths.sum())) - offsets[segment])
    values = rows.reshape(-1)[flat]
    owner = grp[segment]
    ordered = values[np.lexsort((values, owner))]
    per_group = np.bincount(owner, minlength=len(few))
    first = np.cumsum(per_group) - per_group
    closing = np.nonzero(few)[0]
    below = np.bincount(grp, weights=start - lo[sub], minlength=len(few)).astype(np.int64)
    answer = ordered[first[closing] + target[closing] - below[closing] - 1]
    key = sortable(answer).astype(np.int64)
    k_lo, k_hi = k_lo.copy(), k_hi.copy()
    k_lo[closing] = key
    k_hi[closing] = key
    return k_lo, k_hi


def windows_of(n_valid: np.ndarray, g: Grouping) -> tuple[np.ndarray, np.ndarray]:
    """The full windows ``[0, n_valid)`` of the virtual rows of ``g``."""
    hi = np.asarray(n_valid, dtype=np.int64)[g.row_ids]
    return np.zeros_like(hi), hi


def percentiles(rows: np.ndarray, n_valid: np.ndarray, g: Grouping, qs: tuple[float, ...]) -> dict[float, np.ndarray]:
    """Exact percentiles ``qs`` (numpy's ``linear`` method) of each group's finite values.

    One bisection for all ``qs`` and groups together; NaN for an empty group.
    """
    lo, hi = windows_of(n_valid, g)
    n = np.bincount(g.group, weights=hi - lo, minlength=g.n_groups).astype(np.int64)
    everything, slices = Grouping.concat(*([g] * len(qs)))
    ranks, fracs = [], []
    for q in qs:
        position = (q / 100.0) * np.maximum(n - 1, 0)
        below = np.floor(position).astype(np.int64)
        ranks.append(below)
        fracs.append(position - below)
    lo_all, hi_all = np.tile(lo, len(qs)), np.tile(hi, len(qs))
    first, second = _select_pair(rows, everything, lo_all, hi_all, np.concatenate(ranks))
    out = {}
    for q, part, frac in zip(qs, slices, fracs, strict=True):
        below, above = first[part], second[part]
        lerp = below + (above - below) * frac
        out[q] = np.where(frac >= 0.5, above - (above - below) * (1 - frac), lerp)  # numpy's form
    return out


def row_sums(rows: np.ndarray, n_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 sums of ``x`` and ``x**2`` of each sorted row's finite values (its first ``n_valid``)."""
    full = n_valid == rows.shape[1]
    s1 = np.zeros(rows.shape[0])
    s2 = np.zeros(rows.shape[0])
    idx = np.nonzero(full)[0]
    if idx.size == rows.shape[0]:
        s1 = rows.sum(axis=1, dtype=np.float64)
        s2 = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    elif idx.size:
        s1[idx] = rows[idx].sum(axis=1, dtype=np.float64)
        s2[idx] = np.einsum("ij,ij->i", rows[idx], rows[idx], dtype=np.float64)
    for r in np.nonzero(~full)[0]:
        part = rows[r, : n_valid[r]].astype(np.float64)
        s1[r], s2[r] = part.sum(), part @ part
    return s1, s2


@dataclass(frozen=True)
class Clipped:
    """Sigma-clipped spread of each group (NaN where empty)."""

    count: np.ndarray  # values kept
    std: np.ndarray  # population std (ddof=0) of the kept values
    mean: np.ndarray
    iterations: int


def clipped_std(
    rows: np.ndarray,
    n_valid: np.ndarray,
    sums: tuple[np.ndarray, np.ndarray],
    g: Grouping,
    centre: np.ndarray,
    sigma: float = 3.0,
    maxiters: int = 5,
) -> Clipped:
    """Iterative sigma clipping about a fixed centre (each group's median), vectorised over groups.

    Kept: ``|x - centre| <= sigma * std`` where ``std`` is the population standard deviation of the
    values kept by the previous iteration (all finite values at first); repeated until no group's
    kept set changes or ``maxiters`` clipping iterations. In a sorted row the kept values are one
    window; the window ends move by binary search and the sums lose only the trimmed values.
    """
    lo, hi = windows_of(n_valid, g)
    shift = np.nan_to_num(centre)[g.group]
    s1_raw, s2_raw = sums
    n = (hi - lo).astype(np.float64)
    s1 = s1_raw[g.row_ids] - n * shift
    s2 = s2_raw[g.row_ids] - 2.0 * shift * s1_raw[g.row_ids] + n * shift * shift

    def moments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count = np.bincount(g.group, weights=hi - lo, minlength=g.n_groups)
        g1 = np.bincount(g.group, weights=s1, minlength=g.n_groups)
        g2 = np.bincount(g.group, weights=s2, minlength=g.n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            offset = g1 / count
            std = np.sqrt(np.maximum(g2 / count - offset * offset, 0.0))
        return count, std, np.nan_to_num(centre) + offset

    iterations = 0
    for _ in range(maxiters):
        count, std, _mean = moments()
        low_bound = (centre - sigma * std).astype(np.float64)[g.group]
        high_bound = (centre + sigma * std).astype(np.float64)[g.group]
        live = hi > lo
        new_lo, new_hi = lo.copy(), hi.copy()
        r = np.nonzero(live)[0]
        # float64 bounds: float32 values compare with them exactly
        new_lo[r] = _search(rows, g.row_ids[r], lo[r], hi[r], low_bound[r], right=False)
        new_hi[r] = _search(rows, g.row_ids[r], new_lo[r], hi[r], high_bound[r], right=True)
        changed = np.nonzero((new_lo != lo) | (new_hi != hi))[0]
        iterations += 1
        if changed.size == 0:
            break
        ids = np.concatenate([changed, changed])
        starts = np.concatenate([lo[changed], new_hi[changed]])
        stops = np.concatenate([new_lo[changed], hi[changed]])
        t1, t2 = _window_sums(rows, g.row_ids[ids], starts, stops, shift[ids])
        k = changed.size
        s1[changed] -= t1[:k] + t1[k:]
        s2[changed] -= t2[:k] + t2[k:]
        lo, hi = new_lo, new_hi
    count, std, mean = moments()
    empty = count == 0
    return Clipped(count, np.where(empty, np.nan, std), np.where(empty, np.nan, mean), iterations)
