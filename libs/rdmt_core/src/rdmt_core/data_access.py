"""Open Roman files (reference files and Level-2 images) and read their arrays, only where allowed.

The opener is chosen by URI scheme: plain paths and ``file://``, and ``s3://``, ``gs://`` and
``memory://`` through fsspec (installed with ``rdmt-core[s3]``); add one
with :func:`register_opener`. Every failure becomes an :class:`InputError`
naming the file. Arrays are read eagerly inside that boundary: an ASDF file
truncated in its binary blocks opens fine and only fails when an array is read,
so :meth:`RomanInput.read_arrays` reads, checks shape and dtype, and converts
any failure into a clear error before a monitor sees the data.

An :class:`InputPolicy` (from the configuration's ``inputs`` section) confines what may be opened:
local paths are resolved (``..``, symlinks) and must lie under a root, remote URIs must start with an
allowed prefix, and only regular files are opened (a FIFO would block ``open()`` for ever). A refusal
is an :class:`InputError` raised before anything is opened. The policy's read timeout bounds opening
a file and reading its arrays. This module must not decide what a refusal means for the caller
(dead letter, FAILED line): it only raises.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

import asdf
import numpy as np

from .errors import ConfigError, InputError
from .records import ArraySpec, FileIdentity

if TYPE_CHECKING:
    from .config import InputsConfig

T = TypeVar("T")
Opener = Callable[[str], Any]  # URI -> a binary file-like object or a local path accepted by asdf.open
_OPENERS: dict[str, Opener] = {}
LOCAL_SCHEMES = ("", "file")
_FILE_TYPES = (  # what os.stat says a path is, for the refusal of anything but a regular file
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def register_opener(scheme: str, opener: Opener) -> None:
    """Register how to open URIs of a remote ``scheme`` (for example ``s3`` through fsspec)."""
    _OPENERS[scheme] = opener


@dataclass(frozen=True)
class InputPolicy:
    """Which inputs may be opened, and how long opening one file and reading its arrays may take.

    Build it with :meth:`embedded` (``rdmt run``) or :meth:`service` (the monitor service) from the
    configuration's ``inputs`` section, not by hand.

    Attributes
    ----------
    roots : tuple of str
        Resolved local directories; a local input must resolve to a path under one of them.
    uri_prefixes : tuple of str
        Remote URIs allowed (scheme and bucket prefix).
    any_local_path : bool
        With no roots: may any local path be read?
    read_timeout_s : float or None
        Budget for opening one file and reading its arrays; None: no limit.
    """

    roots: tuple[str, ...] = ()
    uri_prefixes: tuple[str, ...] = ()
    any_local_path: bool = False
    read_timeout_s: float | None = None

    @classmethod
    def embedded(cls, inputs: InputsConfig) -> InputPolicy:
        """The policy of ``rdmt run``: with no roots, any local path (a laptop needs no configuration)."""
        return cls._from(inputs, any_local_path=True)

    @classmethod
    def service(cls, inputs: InputsConfig) -> InputPolicy:
        """The policy of a service; :class:`ConfigError` when it would allow nothing and nothing is said.

        A service reads what messages name, so it reads any local path only when told to
        (``inputs.allow_any_local_path: true``).
        """
        if not (inputs.roots or inputs.uri_prefixes or inputs.allow_any_local_path):
            raise ConfigError(
                "inputs: a service reads only under configured input roots, and none are set: set inputs.roots "
                "(e.g. [/data]) or inputs.uri_prefixes (e.g. [s3://bucket/path/]), or inputs.allow_any_local_path: "
                "true to read any local path a message names (docs/operations.md#security)"
            )
        return cls._from(inputs, any_local_path=inputs.allow_any_local_path)

    @classmethod
    def _from(cls, inputs: InputsConfig, any_local_path: bool) -> InputPolicy:
        return cls(
            roots=tuple(os.path.realpath(root) for root in inputs.roots),
            uri_prefixes=tuple(inputs.uri_prefixes),
            any_local_path=any_local_path and not inputs.roots,
            read_timeout_s=inputs.read_timeout_s,
        )

    def allowed(self, uri: str) -> str:
        """What to open for ``uri``: its resolved local path, or the URI itself; :class:`InputError` if refused.

        Nothing is opened (local paths are resolved with ``os.path.realpath``, which only reads links).
        """
        scheme = _scheme(uri)
        if scheme in LOCAL_SCHEMES:
            real = os.path.realpath(local_path(uri))
            if self.roots:
                if not any(_is_within(real, root) for root in self.roots):
                    raise InputError(uri, f"outside the configured input roots {', '.join(self.roots)}: "
                                          f"it resolves to {real}")  # fmt: skip
            elif not self.any_local_path:
                raise InputError(uri, "local paths are not allowed here: no input roots are configured (inputs.roots)")
            return real
        if not any(_has_prefix(uri, prefix) for prefix in self.uri_prefixes):
            allowed = ", ".join(self.uri_prefixes) or "none configured"
            raise InputError(uri, f"{scheme}:// URI not under an allowed input URI prefix (inputs.uri_prefixes: "
                                  f"{allowed})")  # fmt: skip
        return uri


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _has_prefix(uri: str, prefix: str) -> bool:
    """``uri`` starts with ``prefix`` at a path boundary, with no ``.``/``..`` segment to climb out of it."""
    if any(segment in (".", "..") for segment in urlparse(uri).path.split("/")):
        return False  # an object store may keep '..' literally, a filesystem may not: refuse both
    scheme, _, rest = prefix.partition("://")
    scheme_of_uri, _, rest_of_uri = uri.partition("://")
    if scheme.lower() != scheme_of_uri.lower():
        return False
    rest = rest.rstrip("/")
    return rest_of_uri == rest or rest_of_uri.startswith(rest + "/")


def local_path(uri: str) -> str:
    """The local path of a plain path or a ``file://`` URI (:class:`InputError` for a file URI on another host)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    if parsed.netloc not in ("", "localhost"):
        raise InputError(uri, f"file:// URI on host {parsed.netloc!r}: only local files can be read")
    return unquote(parsed.path)


def _regular_file(uri: str, path: str) -> str:
    """``path`` if it is a regular file; :class:`InputError` naming what it is otherwise (nothing is opened)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(uri, "file not found") from None
    except OSError as exc:
        raise InputError(uri, f"cannot stat ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _FILE_TYPES if test(mode)), "of an unknown type")
        if what == "a directory":
            raise InputError(uri, "is a directory, not a file")
        raise InputError(uri, f"is {what}, not a regular file: refused without opening it")
    return path


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


class _ReadBudget:
    """The time left for opening one file and reading its arrays (no limit when ``limit_s`` is None).

    Each read runs in a daemon thread waited on for at most the time left. A read that overruns
    is abandoned, not stopped (Python cannot interrupt a thread blocked in I/O): the thread and the
    file stay until the read returns, if ever, and the file is then not closed by us, since closing
    would wait for the lock the stuck read holds.
    """

    def __init__(self, uri: str, limit_s: float | None) -> None:
        self.uri = uri
        self.limit_s = limit_s
        self.left_s = limit_s
        self.abandoned = False

    def run(self, what: str, read: Callable[[], T]) -> T:
        if self.limit_s is None or self.left_s is None:
            return read()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def target() -> None:
            try:
                future.set_result(read())
            except BaseException as exc:  # handed to the waiting thread, which re-raises it
                future.set_exception(exc)

        start = time.monotonic()
        threading.Thread(target=target, name=f"rdmt-read {self.uri}", daemon=True).start()
        concurrent.futures.wait([future], timeout=max(self.left_s, 0.0))
        self.left_s -= time.monotonic() - start
        if not future.done():
            self.abandoned = True
            raise InputError(self.uri, f"{what} took longer than the read timeout of {self.limit_s:g} s "
                                       "(inputs.read_timeout_s); the read was abandoned")  # fmt: skip
        return future.result()


# Reference types delivered once per optical element: their rad schemas include ref_optical_element
# (flat, ipc, pixelarea, epsf, distortion), and PHOTOM. DARK's schema includes it too, but darks are
# taken with the blocking element and told apart by exposure mode: leaving DARK out keeps the keys
# (and histories) of the darks already stored.
OPTICAL_ELEMENT_REFTYPES = frozenset({"FLAT", "IPC", "AREA", "EPSF", "DISTORTION", "PHOTOM"})
# Reference types delivered per exposure mode: the MA table (meta.exposure.ma_table_number and
# ma_table_name, in the rad dark schemas 1.0-1.4; rad 2.0 dark and readnoise have only meta.exposure.type,
# the observing mode, which is FileIdentity.exposure_type and does not split a history).
EXPOSURE_MODE_REFTYPES = frozenset({"DARK", "READNOISE"})


def _identity_part(value: Any) -> str:
    """A metadata value as one part of a file key: upper-case text without '/' ('' when missing)."""
    if value is None:
        return ""
    return str(value).strip().replace("/", "-").upper()


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

    def __init__(self, uri: str, handle: asdf.AsdfFile, budget: _ReadBudget | None = None) -> None:
        self.uri = uri
        self._handle = handle
        self._budget = budget or _ReadBudget(uri, None)
        self._arrays: dict[str, np.ndarray] = {}
        self._unreadable: dict[str, InputError] = {}
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
            optical_element=self._optical_element(instrument),
            exposure_mode=self._exposure_mode(exposure),
        )

    def _optical_element(self, instrument: Any) -> str:
        """``meta.instrument.optical_element`` of a Level-2 image or a per-element reference type, else ""."""
        if instrument is None or (self.reftype and self.reftype not in OPTICAL_ELEMENT_REFTYPES):
            return ""
        return _identity_part(_get(instrument, "optical_element"))

    def _exposure_mode(self, exposure: Any) -> str:
        """The MA table of a per-mode reference type: ``MA<meta.exposure.ma_table_number>``, else its name, else ""."""
        if exposure is None or self.reftype not in EXPOSURE_MODE_REFTYPES:
            return ""
        number = _get(exposure, "ma_table_number")
        if number is not None and str(number).strip():
            return _identity_part(f"MA{number}")
        return _identity_part(_get(exposure, "ma_table_name"))

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
        if name in self._unreadable:  # a damaged block is tried once per file, not once per monitor
            raise self._unreadable[name]
        raw = _get(self.node, name)
        if raw is None:
            raise InputError(self.uri, f"missing array '{name}'")

        def read() -> np.ndarray:
            try:
                return np.asarray(raw)  # asdf decompresses the block here: no second copy
            except Exception as exc:  # asdf raises several types for truncated or corrupt blocks
                raise InputError(
                    self.uri,
                    f"the file looks truncated or damaged: its array '{name}' cannot be read "
                    f"({type(exc).__name__}: {exc}); copy it again from its source",
                ) from exc

        try:
            array = self._budget.run(f"reading array '{name}'", read)
        except InputError as exc:
            self._unreadable[name] = exc
            raise
        self._arrays[name] = array
        return array

    def close(self) -> None:
        self._arrays.clear()
        if not self._budget.abandoned:  # else the stuck read holds the file: leave it to that thread
            self._handle.close()


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    try:
        return node[key]
    except (KeyError, TypeError, AttributeError):
        return getattr(node, key, None)


@contextlib.contextmanager
def open_roman(uri: str | Path, policy: InputPolicy | None = None) -> Iterator[RomanInput]:
    """Open a Roman ASDF file for monitoring; every failure and every refusal is an :class:`InputError`.

    Parameters
    ----------
    uri : str or Path
        A local path, a ``file://`` URI or a remote URI of a registered scheme.
    policy : InputPolicy, optional
        Where inputs may be read from and the read timeout; without it (``rdmt publish``, which reads
        the files its operator names) anything may be opened, with no time limit. Non-regular local
        files are refused either way.
    """
    uri = str(uri)
    scheme = _scheme(uri)
    allowed = policy.allowed(uri) if policy is not None else None  # refused here: nothing opened
    if scheme in LOCAL_SCHEMES:
        target: Any = _regular_file(uri, allowed or local_path(uri))
    else:
        opener = _OPENERS.get(scheme)
        if opener is None:
            raise InputError(uri, f"no opener for scheme '{scheme}://' (known: {sorted(_OPENERS)})")
        target = opener(uri)
    budget = _ReadBudget(uri, policy.read_timeout_s if policy is not None else None)
    try:
        roman = budget.run("opening the file", lambda: _open_asdf(uri, target, budget))
        try:
            yield roman
        finally:
            roman.close()
    finally:
        if hasattr(target, "close") and not budget.abandoned:  # a file object from a remote opener
            target.close()


def _open_asdf(uri: str, target: Any, budget: _ReadBudget) -> RomanInput:
    try:
        handle = asdf.open(target, lazy_load=True, memmap=False)
    except Exception as exc:
        raise InputError(uri, f"not a readable ASDF file ({type(exc).__name__}: {_first_line(exc)})") from exc
    try:
        return RomanInput(uri, handle, budget)
    except Exception:
        handle.close()
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
