"""Example Level-2 frame of the 1/f noise monitor; the anomaly is 1/f noise injected along the readout."""

from __future__ import annotations

import numpy as np

ONE_OVER_F = 0.4  # rms per pixel in units of the white noise: found on the detector scale from about 0.25 at 512


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` of a synthetic image in the ``side`` frame; with ``anomaly`` 1/f noise added."""
    from ...synthetic_l2 import L2Injection
    from ..l2_examples import level2_example_frame

    return level2_example_frame(side, seed, L2Injection(one_over_f=ONE_OVER_F) if anomaly else None)
