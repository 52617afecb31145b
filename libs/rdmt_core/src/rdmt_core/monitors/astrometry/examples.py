"""Example Level-2 image of the astrometry monitor, with its WCS and catalogue; the anomaly shifts the WCS.

The image and the stars are those of :func:`rdmt_core.monitors.l2_examples.example_image`, shared
with the psf_shape monitor; the shift is in the file's WCS only (the pixels do not change).
"""

from __future__ import annotations

from typing import Any

import numpy as np

WCS_SHIFT_ARCSEC = (0.3, -0.2)  # (RA*cos(Dec), Dec): 0.36" in total, over 3x the soc offset limits


def _injection(anomaly: bool) -> Any:
    from ...synthetic_l2 import L2Injection

    return L2Injection(wcs_shift_arcsec=WCS_SHIFT_ARCSEC) if anomaly else None


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` in the ``side`` frame (the WCS shift changes no pixel)."""
    from ..l2_examples import star_example_frame

    return star_example_frame(side, seed, _injection(anomaly))


def example_context(side: int, seed: int, anomaly: bool = False) -> dict[str, Any]:
    """The file WCS (shifted with ``anomaly``) and the catalogue of the example image."""
    from ..l2_examples import example_image

    _, wcs, catalog = example_image(side, seed, _injection(anomaly))
    return {"wcs": wcs, "catalog": catalog, "problem": None}
