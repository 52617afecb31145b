"""Example Level-2 frame of the PSF shape monitor; the anomaly is a blurred PSF.

The stars are those of :func:`rdmt_core.monitors.l2_examples.example_image` (galsim.roman PSF of
WFI01 in F158), shared with the astrometry monitor (at least ~100 stars at small sizes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BLUR = 1.5  # FWHM scale: psf_fwhm_ratio 1.5, beyond the mission limit of 1.3


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` in the ``side`` frame; with ``anomaly`` the PSF's FWHM times :data:`BLUR`."""
    from ..l2_examples import star_example_frame

    return star_example_frame(side, seed, _injection(anomaly))


def example_context(side: int, seed: int, anomaly: bool = False) -> dict[str, Any]:
    """The file's WCS and optical element, as :meth:`PsfShapeMonitor.load_context` reads them."""
    from ...synthetic_l2 import L2Scene
    from ..l2_examples import example_image

    return {"wcs": example_image(side, seed, _injection(anomaly))[1], "optical_element": L2Scene.optical_element}


def _injection(anomaly: bool) -> Any:
    from ...synthetic_l2 import L2Injection

    return L2Injection(psf_fwhm_scale=BLUR) if anomaly else None
