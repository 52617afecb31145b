"""Example Level-2 frame of the background monitor; the anomaly is a step in the background at an amplifier."""

from __future__ import annotations

import numpy as np

STEP = (17, 0.03)  # DN/s added to amplifiers 17..32: about 10 sigma of a 512-frame amplifier step (0.003 DN/s)


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` of a synthetic image in the ``side`` frame; with ``anomaly`` the step :data:`STEP`."""
    from ...synthetic_l2 import L2Injection
    from ..l2_examples import level2_example_frame

    return level2_example_frame(side, seed, L2Injection(background_step=STEP) if anomaly else None)
