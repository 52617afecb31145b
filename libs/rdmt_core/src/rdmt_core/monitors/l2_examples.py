"""Synthetic example inputs shared by the Level-2 image monitors (their ``examples`` modules).

Frames are the science arrays of :mod:`rdmt_core.synthetic_l2` placed in the
full ``side`` frame with the reference-pixel border set to NaN (``data``) and
0 (``dq``), as the monitors receive them. An :class:`~rdmt_core.synthetic_l2.L2Injection`
adds a monitor's anomaly (a WCS shift, 1/f noise, an amplifier step, a blurred PSF).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from ..geometry import Geometry, to_frame

if TYPE_CHECKING:
    from ..measure.catalog import ReferenceCatalog
    from ..synthetic_l2 import L2Injection


def in_frame(arrays: dict[str, np.ndarray], side: int) -> dict[str, np.ndarray]:
    """``data`` and ``dq`` of a Level-2 image placed in the ``side`` frame (border: NaN and 0)."""
    from ..synthetic_l2 import BORDER

    geometry = Geometry(side, BORDER)
    return {"data": to_frame(arrays["data"], geometry, np.nan), "dq": to_frame(arrays["dq"], geometry, 0)}


def level2_example_frame(side: int, seed: int, injection: L2Injection | None = None) -> dict[str, np.ndarray]:
    """A synthetic Level-2 image (WFI01, default scene) in its full ``side`` frame with a NaN border."""
    from ..synthetic_l2 import L2Scene, field_catalog, l2_arrays

    scene = L2Scene(seed=seed)
    arrays, *_ = l2_arrays("WFI01", field_catalog(scene, side, ("WFI01",)), scene, side, injection=injection)
    return in_frame(arrays, side)


@functools.lru_cache(maxsize=1)  # one example at a time: a full-size one is 130 MB
def example_image(
    side: int, seed: int, injection: L2Injection | None = None
) -> tuple[dict[str, np.ndarray], Any, ReferenceCatalog]:
    """A synthetic image (science arrays), its file WCS and catalogue; at least ~100 stars at small sizes."""
    from ..measure.catalog import ReferenceCatalog
    from ..synthetic_l2 import BORDER, L2Scene, field_catalog, l2_arrays

    n = side - 2 * BORDER
    scene = L2Scene(seed=seed, star_density=max(L2Scene.star_density, 100.0 / n**2))
    table = field_catalog(scene, side, ("WFI01",))
    arrays, file_wcs, _, _ = l2_arrays("WFI01", table, scene, side, exposure_seed=seed, injection=injection)
    return arrays, file_wcs, ReferenceCatalog(np.asarray(table["ra"]), np.asarray(table["dec"]), "synthetic field")


def star_example_frame(side: int, seed: int, injection: L2Injection | None = None) -> dict[str, np.ndarray]:
    """The frame of :func:`example_image` (shared by the star monitors, astrometry and psf_shape)."""
    return in_frame(example_image(side, seed, injection)[0], side)
