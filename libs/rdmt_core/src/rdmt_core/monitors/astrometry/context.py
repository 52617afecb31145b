"""The astrometry monitor's I/O edge: the file's WCS and the reference catalogue rows near its footprint.

Problems (no WCS, a WCS that cannot be evaluated, no catalogue configured, unreadable or not
overlapping) are returned in the context, never raised: the metrics report them as a status.
Catalogue files are read once per path and modification time (:mod:`rdmt_core.measure.catalog`).
"""

from __future__ import annotations

from typing import Any

from ...measure.catalog import find_catalog, image_footprint
from .options import AstrometryOptions


def context_for(wcs: Any, n_pixels: int, options: AstrometryOptions) -> dict[str, Any]:
    """The monitor's context from a WCS (or None) and the image side: the WCS, the catalogue or a problem."""
    if wcs is None:
        return {"wcs": None, "catalog": None, "problem": "no WCS in the file (meta.wcs is missing or null)"}
    try:
        footprint = image_footprint(wcs, n_pixels)
    except Exception as exc:  # a WCS that cannot be evaluated is this monitor's problem only
        return {"wcs": None, "catalog": None, "problem": f"the WCS cannot be evaluated ({type(exc).__name__}: {exc})"}
    catalog, problem = find_catalog(options, footprint)
    return {"wcs": wcs, "catalog": catalog, "problem": problem}
