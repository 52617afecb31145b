"""Example FLAT arrays of the flat monitor, clean or with a new low-QE patch.

``reference_arrays`` gives every array of roman_datamodels' ``FlatRefModel`` (``data``, ``err``,
``dq``) for one detector, optical element and delivery: what a delivery file is filled with
(``FlatRefModel.create_fake_data(shape)`` then ``setattr``). Fixed per detector (seeded by its
number): a smooth large-scale QE pattern (a few per cent), the pixel-to-pixel response (sigma 2 %),
the low-QE pixels (0.02 %, 0.3-0.7, flagged LOW_QE) and the dead pixels (0.01 %, DO_NOT_USE and
NO_FLAT_FIELD, 0 or NaN); the pattern and the spread grow mildly towards the blue filters. Each
delivery adds its own noise (sigma 0.3 %) and is normalised to a median of 1. The 4-pixel reference
border is 1.0, flagged REFERENCE_PIXEL.
"""

from __future__ import annotations

import numpy as np

REFERENCE_BORDER = 4  # pixels
PATCH_SIDE = 100  # pixels: the low-QE patch of the anomaly
PATCH_LEVEL = 0.6  # its response, relative to the rest
# how much stronger (bluer) or weaker (redder) the large-scale pattern and pixel spread are, per element
ELEMENT_FACTOR = {
    "F062": 1.3,
    "F087": 1.2,
    "F106": 1.1,
    "F129": 1.05,
    "F146": 1.0,
    "F158": 1.0,
    "F184": 0.95,
    "F213": 0.9,
}


def _detector_number(detector: str) -> int:
    return int(detector[3:])


def reference_arrays(
    detector: str, side: int, delivery_seed: int, anomaly: bool = False, optical_element: str = "F158"
) -> dict[str, np.ndarray]:
    """``data`` (float32), ``err`` (float32) and ``dq`` (uint32) of a synthetic flat of ``optical_element``.

    With ``anomaly``, a 100x100 patch (``min(100, side // 2)``) starting at the frame's centre
    responds at 0.6 of its flat, unflagged (a new low-QE spot).
    """
    from roman_datamodels import dqflags

    number = _detector_number(detector)
    fixed = np.random.default_rng(4000 + number)  # the detector's response: the same in every delivery
    noise = np.random.default_rng([delivery_seed, number, 13])
    factor = ELEMENT_FACTOR.get(optical_element, 1.0)
    coefficients = fixed.normal(0.0, 0.015, 4) * factor
    u = np.linspace(-1.0, 1.0, side, dtype=np.float32)
    pattern = (
        1.0
        + coefficients[0] * u[None, :]
        + coefficients[1] * u[:, None]
        + coefficients[2] * (u[None, :] ** 2 + u[:, None] ** 2 - 2.0 / 3.0)
        + coefficients[3] * u[None, :] * u[:, None]
    ).astype(np.float32)
    data = fixed.standard_normal((side, side), dtype=np.float32)
    data *= np.float32(0.02 * factor)
    data += noise.standard_normal((side, side), dtype=np.float32) * np.float32(0.003)
    data += np.float32(1.0)
    data *= pattern

    dq = np.zeros((side, side), dtype=np.uint32)
    n = side * side
    n_low, n_dead = max(1, n // 5000), max(1, n // 10000)
    positions = fixed.permutation(n)[: n_low + n_dead]
    low, dead = positions[:n_low], positions[n_low:]
    flat, dq_flat = data.reshape(-1), dq.reshape(-1)
    flat[low] *= fixed.uniform(0.3, 0.7, n_low).astype(np.float32)
    dq_flat[low] |= dqflags.pixel.LOW_QE
    flat[dead[: n_dead // 2]] = np.float32(0.0)
    flat[dead[n_dead // 2 :]] = np.nan
    dq_flat[dead] |= dqflags.pixel.DO_NOT_USE | dqflags.pixel.NO_FLAT_FIELD
    if anomaly:
        start, extent = side // 2, min(PATCH_SIDE, side // 2)
        data[start : start + extent, start : start + extent] *= np.float32(PATCH_LEVEL)
    b = REFERENCE_BORDER
    data /= np.float32(np.nanmedian(data[b : side - b : 3, b : side - b : 3]))
    data[:b, :] = data[-b:, :] = data[:, :b] = data[:, -b:] = 1.0
    dq[:b, :] |= dqflags.pixel.REFERENCE_PIXEL
    dq[-b:, :] |= dqflags.pixel.REFERENCE_PIXEL
    dq[:, :b] |= dqflags.pixel.REFERENCE_PIXEL
    dq[:, -b:] |= dqflags.pixel.REFERENCE_PIXEL
    err = np.abs(noise.normal(0.003, 0.0003, (side, side))).astype(np.float32)
    return {"data": data, "err": err, "dq": dq}


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` of a synthetic F158 flat of WFI01 (delivery ``seed``); with ``anomaly`` the patch."""
    arrays = reference_arrays("WFI01", side, seed, anomaly)
    return {"data": arrays["data"], "dq": arrays["dq"]}
