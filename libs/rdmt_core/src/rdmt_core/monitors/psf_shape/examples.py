"""Example Level-2 frame of the PSF shape monitor; the anomaly is a blurred PSF.

The stars are those of :func:`rdmt_core.monitors.l2_examples.example_image`, shared with the
astrometry monitor (at least ~100 stars at small sizes).
"""

from __future__ import annotations

import numpy as np

BLUR = 1.5  # FWHM scale: 1.6 -> 2.4 pixels, beyond the mission limit of 2.2


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` in the ``side`` frame; with ``anomaly`` the PSF's FWHM times :data:`BLUR`."""
    from ...synthetic_l2 import L2Injection
    from ..l2_examples import star_example_frame

    return star_example_frame(side, seed, L2Injection(psf_fwhm_scale=BLUR) if anomaly else None)
