"""DQ flags of Level-2 monitors: flag names to bits, flagged pixels, data with them set to NaN.

Flags are named as in ``roman_datamodels.dqflags.pixel`` (``DO_NOT_USE``,
``SATURATED``...); monitors take them in a ``mask_dq_flags`` option validated by
:func:`known_dq_flags`.
"""

from __future__ import annotations

import numpy as np

NO_USABLE_PIXEL = "no usable pixel (all non-finite or flagged)"  # status of an image with nothing to measure


def known_dq_flags(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if each is a DQ flag of ``roman_datamodels.dqflags.pixel``; ValueError naming the unknown ones."""
    from roman_datamodels import dqflags  # late: validating a configuration must not load it at import

    unknown = [n for n in names if n not in dqflags.pixel.__members__]
    if unknown:
        raise ValueError(f"unknown DQ flag(s) {', '.join(unknown)}; see roman_datamodels.dqflags.pixel")
    return tuple(names)


def dq_bits(flags: tuple[str, ...]) -> int:
    """The DQ bit mask of the named ``roman_datamodels.dqflags.pixel`` flags."""
    from roman_datamodels import dqflags

    bits = 0
    for name in flags:
        bits |= int(dqflags.pixel[name])
    return bits


def flagged_pixels(dq: np.ndarray, flags: tuple[str, ...]) -> np.ndarray:
    """Flat indices of the pixels whose DQ has any of ``flags`` (only non-zero DQ values are examined)."""
    bits = dq_bits(flags)
    # flatnonzero of a boolean array is far faster than of an integer one
    nonzero = np.flatnonzero(dq.astype(bool)) if bits else np.empty(0, dtype=np.intp)
    return nonzero[(dq.ravel()[nonzero] & bits) != 0]


def masked_data(data: np.ndarray, dq: np.ndarray, flags: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """``data`` with NaN where ``dq`` has any of ``flags`` (a copy only when needed), and how many were set."""
    flagged = flagged_pixels(dq, flags)
    if flagged.size == 0:
        return data, 0
    out = np.array(data, copy=True)
    out.ravel()[flagged] = np.nan
    return out, int(flagged.size)
