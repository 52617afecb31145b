"""Open Roman files (reference files and Level-2 images) and read their arrays.

The opener is chosen by URI scheme: plain paths and ``file://``, and ``s3://``, ``gs://`` and
``memory://`` through fsspec (installed with ``rdmt-core[s3]``); add one
with :func:`register_opener`. Every failure becomes an :class:`InputError`
naming the file. Arrays are read eagerly inside that boundary: an ASDF file
truncated in its binary blocks opens fine and only fails when an array is read,
so :meth:`RomanInput.read_arrays` reads, checks shape and dtype, and converts
any failure into a clear error before a monitor sees the data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import asdf
import numpy as np

from .errors import InputError
from .records import ArraySpec, FileIdentity

Opener = Callable[[str], Any]  # URI -> a binary file-like object or a local path accepted by asdf.open
_OPENERS: dict[str, Opener] = {}


def register_opener(scheme: str, opener: Opener) -> None:
    """Register how to open URIs of ``scheme`` (for example ``s3`` through fsspec)."""
    _OPENERS[scheme] = opener


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    path = unquote(parsed.path) if parsed.scheme == "file" else uri
    if not os.path.exists(path):
        raise InputError(uri, "file not found")
    if os.path.isdir(path):
        raise InputError(uri, "is a directory, not a file")
    return path


register_opener("", _local_path)
register_opener("file", _local_path)


def fsspec_opener(uri: str) -> Any:
    """Open ``uri`` with fsspec (``s3://`` needs s3fs: ``pip install 'rdmt-core[s3]'``); a binary file object."""
    try:
        import fsspec
    except ImportError:
        raise InputError(uri, "fsspec is not installed: pip install 'rdmt-core[s3]'") from None
    try:
        return fsspec.open(uri, "rb").open()
    except FileNotFoundError:
        raise InputError(uri, "file not found") from None
    except ImportError as exc:  # the scheme's filesystem package is missing
        raise InputError(uri, f"cannot open: {exc}") from None


for _scheme_name in ("s3", "gs", "memory"):
    register_opener(_scheme_name, fsspec_opener)


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "" if len(scheme) <= 1 else scheme  # "C:" style drive letters are paths


def _to_datetime(value: Any) -> datetime:
    if hasattr(value, "to_datetime"):  # astropy Time
        dt = value.utc.to_datetime() if hasattr(value, "utc") else value.to_datetime()
    elif isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class RomanInput:
    """An open Roman ASDF file: its identity, metadata and (on request) arrays."""

    def __init__(self, uri: str, handle: asdf.AsdfFile) -> None:
        self.uri = uri
        self._handle = handle
        self._arrays: dict[str, np.ndarray] = {}
        tree = handle.tree
        if "roman" not in tree:
            raise InputError(uri, "ASDF file has no Roman metadata (no 'roman' node in its tree)")
        self.node = tree["roman"]
        meta = _get(self.node, "meta")
        if meta is None:
            raise InputError(uri, "Roman node has no 'meta'")
        self.meta = meta
        self.reftype = str(_get(meta, "reftype") or "").upper()
        self.model_type = str(_get(meta, "model_type") or type(self.node).__name__)
        self.identity = self._identity()

    @property
    def kind(self) -> str:
        """``meta.reftype`` for reference files, the model type for everything else."""
        return self.reftype or self.model_type

    def _identity(self) -> FileIdentity:
        instrument = _get(self.meta, "instrument")
        detector = _get(instrument, "detector") if instrument is not None else None
        if not detector:
            raise InputError(self.uri, "no meta.instrument.detector: cannot tell which WFI detector this is")
        exposure = _get(self.meta, "exposure")
        when = _get(self.meta, "useafter") if self.reftype else _get(exposure, "start_time")
        if when is None:
            field = "meta.useafter" if self.reftype else "meta.exposure.start_time"
            raise InputError(self.uri, f"no {field}")
        try:
            file_time = _to_datetime(when)
        except (TypeError, ValueError) as exc:
            raise InputError(self.uri, f"unreadable time {when!r}: {exc}") from exc
        return FileIdentity(
            source=self.uri,
            kind=self.kind,
            detector=str(detector).upper(),
            file_time=file_time,
            exposure_type=str(_get(exposure, "type") or "") if exposure is not None else "",
        )

    def read_arrays(self, specs: Mapping[str, ArraySpec]) -> dict[str, np.ndarray]:
        """Read the named arrays into memory and check their dtype, dimensions and common shape.

        Parameters
        ----------
        specs : mapping
            Array name to :class:`ArraySpec`; every array must have the first one's shape.
        """
        arrays: dict[str, np.ndarray] = {}
        for name, spec in specs.items():
            array = self._read(name)
            if array.dtype.kind not in spec.kinds:
                raise InputError(self.uri, f"array '{name}' has dtype {array.dtype}, expected kind '{spec.kinds}'")
            if array.ndim != spec.ndim:
                raise InputError(self.uri, f"array '{name}' has shape {array.shape}, expected {spec.ndim}-D")
            expected = next(iter(arrays.values())).shape if arrays else array.shape
            if array.shape != expected:
                raise InputError(self.uri, f"array '{name}' has shape {array.shape}, expected {expected}")
            arrays[name] = array
        return arrays

    def _read(self, name: str) -> np.ndarray:
        """The array ``name``, read once per file: every monitor of the file gets the same object."""
        if name in self._arrays:
            return self._arrays[name]
        raw = _get(self.node, name)
        if raw is None:
            raise InputError(self.uri, f"missing array '{name}'")
        try:
            array = np.asarray(raw)  # asdf decompresses the block here: no second copy
        except Exception as exc:  # asdf raises several types for truncated or corrupt blocks
            raise InputError(self.uri, f"cannot read array '{name}' ({type(exc).__name__}: {exc})") from exc
        self._arrays[name] = array
        return array

    def close(self) -> None:
        self._arrays.clear()
        self._handle.close()


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    try:
        return node[key]
    except (KeyError, TypeError, AttributeError):
        return getattr(node, key, None)


@contextlib.contextmanager
def open_roman(uri: str | Path) -> Iterator[RomanInput]:
    """Open a Roman ASDF file for monitoring; every failure is an :class:`InputError`."""
    uri = str(uri)
    opener = _OPENERS.get(_scheme(uri))
    if opener is None:
        raise InputError(uri, f"no opener for scheme '{_scheme(uri)}://' (known: {sorted(s for s in _OPENERS if s)})")
    target = opener(uri)
    try:
        try:
            handle = asdf.open(target, lazy_load=True, memmap=False)
        except Exception as exc:
            raise InputError(uri, f"not a readable ASDF file ({type(exc).__name__}: {_first_line(exc)})") from exc
        try:
            roman = RomanInput(uri, handle)
        except Exception:
            handle.close()
            raise
        try:
            yield roman
        finally:
            roman.close()
    finally:
        if hasattr(target, "close"):  # a file object from a remote opener
            target.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
