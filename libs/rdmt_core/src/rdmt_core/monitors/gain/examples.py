"""Example GAIN arrays of the gain monitor, clean or with one amplifier whose gain jumped.

Seeded numpy data shaped like a WFI gain reference file (e/DN):

* per detector (seeded by its number, the same in every delivery): a level drawn from 1.8-2.0 e/DN,
  amplifier levels within a few percent of it (sd 1 %, at most 2.5 %), a 1 % pixel-to-pixel
  spread, NaN on 0.01 % of the pixels (no measurement) and 0 on 0.002 % (a failed fit);
* per delivery (``delivery_seed``): a 0.5 % estimation scatter on every pixel;
* with ``anomaly``: amplifier :data:`JUMP_AMPLIFIER`'s gain :data:`JUMP` times higher;
* the reference pixels, a :data:`REFERENCE_BORDER`-pixel border on every edge at any size, hold 0:
  they see no light, so a gain file has no measured gain there. 0 (rather than NaN) is the worst
  case for a monitor that did not leave them out: a finite value that drags ``gain_p1`` of the edge
  cells and of amplifiers 1 and 32 to 0 and counts as a bad gain (65,408 pixels at 4096).
"""

from __future__ import annotations

import numpy as np

from ...geometry import N_AMPLIFIERS

JUMP_AMPLIFIER = 20  # 1-based, as in the reports
JUMP = 1.10
REFERENCE_BORDER = 4  # pixels: the reference-pixel border of a WFI frame
REFERENCE_VALUE = 0.0  # e/DN: what the examples hold there


def _detector_number(detector: str) -> int:
    return int(detector[3:])


def reference_arrays(detector: str, side: int, delivery_seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` (float32, e/DN) of a synthetic GAIN file of ``detector`` (``WFI01``..``WFI18``), ``side`` x ``side``.

    The keys are GainRefModel's array attributes, so ``setattr(model, key, value)`` fills a model made by
    ``GainRefModel.create_fake_data(shape=(side, side))``.
    """
    number = _detector_number(detector)
    fixed = np.random.default_rng(3200 + number)  # the detector's own structure: the same in every delivery
    noise = np.random.default_rng([delivery_seed, number, 32])  # differs between deliveries
    n = side * side
    level = fixed.uniform(1.8, 2.0)
    amp_levels = level * (1.0 + np.clip(fixed.normal(0.0, 0.01, N_AMPLIFIERS), -0.025, 0.025))
    data = fixed.standard_normal((side, side), dtype=np.float32)
    data *= np.float32(0.01)
    data += np.float32(1.0)
    data *= np.repeat(amp_levels.astype(np.float32), side // N_AMPLIFIERS)[None, :]
    scatter = noise.standard_normal((side, side), dtype=np.float32)
    scatter *= np.float32(0.005)
    scatter += np.float32(1.0)
    data *= scatter
    positions = fixed.permutation(n)[: int(0.00012 * n) + 2]
    n_nan = int(0.0001 * n) + 1
    flat = data.reshape(-1)
    flat[positions[:n_nan]] = np.nan
    flat[positions[n_nan:]] = 0.0
    if anomaly:
        cell = side // N_AMPLIFIERS
        data[:, (JUMP_AMPLIFIER - 1) * cell : JUMP_AMPLIFIER * cell] *= np.float32(JUMP)
    b = REFERENCE_BORDER
    data[:b, :] = data[-b:, :] = data[:, :b] = data[:, -b:] = REFERENCE_VALUE
    return {"data": data}


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """The monitor's arrays for WFI01 (delivery ``seed``); with ``anomaly`` amplifier 20's gain 10 % higher."""
    return reference_arrays("WFI01", side, seed, anomaly)
