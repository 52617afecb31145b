"""DQ flags of Level-2 monitors: flag names to bits, flagged pixels, data with them set to NaN.

Flags are named as in ``roman_datamodels.dqflags.pixel`` (``DO_NOT_USE``,
``SATURATED``...); monitors take them in a ``mask_dq_flags`` option validated by
:func:`known_dq_flags`.
"""

from __future__ import annotations

import functools
import importlib.util
from enum import Enum

import numpy as np

NO_USABLE_PIXEL = "no usable pixel (all non-finite or flagged)"  # status of an image with nothing to measure


@functools.cache
def pixel_flags() -> type[Enum]:
    """``roman_datamodels.dqflags.pixel``, loaded without importing the ``roman_datamodels`` package.

    ``roman_datamodels.dqflags`` is a module of its own (``enum`` and numpy only), but importing it runs the
    package's ``__init__`` (asdf, astropy, the schemas: 1-2 s), which every command that validates a
    configuration (``rdmt sql``, a service's start) would pay for a list of flag names. So the module's file
    is loaded alone, from the installed package; a test checks it is the same enum as the package's.
    """
    package = importlib.util.find_spec("roman_datamodels")  # finds the package without importing it
    if package is None or not package.submodule_search_locations:
        raise ImportError("roman_datamodels is not installed (pip install roman_datamodels)")
    path = f"{package.submodule_search_locations[0]}/dqflags.py"
    spec = importlib.util.spec_from_file_location("rdmt_core.measure._roman_dqflags", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pixel


def known_dq_flags(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if each is a DQ flag of ``roman_datamodels.dqflags.pixel``; ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in pixel_flags().__members__]
    if unknown:
        raise ValueError(f"unknown DQ flag(s) {', '.join(unknown)}; see roman_datamodels.dqflags.pixel")
    return tuple(names)


def dq_bits(flags: tuple[str, ...]) -> int:
    """The DQ bit mask of the named ``roman_datamodels.dqflags.pixel`` flags."""
    bits = 0
    for name in flags:
        bits |= int(pixel_flags()[name])
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
