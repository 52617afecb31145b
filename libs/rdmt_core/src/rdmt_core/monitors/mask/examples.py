"""Example MASK arrays of the mask monitor, clean or with a new cluster of dead pixels.

``reference_arrays`` gives every array of roman_datamodels' ``MaskRefModel`` (``dq``) for one detector
and delivery: what a delivery file is filled with (``MaskRefModel.create_fake_data(shape)`` then
``setattr``). Fixed per detector (seeded by its number): the positions of its dead (0.03 % of the
science pixels, also DO_NOT_USE), hot (0.05 %, DO_NOT_USE), warm (0.2 %), low-QE (0.05 %,
UNRELIABLE_FLAT), telegraph (0.08 %), non-linear (0.02 %, NO_LIN_CORR) and other bad pixels
(0.01 %, DO_NOT_USE), about 0.44 % in all, and the 4-pixel reference border (REFERENCE_PIXEL). Each
delivery finds its own subset of the intermittent classes: 95 % of the warm and 80 % of the
telegraph pixels.
"""

from __future__ import annotations

import numpy as np

REFERENCE_BORDER = 4  # pixels: the reference-pixel border of a WFI frame
CLUSTER_SIDE = 96  # pixels: fills whole super-pixels at 512, most of one at 4096
# (flags, fraction of the science pixels, fraction found in each delivery)
CLASSES = (
    (("DEAD", "DO_NOT_USE"), 3e-4, 1.0),
    (("HOT", "DO_NOT_USE"), 5e-4, 1.0),
    (("WARM",), 2e-3, 0.95),
    (("LOW_QE", "UNRELIABLE_FLAT"), 5e-4, 1.0),
    (("TELEGRAPH",), 8e-4, 0.8),
    (("NONLINEAR", "NO_LIN_CORR"), 2e-4, 1.0),
    (("OTHER_BAD_PIXEL", "DO_NOT_USE"), 1e-4, 1.0),
)


def _detector_number(detector: str) -> int:
    return int(detector[3:])


def reference_arrays(detector: str, side: int, delivery_seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``dq`` (uint32) of a synthetic bad-pixel mask; with ``anomaly`` a new 96x96 DEAD cluster.

    The cluster starts a quarter of the way into the frame (side ``min(96, side // 2)``), flagged
    DEAD and DO_NOT_USE.
    """
    from roman_datamodels import dqflags

    number = _detector_number(detector)
    fixed = np.random.default_rng(3000 + number)  # the detector's defects: the same in every delivery
    noise = np.random.default_rng([delivery_seed, number, 11])
    b = REFERENCE_BORDER
    inner = side - 2 * b
    dq = np.zeros((side, side), dtype=np.uint32)
    dq[:b, :] = dq[-b:, :] = dq[:, :b] = dq[:, -b:] = dqflags.pixel.REFERENCE_PIXEL
    sizes = [max(1, round(fraction * inner * inner)) for _, fraction, _ in CLASSES]
    positions = fixed.permutation(inner * inner)[: sum(sizes)]
    science = np.zeros(inner * inner, dtype=np.uint32)
    start = 0
    for (flags, _, found), size in zip(CLASSES, sizes, strict=True):
        chosen = positions[start : start + size]
        start += size
        if found < 1.0:
            chosen = chosen[noise.random(size) < found]
        bits = 0
        for flag in flags:
            bits |= int(dqflags.pixel[flag])
        science[chosen] |= np.uint32(bits)
    dq[b : side - b, b : side - b] = science.reshape(inner, inner)
    if anomaly:
        row = col = side // 4
        extent = min(CLUSTER_SIDE, side // 2)
        dq[row : row + extent, col : col + extent] |= np.uint32(dqflags.pixel.DEAD | dqflags.pixel.DO_NOT_USE)
    return {"dq": dq}


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``dq`` of synthetic WFI01 (delivery ``seed``); with ``anomaly`` the dead cluster."""
    return reference_arrays("WFI01", side, seed, anomaly)
