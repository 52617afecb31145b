"""What the Level-2 image monitors read from a file beside its arrays: the WCS, the science array's side
and the optical element. Missing or malformed metadata gives None (or the Level-2 default), never an
error: the monitor reports what it could not measure as a status or note."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..data_access import RomanInput

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


def optical_element_of(meta: Any) -> str | None:
    """``meta.instrument.optical_element`` as a string, or None when it is missing."""
    try:
        value = meta["instrument"]["optical_element"]
    except (KeyError, TypeError, AttributeError):
        value = getattr(getattr(meta, "instrument", None), "optical_element", None)
    return None if value is None else str(value)
