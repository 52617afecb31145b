"""Reference catalogues of the astrometry monitor: ECSV files read once, rows near an image's footprint.

A catalogue is an ECSV table with ``ra`` and ``dec`` columns (degrees, or any
angle unit). :func:`read_catalog_file` keeps the positions of each file, with
the circle holding them, in a small cache keyed by path and invalidated by the
file's modification time and size. :func:`find_catalog` returns the rows near
an image's footprint (:func:`image_footprint`) from one file (``catalog_path``)
or from every overlapping file of a directory (``catalog_dir``), or says why
there are none.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table


class CatalogOptions(Protocol):
    """The options :func:`find_catalog` reads (the astrometry monitor's options have them)."""

    catalog_path: str | None
    catalog_dir: str | None
    search_radius_arcsec: float


@dataclass(frozen=True)
class ReferenceCatalog:
    """Catalogue stars near one image: positions in degrees and where they came from."""

    ra: np.ndarray
    dec: np.ndarray
    source: str


@dataclass(frozen=True)
class CatalogFile:
    """Positions of one catalogue file and the circle holding them."""

    ra: np.ndarray
    dec: np.ndarray
    centre: np.ndarray  # unit vector of the mean position
    radius_deg: float  # largest distance of a row from the centre
    n_rows: int  # rows of the file, with or without a finite position


_CACHE: OrderedDict[str, tuple[tuple[int, int], CatalogFile]] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _column_deg(table: Table, name: str) -> np.ndarray:
    column = table[name]
    if column.unit is not None:
        return np.asarray(column.quantity.to_value(u.deg), dtype=np.float64)
    return np.asarray(column, dtype=np.float64)


def read_catalog_file(path: str | Path) -> CatalogFile:
    """Positions of one ECSV catalogue (``ra``, ``dec``), read once per path and modification time.

    Raises
    ------
    OSError, ValueError, KeyError
        When the file cannot be read or has no ``ra``/``dec`` columns.
    """
    key = os.path.abspath(path)
    stat = os.stat(key)
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            _CACHE.move_to_end(key)
            return cached[1]
    table = Table.read(key, format="ascii.ecsv")
    missing = [c for c in ("ra", "dec") if c not in table.colnames]
    if missing:
        raise KeyError(f"no column {', '.join(missing)} (columns: {', '.join(table.colnames)})")
    ra, dec = _column_deg(table, "ra"), _column_deg(table, "dec")
    good = np.isfinite(ra) & np.isfinite(dec)
    ra, dec = ra[good], dec[good]
    if ra.size:
        vectors = _unit(ra, dec)
        centre = vectors.mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        radius = float(np.rad2deg(np.arccos(np.clip(vectors @ centre, -1.0, 1.0)).max()))
    else:
        centre, radius = np.array([1.0, 0.0, 0.0]), 0.0
    entry = CatalogFile(ra, dec, centre, radius, len(table))
    with _CACHE_LOCK:
        _CACHE[key] = (stamp, entry)
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry


@dataclass(frozen=True)
class Footprint:
    """A circle on the sky holding the image: centre (degrees) and radius (degrees)."""

    ra: float
    dec: float
    radius_deg: float

    def rows_near(self, ra: np.ndarray, dec: np.ndarray, margin_deg: float) -> np.ndarray:
        cosine = _unit(ra, dec) @ _unit(np.array([self.ra]), np.array([self.dec]))[0]
        return cosine >= np.cos(np.deg2rad(self.radius_deg + margin_deg))


def image_footprint(wcs: Any, n_pixels: int) -> Footprint:
    """Centre and enclosing radius of an ``n_pixels`` square image through its WCS (0-based pixels)."""
    edge = np.array([0.0, n_pixels - 1.0])
    x = np.array([*np.repeat(edge, 2), (n_pixels - 1) / 2.0])
    y = np.array([*np.tile(edge, 2), (n_pixels - 1) / 2.0])
    ra, dec = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(x, y))
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("the WCS gives non-finite sky positions for the image corners")
    centre = SkyCoord(ra[-1] * u.deg, dec[-1] * u.deg)
    radius = centre.separation(SkyCoord(ra[:-1] * u.deg, dec[:-1] * u.deg)).deg.max()
    return Footprint(float(ra[-1]), float(dec[-1]), float(radius))


def _no_rows(entry: CatalogFile) -> str:
    """Why a catalogue file gives no position: no rows at all, or none with a finite ra and dec."""
    return "has no rows" if entry.n_rows == 0 else f"has no row with a finite ra and dec (of {entry.n_rows})"


def find_catalog(options: CatalogOptions, footprint: Footprint) -> tuple[ReferenceCatalog | None, str | None]:
    """The catalogue rows near ``footprint`` from ``catalog_path`` or ``catalog_dir``, or why there are none."""
    margin = (options.search_radius_arcsec + 10.0) / 3600.0
    if options.catalog_path:
        try:
            entry = read_catalog_file(options.catalog_path)
        except FileNotFoundError:
            return None, f"catalogue {options.catalog_path} not found"
        except Exception as exc:  # astropy raises many types for a malformed ECSV
            return None, f"cannot read catalogue {options.catalog_path} ({type(exc).__name__}: {exc})"
        if entry.ra.size == 0:
            return None, f"catalogue {options.catalog_path} {_no_rows(entry)}"
        near = footprint.rows_near(entry.ra, entry.dec, margin)
        if not near.any():
            return None, f"catalogue {options.catalog_path} does not overlap the image footprint"
        return ReferenceCatalog(entry.ra[near], entry.dec[near], str(options.catalog_path)), None
    if options.catalog_dir:
        directory = Path(options.catalog_dir)
        if not directory.is_dir():
            return None, f"catalogue directory {directory} not found"
        centre = _unit(np.array([footprint.ra]), np.array([footprint.dec]))[0]
        ras, decs, used, unreadable, empty = [], [], [], [], []
        for path in sorted(directory.glob("*.ecsv")):
            try:
                entry = read_catalog_file(path)
            except Exception as exc:
                unreadable.append(f"{path.name} ({type(exc).__name__})")
                continue
            if entry.ra.size == 0:
                empty.append(f"{path.name} ({_no_rows(entry)})")
                continue
            distance = np.rad2deg(np.arccos(np.clip(entry.centre @ centre, -1.0, 1.0)))
            if distance > entry.radius_deg + footprint.radius_deg + margin:
                continue
            near = footprint.rows_near(entry.ra, entry.dec, margin)
            if near.any():
                ras.append(entry.ra[near])
                decs.append(entry.dec[near])
                used.append(path.name)
        if not used:
            extra = f"; unreadable: {', '.join(unreadable)}" if unreadable else ""
            extra += f"; empty: {', '.join(empty)}" if empty else ""
            return None, f"no catalogue in {directory} overlaps the image footprint{extra}"
        return ReferenceCatalog(np.concatenate(ras), np.concatenate(decs), f"{directory}: {', '.join(used)}"), None
    return None, "no reference catalogue configured (option catalog_path or catalog_dir)"
