"""Example SUPERBIAS arrays of the bias monitor, clean or with an even/odd column offset in one amplifier.

``reference_arrays`` gives every array of roman_datamodels' ``SuperbiasRefModel`` (``data``, ``err``,
``dq``) for one detector and delivery: what a delivery file is filled with
(``SuperbiasRefModel.create_fake_data(shape)`` then ``setattr``). The structure is fixed per detector
(seeded by its number): the level (11,000-17,000 DN), the amplifier offsets (sigma 250 DN), the small
even/odd column offsets (sigma 2 DN), the column offsets (sigma 4 DN), a vertical gradient and the
pixel pattern (sigma 40 DN), and the bad pixels; each delivery adds its own noise (sigma 3 DN, a
superbias being the mean of many frames).
"""

from __future__ import annotations

import numpy as np

from ...geometry import N_AMPLIFIERS

REFERENCE_BORDER = 4  # pixels: the reference-pixel border of a WFI frame, flagged REFERENCE_PIXEL
ANOMALY_AMPLIFIER = 5  # 1-based
ANOMALY_OFFSET = 60.0  # DN added to the odd columns of that amplifier


def _detector_number(detector: str) -> int:
    return int(detector[3:])


def reference_arrays(detector: str, side: int, delivery_seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` (DN, float32), ``err`` (DN, float32) and ``dq`` (uint32) of a synthetic superbias.

    With ``anomaly``, the odd columns of amplifier 5 are 60 DN above its even columns.
    """
    from roman_datamodels import dqflags

    number = _detector_number(detector)
    fixed = np.random.default_rng(2000 + number)  # the detector's structure: the same in every delivery
    noise = np.random.default_rng([delivery_seed, number, 7])
    strip = side // N_AMPLIFIERS
    level = fixed.uniform(11000.0, 17000.0)
    amp_offsets = fixed.normal(0.0, 250.0, N_AMPLIFIERS)
    even_odd = fixed.normal(0.0, 2.0, N_AMPLIFIERS)  # added to the odd columns
    columns = np.repeat(amp_offsets, strip) + fixed.normal(0.0, 4.0, side)
    columns[1::2] += np.repeat(even_odd, strip)[1::2]
    if anomaly:
        a = ANOMALY_AMPLIFIER - 1
        columns[a * strip + 1 : (a + 1) * strip : 2] += ANOMALY_OFFSET
    gradient = 30.0 * (np.arange(side) / side - 0.5)
    data = fixed.standard_normal((side, side), dtype=np.float32)
    data *= np.float32(40.0)
    data += noise.standard_normal((side, side), dtype=np.float32) * np.float32(3.0)
    data += (level + gradient)[:, None].astype(np.float32)
    data += columns[None, :].astype(np.float32)

    dq = np.zeros((side, side), dtype=np.uint32)
    b = REFERENCE_BORDER
    dq[:b, :] = dq[-b:, :] = dq[:, :b] = dq[:, -b:] = dqflags.pixel.REFERENCE_PIXEL
    n_bad = max(1, side * side // 10000)  # 0.01 %: unreliable bias, not to be used
    bad = fixed.permutation(side * side)[:n_bad]
    flat, dq_flat = data.reshape(-1), dq.reshape(-1)
    flat[bad[: n_bad // 2]] = np.float32(0.0)
    flat[bad[n_bad // 2 :]] = np.nan
    dq_flat[bad] |= dqflags.pixel.DO_NOT_USE | dqflags.pixel.UNRELIABLE_BIAS
    err = np.abs(noise.normal(3.0, 0.1, (side, side))).astype(np.float32)
    return {"data": data, "err": err, "dq": dq}


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` of synthetic WFI01 (delivery ``seed``); with ``anomaly`` the even/odd offset."""
    arrays = reference_arrays("WFI01", side, seed, anomaly)
    return {"data": arrays["data"], "dq": arrays["dq"]}
