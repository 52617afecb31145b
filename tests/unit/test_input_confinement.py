"""Input confinement: only regular files under the configured roots and URI prefixes are opened, in time.

Every refusal must happen before anything is opened: ``asdf.open`` is replaced by a function that fails
the test (``no_open``) wherever a refusal is checked. The slow reads come from a registered opener whose
file object blocks until the test releases it.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import asdf
import pytest
from rdmt_services.monitor.service import compute, make_process

from rdmt_core import data_access
from rdmt_core.config import InputsConfig, load_config
from rdmt_core.data_access import InputPolicy, open_roman
from rdmt_core.errors import ConfigError, InputError
from rdmt_core.kafka.deadletters import is_permanent
from rdmt_core.monitors.dark import DarkMonitor
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.synthetic import write_dark_delivery

USEAFTER = datetime(2026, 1, 1)


def dark_file(directory: Path, detector: str = "WFI11") -> Path:
    (path,) = write_dark_delivery(directory, USEAFTER, side=128, detectors=(detector,))
    return path


@pytest.fixture
def no_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any file is opened as ASDF."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"asdf.open called with {args}: the input should have been refused before")

    monkeypatch.setattr(asdf, "open", refuse)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``data/d1/good.asdf`` (the root is ``data/d1``) and ``data/outside/x.asdf``, relative to the cwd."""
    monkeypatch.chdir(tmp_path)
    root, outside = tmp_path / "data" / "d1", tmp_path / "data" / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    dark_file(tmp_path / "g").rename(root / "good.asdf")
    dark_file(tmp_path / "x", "WFI12").rename(outside / "x.asdf")
    return root


def confined(*roots: str | Path, **inputs: object) -> InputPolicy:
    return InputPolicy.embedded(InputsConfig(roots=[Path(r) for r in roots], **inputs))


def refused(uri: str, policy: InputPolicy | None, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        with open_roman(uri, policy):
            pass
    assert info.value.source == uri
    assert is_permanent(info.value)  # dead-lettered at once, never retried
    return info.value


# -- local paths ------------------------------------------------------------------------------------


def test_a_file_under_the_root_is_read(layout: Path) -> None:
    with open_roman("data/d1/good.asdf", confined("data/d1")) as roman:
        assert roman.identity.detector == "WFI11"
        assert roman.read_arrays(DarkMonitor.arrays)["dark_slope"].shape == (128, 128)


@pytest.mark.parametrize("uri", [
    "data/d1/../../../etc/hostname",
    "data/d1/../outside/x.asdf",  # a good dark file, but outside the root
    "/etc/passwd",
    "/proc/self/environ",
])  # fmt: skip
def test_paths_outside_the_roots_are_refused_without_opening(layout: Path, no_open: None, uri: str) -> None:
    error = refused(uri, confined("data/d1"), "outside the configured input roots")
    assert f"outside the configured input roots {layout}: it resolves to {os.path.realpath(uri)}" in error.reason


def test_a_root_is_a_directory_not_a_name_prefix(layout: Path, no_open: None) -> None:
    (layout.parent / "d1-evil").mkdir()
    (layout.parent / "d1-evil" / "x.asdf").write_bytes(b"")
    refused("data/d1-evil/x.asdf", confined("data/d1"), "outside the configured input roots")


def test_a_symlink_out_of_the_root_is_refused_and_one_inside_is_followed(layout: Path, no_open: None) -> None:
    (layout / "escape.asdf").symlink_to(layout.parent / "outside" / "x.asdf")
    (layout / "etc").symlink_to("/etc")
    refused("data/d1/escape.asdf", confined("data/d1"), r"outside .*: it resolves to .*/data/outside/x.asdf")
    refused("data/d1/etc/passwd", confined("data/d1"), "outside the configured input roots")
    (layout / "alias.asdf").symlink_to(layout / "good.asdf")
    assert confined("data/d1").allowed("data/d1/alias.asdf") == str(layout / "good.asdf")


def test_a_symlinked_root_is_resolved_too(tmp_path: Path) -> None:
    good = dark_file(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with open_roman(good, confined(tmp_path / "link")) as roman:
        assert roman.identity.detector == "WFI11"


def test_file_uris_are_local_paths_and_follow_the_roots(layout: Path) -> None:
    policy = confined("data/d1")
    with open_roman(f"file://{layout}/good.asdf", policy) as roman:
        assert roman.identity.detector == "WFI11"
    refused("file:///etc/passwd", policy, "outside the configured input roots")
    refused(f"file://{layout}/../outside/x.asdf", policy, "outside the configured input roots")
    refused(f"file://elsewhere{layout}/good.asdf", policy, "file:// URI on host 'elsewhere'")


def test_rdmt_run_without_roots_reads_any_local_path(layout: Path) -> None:
    with open_roman("data/d1/../outside/x.asdf", confined()) as roman:  # a laptop, no configuration
        assert roman.identity.detector == "WFI12"


# -- remote URIs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", [
    "s3://roman-crds/references/other/x.asdf",
    "s3://roman-crds/referencesX/x.asdf",
    "s3://roman-crds-evil/references/x.asdf",
    "s3://roman-crds/references/../secrets/x.asdf",
    "gs://roman-crds/references/x.asdf",
    "memory://rdmt-test/x.asdf",
    "ftp://example.org/x.asdf",
])  # fmt: skip
def test_uris_without_an_allowed_prefix_are_refused_without_opening(no_open: None, uri: str) -> None:
    policy = confined(uri_prefixes=["s3://roman-crds/references/other/"] if "referencesX" in uri else
                      ["s3://roman-crds/references/v2/"])  # fmt: skip
    refused(uri, policy, "URI not under an allowed input URI prefix")


def test_uris_are_refused_when_no_prefix_is_configured(no_open: None, tmp_path: Path) -> None:
    error = refused("s3://roman-crds/references/x.asdf", confined(tmp_path), "s3:// URI not under")
    assert "inputs.uri_prefixes: none configured" in error.reason


def test_an_allowed_s3_prefix_lets_the_uri_through_to_its_opener() -> None:
    policy = confined(uri_prefixes=["s3://roman-crds/references/"])
    assert policy.allowed("s3://roman-crds/references/wfi01_dark.asdf") == "s3://roman-crds/references/wfi01_dark.asdf"
    assert policy.allowed("S3://roman-crds/references/a/b.asdf")  # schemes are case-insensitive


def test_an_allowed_memory_prefix_is_read(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    memory.pipe("/rdmt-confined/wfi11.asdf", dark_file(tmp_path).read_bytes())
    try:
        with open_roman("memory://rdmt-confined/wfi11.asdf", confined(uri_prefixes=["memory://rdmt-confined/"])) as r:
            assert r.read_arrays(DarkMonitor.arrays)["dark_slope"].shape == (128, 128)
    finally:
        memory.rm("/rdmt-confined", recursive=True)


@pytest.mark.parametrize(("prefix", "message"), [
    ("s3://", "must name a scheme and a bucket"),
    ("roman-crds/references/", "must name a scheme and a bucket"),
    ("file:///data/", "file:// URIs are local paths"),
])  # fmt: skip
def test_invalid_uri_prefixes_are_configuration_errors(prefix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(inputs={"uri_prefixes": [prefix]})


def test_the_read_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"inputs\.read_timeout_s"):
        load_config(inputs={"read_timeout_s": 0})


# -- files that are not regular files -----------------------------------------------------------------


def _open_in_thread(uri: str, policy: InputPolicy | None) -> BaseException | None:
    """Open ``uri`` in a daemon thread; the error it raised (the test fails if it blocks)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            with open_roman(uri, policy):
                outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    assert outcome, f"opening {uri} blocked"
    return outcome[0]


@pytest.mark.parametrize("policy", [None, "confined"])
def test_a_fifo_is_refused_at_once(tmp_path: Path, policy: str | None) -> None:
    fifo = tmp_path / "wfi01_dark.asdf"
    os.mkfifo(fifo)
    error = _open_in_thread(str(fifo), confined(tmp_path) if policy else None)
    assert isinstance(error, InputError) and error.reason == "is a FIFO (named pipe), not a regular file: " \
        "refused without opening it"


def test_devices_sockets_and_directories_are_refused(tmp_path: Path, no_open: None) -> None:
    refused("/dev/null", None, "is a character device, not a regular file")
    refused("/dev/null", confined(allow_any_local_path=True), "is a character device, not a regular file")
    refused(str(tmp_path), confined(tmp_path), "is a directory, not a file")
    short = Path(f"/tmp/rdmt-sock-{os.getpid()}")  # AF_UNIX paths are limited to ~107 bytes
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(short))
        try:
            refused(str(short), None, "is a socket, not a regular file")
        finally:
            short.unlink()


def test_rdmt_run_fails_the_refused_files_and_processes_the_next(layout: Path, tmp_path: Path) -> None:
    os.mkfifo(layout / "pipe.asdf")
    quiet = {k: False for k in ("store", "ecsv", "report", "notify")}
    config = load_config(inputs={"roots": ["data/d1"]}, outputs=quiet)
    with EmbeddedPipeline(config, run_id="confined") as pipeline:
        _, outcomes = pipeline.run(["data/d1/../outside/x.asdf", "data/d1/pipe.asdf", "data/d1/good.asdf"])
    outside, fifo, good = outcomes
    assert outside.problem is not None and "outside the configured input roots" in outside.problem.reason
    assert fifo.problem is not None and "is a FIFO (named pipe)" in fifo.problem.reason
    assert good.problem is None and [r.identity.detector for r in good.results] == ["WFI11"]


# -- the services refuse to start without roots ----------------------------------------------------------


def test_a_service_needs_roots_or_prefixes_or_an_explicit_any_local_path() -> None:
    with pytest.raises(ConfigError, match=r"set inputs.roots \(e.g. \[/data\]\)"):
        make_process(DarkMonitor, load_config(), "t")
    only_s3 = InputPolicy.service(InputsConfig(uri_prefixes=["s3://roman-crds/references/"]))
    with pytest.raises(InputError, match="local paths are not allowed here: no input roots are configured"):
        only_s3.allowed("/data/x.asdf")
    anything = InputPolicy.service(InputsConfig(allow_any_local_path=True))
    assert anything.allowed("/data/x.asdf") == "/data/x.asdf"
    roots_win = InputPolicy.service(InputsConfig(roots=[Path("/data")], allow_any_local_path=True))
    with pytest.raises(InputError, match="outside the configured input roots /data"):
        roots_win.allowed("/etc/passwd")


# -- the read timeout ---------------------------------------------------------------------------------


class StallingFile(io.BytesIO):
    """A file whose reads block while ``stall`` is set (until ``release`` is set): a hung NFS or object store."""

    def __init__(self, data: bytes, stall: threading.Event, release: threading.Event) -> None:
        super().__init__(data)
        self.stall, self.release = stall, release

    def read(self, size: int | None = -1) -> bytes:
        if self.stall.is_set():
            self.release.wait(60)
        return super().read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        if self.stall.is_set():
            self.release.wait(60)
        return super().readinto(buffer)


@pytest.fixture
def stalling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``stall://bucket/wfi11.asdf`` serves a dark file; set ``stall`` and its reads block."""
    data = dark_file(tmp_path).read_bytes()
    with asdf.open(io.BytesIO(data)):  # asdf loads its extensions on the first open: not part of the timing
        pass
    stall, release = threading.Event(), threading.Event()
    monkeypatch.setitem(data_access._OPENERS, "stall", lambda uri: StallingFile(data, stall, release))
    yield stall
    release.set()  # the abandoned read threads finish


def test_an_open_that_stalls_fails_after_the_read_timeout(stalling: threading.Event) -> None:
    stalling.set()
    policy = confined(uri_prefixes=["stall://bucket/"], read_timeout_s=0.5)
    start = time.monotonic()
    error = refused("stall://bucket/wfi11.asdf", policy, r"opening the file took longer than the read timeout "
                    r"of 0.5 s \(inputs.read_timeout_s\); the read was abandoned")  # fmt: skip
    assert time.monotonic() - start < 5
    assert error.source == "stall://bucket/wfi11.asdf"


def test_a_stalled_array_read_in_the_monitor_service_fails_the_file(stalling: threading.Event) -> None:
    config = load_config(inputs={"uri_prefixes": ["stall://bucket/"], "read_timeout_s": 1})
    policy = InputPolicy.service(config.inputs)
    request = {"monitor": "dark", "request_id": "r1", "release": "live", "uri": "stall://bucket/wfi11.asdf"}
    assert compute(DarkMonitor, request, config, policy).identity.detector == "WFI11"  # not stalled: fine

    original = data_access.RomanInput.read_arrays

    def stall_after_open(self, specs):  # type: ignore[no-untyped-def]
        stalling.set()  # the tree is read; the array blocks now hang
        return original(self, specs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_access.RomanInput, "read_arrays", stall_after_open)
        start = time.monotonic()
        with pytest.raises(InputError, match=r"reading array 'dark_slope' took longer than the read timeout of 1 s"):
            compute(DarkMonitor, request, config, policy)
    assert time.monotonic() - start < 5
