"""Example SATURATION arrays of the saturation monitor, clean or with a region of lost dynamic range.

Seeded numpy data shaped like a WFI saturation reference file (DN):

* per detector (seeded by its number, the same in every delivery): a level drawn from
  57,000-63,000 DN, amplifier levels within a few percent of it (sd 1 %, at most 3 %), a 2 %
  pixel-to-pixel spread (capped at 65,535 DN, the ADC's largest value), low-full-well pixels at
  0.3-0.7 of the level on 0.01 %, pixels flagged NO_SAT_CHECK (level 0) on 0.05 % and pixels
  flagged DO_NOT_USE (NaN) on 0.01 %;
* per delivery (``delivery_seed``): a 0.3 % estimation scatter on every pixel;
* with ``anomaly``: a square of side/8, a quarter of the way into the frame (whole super-pixels at
  any size), whose level dropped to :data:`DROP` of its value;
* the reference pixels, a :data:`REFERENCE_BORDER`-pixel border on every edge at any size: level 0
  (they do not saturate like light-sensitive pixels; a finite value that a monitor which did not
  leave them out would count as low saturation) and flagged REFERENCE_PIXEL.
"""

from __future__ import annotations

import numpy as np

from ...geometry import N_AMPLIFIERS

DROP = 0.5
ADC_MAX = 65535.0
REFERENCE_BORDER = 4  # pixels: the reference-pixel border of a WFI frame, flagged REFERENCE_PIXEL


def _detector_number(detector: str) -> int:
    return int(detector[3:])


def reference_arrays(detector: str, side: int, delivery_seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` (float32, DN) and ``dq`` (uint32) of a synthetic SATURATION file of ``detector``, ``side`` x ``side``.

    The keys are SaturationRefModel's array attributes, so ``setattr(model, key, value)`` fills a model made by
    ``SaturationRefModel.create_fake_data(shape=(side, side))``.
    """
    from roman_datamodels import dqflags

    number = _detector_number(detector)
    fixed = np.random.default_rng(3300 + number)  # the detector's own structure: the same in every delivery
    noise = np.random.default_rng([delivery_seed, number, 33])  # differs between deliveries
    n = side * side
    level = fixed.uniform(57000.0, 63000.0)
    amp_levels = level * (1.0 + np.clip(fixed.normal(0.0, 0.01, N_AMPLIFIERS), -0.03, 0.03))
    data = fixed.standard_normal((side, side), dtype=np.float32)
    data *= np.float32(0.02)
    data += np.float32(1.0)
    data *= np.repeat(amp_levels.astype(np.float32), side // N_AMPLIFIERS)[None, :]
    scatter = noise.standard_normal((side, side), dtype=np.float32)
    scatter *= np.float32(0.003)
    scatter += np.float32(1.0)
    data *= scatter
    np.minimum(data, np.float32(ADC_MAX), out=data)
    dq = np.zeros((side, side), dtype=np.uint32)
    positions = fixed.permutation(n)[: int(0.0007 * n) + 3]
    n_low, n_unchecked = int(0.0001 * n) + 1, int(0.0005 * n) + 1
    low = positions[:n_low]
    unchecked = positions[n_low : n_low + n_unchecked]
    bad = positions[n_low + n_unchecked :]
    flat, dq_flat = data.reshape(-1), dq.reshape(-1)
    flat[low] *= fixed.uniform(0.3, 0.7, low.size).astype(np.float32)
    flat[unchecked] = 0.0
    dq_flat[unchecked] |= np.uint32(dqflags.pixel.NO_SAT_CHECK)
    flat[bad] = np.nan
    dq_flat[bad] |= np.uint32(dqflags.pixel.DO_NOT_USE)
    if anomaly:
        start, size = side // 4, side // 8
        data[start : start + size, start : start + size] *= np.float32(DROP)
    b = REFERENCE_BORDER
    data[:b, :] = data[-b:, :] = data[:, :b] = data[:, -b:] = 0.0
    dq[:b, :] = dq[-b:, :] = dq[:, :b] = dq[:, -b:] = dqflags.pixel.REFERENCE_PIXEL  # that flag alone
    return {"data": data, "dq": dq}


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """The monitor's arrays for WFI01 (delivery ``seed``); with ``anomaly`` a side/8 square at half its level."""
    return reference_arrays("WFI01", side, seed, anomaly)
