"""Example READNOISE arrays of the read-noise monitor, clean or with one noisy amplifier.

Seeded numpy data shaped like a WFI read-noise reference file (CDS-like noise in DN):

* per detector (seeded by its number, the same in every delivery): a level drawn from 5-7 DN,
  amplifier levels within a few percent of it (sd 2 %, at most 5 %), a 5 % pixel-to-pixel spread,
  a tail of noisy (random-telegraph-like) pixels at 2.5-6 times their amplifier level on 0.3 % of
  the pixels, and NaN on 0.01 % (pixels without a measurement);
* per delivery (``delivery_seed``): a 2 % estimation scatter on every pixel;
* with ``anomaly``: amplifier :data:`NOISY_AMPLIFIER` at :data:`NOISY_SCALE` times its read noise;
* the reference pixels, a :data:`REFERENCE_BORDER`-pixel border on every edge at any size, hold 0
  (no read noise measured for them in a read-noise file). 0 (rather than NaN, which the statistics
  skip anyway) is the worst case for a monitor that did not leave them out: a finite value that
  pulls down the median, clipped mean and std of the edge cells and of amplifiers 1 and 32.
"""

from __future__ import annotations

import numpy as np

from ...geometry import N_AMPLIFIERS

NOISY_AMPLIFIER = 12  # 1-based, as in the reports
NOISY_SCALE = 1.5
REFERENCE_BORDER = 4  # pixels: the reference-pixel border of a WFI frame
REFERENCE_VALUE = 0.0  # DN: what the examples hold there


def _detector_number(detector: str) -> int:
    return int(detector[3:])


def reference_arrays(detector: str, side: int, delivery_seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` (float32, DN) of a synthetic READNOISE file of ``detector`` (``WFI01``..``WFI18``), ``side`` x ``side``.

    The keys are ReadnoiseRefModel's array attributes, so ``setattr(model, key, value)`` fills a model made by
    ``ReadnoiseRefModel.create_fake_data(shape=(side, side))``.
    """
    number = _detector_number(detector)
    fixed = np.random.default_rng(3100 + number)  # the detector's own structure: the same in every delivery
    noise = np.random.default_rng([delivery_seed, number, 31])  # differs between deliveries
    n = side * side
    level = fixed.uniform(5.0, 7.0)
    amp_levels = level * (1.0 + np.clip(fixed.normal(0.0, 0.02, N_AMPLIFIERS), -0.05, 0.05))
    data = fixed.standard_normal((side, side), dtype=np.float32)
    data *= np.float32(0.05)
    data += np.float32(1.0)
    data *= np.repeat(amp_levels.astype(np.float32), side // N_AMPLIFIERS)[None, :]
    flat = data.reshape(-1)
    positions = fixed.permutation(n)[: int(0.0031 * n) + 2]
    n_noisy = int(0.003 * n) + 1
    noisy, bad = positions[:n_noisy], positions[n_noisy:]
    flat[noisy] *= fixed.uniform(2.5, 6.0, noisy.size).astype(np.float32)
    scatter = noise.standard_normal((side, side), dtype=np.float32)
    scatter *= np.float32(0.02)
    scatter += np.float32(1.0)
    data *= scatter
    flat[bad] = np.nan
    if anomaly:
        cell = side // N_AMPLIFIERS
        data[:, (NOISY_AMPLIFIER - 1) * cell : NOISY_AMPLIFIER * cell] *= np.float32(NOISY_SCALE)
    b = REFERENCE_BORDER
    data[:b, :] = data[-b:, :] = data[:, :b] = data[:, -b:] = REFERENCE_VALUE
    return {"data": data}


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """The monitor's arrays for WFI01 (delivery ``seed``); with ``anomaly`` amplifier 12 at 1.5 times its noise."""
    return reference_arrays("WFI01", side, seed, anomaly)
