"""The astrometry monitor's I/O edge: the file's WCS and the reference catalogue rows near its footprint.

Problems (no WCS, a WCS that cannot be evaluated, no catalogue configured, unreadable or not
overlapping) are returned in the context, never raised: the metrics report them as a status.
Catalogue files are read once per path and modification time (:mod:`rdmt_core.measure.catalog`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...measure.catalog import find_catalog, image_footprint
from .options import AstrometryOptions

if TYPE_CHECKING:
    from ...data_access import RomanInput

LEVEL2_SIDE = 4088


def file_wcs(meta: Any) -> Any:
    """The WCS of a file's metadata (``meta.wcs``), or None when it is missing or not a WCS."""
    try:
        wcs = meta["wcs"]
    except (KeyError, TypeError, AttributeError):
        wcs = getattr(meta, "wcs", None)
    return wcs if hasattr(wcs, "pixel_to_world_values") else None


def science_side(roman: RomanInput) -> int:
    """Side of the file's science array, from the ASDF tree (4088, a Level-2 image, when it cannot be told)."""
    try:
        shape = roman.node["data"].shape  # from the ASDF tree: the array is not read
    except (KeyError, TypeError, AttributeError):
        return LEVEL2_SIDE
    return int(shape[-1]) if len(shape) == 2 else LEVEL2_SIDE


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
