"""The dashboard without a browser: report files confined to their directory, protection, request validation,
the report colours and file names it repeats, and `rdmt serve`'s refusals (the browser tests: tests/browser)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from rdmt_core.cli import main
from rdmt_core.dashboard import queries as q
from rdmt_core.dashboard.app import Settings, create_app
from rdmt_core.dashboard.queries import BadRequest, DashboardStore
from rdmt_core.store import open_store


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "store"
    store = open_store(f"chdb://{path}")  # an empty store with the tables (as a writer leaves it)
    yield DashboardStore(store.backend, store.url)
    store.close()


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "out" / "reports"
    root.mkdir(parents=True)
    (root / "WFI07_dark_DARK_20260401T000000.html").write_text("<p>report</p>")
    (tmp_path / "out" / "ecsv").mkdir()
    (tmp_path / "out" / "ecsv" / "WFI07_dark_DARK_20260401T000000.ecsv").write_text("# %ECSV 1.0\n")
    (tmp_path / "out" / "secret.txt").write_text("secret")
    (root / "link").symlink_to(tmp_path / "out" / "secret.txt")
    return root


def test_report_files_are_confined_to_their_directories(empty_store, reports):
    client = TestClient(create_app(empty_store, Settings(reports=reports)))
    assert client.get("/reports/WFI07_dark_DARK_20260401T000000.html").text == "<p>report</p>"
    assert client.get("/ecsv/WFI07_dark_DARK_20260401T000000.ecsv").text.startswith("# %ECSV")
    for path in (
        "/reports/../secret.txt",
        "/reports/%2e%2e/secret.txt",
        "/reports/..%2fsecret.txt",
        "/reports/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/reports//etc/passwd",
        "/reports/%2fetc%2fpasswd",
        "/reports/link",  # a symlink out of the directory
        "/ecsv/%2e%2e/reports/WFI07_dark_DARK_20260401T000000.html",
        "/reports/",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "secret" not in response.text and "root:" not in response.text


def test_without_reports_no_file_is_served(empty_store):
    client = TestClient(create_app(empty_store, Settings()))
    assert client.get("/reports/anything.html").status_code == 404


def test_bearer_token(empty_store):
    client = TestClient(create_app(empty_store, Settings(token="s3cret")), follow_redirects=False)
    assert client.get("/healthz").status_code == 200  # the probes stay open
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    login = client.get("/trend?token=s3cret&detector=WFI07")
    assert login.status_code == 303 and login.headers["location"] == "/trend?detector=WFI07"
    fresh = TestClient(create_app(empty_store, Settings(token="s3cret")), cookies={"rdmt_token": "s3cret"})
    assert fresh.get("/").status_code == 200


def test_trusted_proxy_user_header(empty_store):
    with TestClient(create_app(empty_store, Settings(user_header="X-Forwarded-User"))) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", headers={"X-Forwarded-User": "alice"}).status_code == 200
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:  # ready once the Now page is warm
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_an_empty_store_and_bad_requests(empty_store):
    client = TestClient(create_app(empty_store, Settings()))
    assert "no file yet" in client.get("/").text
    assert client.get("/detector/WFI99").status_code == 400
    assert client.get("/run/x'; DROP TABLE files").status_code == 400


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (q.monitor_name, "dark' OR 1=1"),
        (q.metric_name, "n_hot_pixels; DROP"),
        (q.detector_name, "WFI19"),
        (q.scale_name, "pixel"),
        (lambda v: q.cell_number("amplifier", v), "0"),
        (lambda v: q.cell_number("superpixel", v), "1024"),
        (lambda v: q.safe_name(v, "release"), "live'"),
        (q.file_key, "DARK/WFI07/2026-04-01T00:00:00.000'"),
        (lambda v: q.timestamp(v, "start"), "yesterday"),
    ],
)
def test_request_values_are_validated(check, value):
    with pytest.raises(BadRequest):
        check(value)


def test_valid_values_pass():
    assert q.file_key("FLAT/WFI07/F158/2026-11-01T00:00:00.000") == "FLAT/WFI07/F158/2026-11-01T00:00:00.000"
    assert q.cell_number("amplifier", "32") == 32
    assert q.parse_duration("35d").days == 35
    assert q.Cadence({"dark": q.parse_duration("2w")}).of("dark").days == 14
    assert q.Cadence().of("psf_shape").days == 2


def test_colours_and_file_names_are_the_reports_own():
    from rdmt_core.dashboard import style
    from rdmt_core.outputs import html, names

    for status, colour in html.STATUS_BACKGROUND.items():
        assert style.STATUS_BACKGROUND[status.value] == colour
        assert style.STATUS_TEXT[status.value] == html.STATUS_TEXT[status]
        assert style.STATUS_LINE[status.value] == html.STATUS_LINE[status]
    t = datetime(2026, 11, 1)
    identity = SimpleNamespace(detector="WFI07", kind="FLAT", optical_element="F158", exposure_mode="", file_time=t)
    result = SimpleNamespace(identity=identity, monitor="flat")
    assert q.file_stem("WFI07", "flat", "FLAT", "F158", "", pd.Timestamp(t)) == names.file_stem(result)


def test_serve_refuses_a_store_that_does_not_exist(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--store", f"chdb://{tmp_path / 'nope'}"])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "nope").exists()
    bad = CliRunner().invoke(main, ["serve", "--store", f"chdb://{tmp_path}", "--cadence", "dark=soon"])
    assert bad.exit_code == 2 and "--cadence" in bad.output


def _file_row(monitor: str, detector: str, t: str, status: str, stored: str) -> dict:
    key = f"{monitor.upper()}/{detector}/{t}T00:00:00.000"
    return {
        "run_id": f"run-{t}", "release": "live", "monitor": monitor, "detector": detector, "kind": monitor.upper(),
        "optical_element": "", "exposure_mode": "", "file_key": key, "file_time": pd.Timestamp(t, tz="UTC"),
        "source": f"/data/{key}", "exposure_type": "", "n_metrics": 1, "n_evaluations": 0, "n_fail": 0,
        "n_caution": 0, "status": status, "stored_at": pd.Timestamp(stored, tz="UTC"),
    }  # fmt: skip


def test_now_grid_marks_what_is_overdue(empty_store):
    """A detector whose last file arrived longer ago than its monitor's cadence is overdue; so is a silent monitor.

    (The module's store, one chDB directory per process: the rows are deleted at the end.)
    """
    import numpy as np

    store = empty_store
    try:
        rows = [
            _file_row("dark", "WFI01", "2026-03-01", "pass", "2026-03-02"),
            _file_row("dark", "WFI07", "2026-01-01", "pass", "2026-01-02"),  # no dark of WFI07 since January
            _file_row("psf_shape", "WFI01", "2026-03-01", "caution", "2026-03-01 12:00"),
        ]
        frame = pd.DataFrame(rows)
        for column in ("n_metrics", "n_evaluations", "n_fail", "n_caution"):
            frame[column] = frame[column].astype(np.uint32)
        store.backend.insert("files", frame)
        dashboard = DashboardStore(store.backend, store.url)
        at = datetime.fromisoformat("2026-03-10T00:00:00+00:00")
        grid = dashboard.now("live", q.Cadence({"dark": q.parse_duration("35d")}), at=at)
        assert grid["cells"][("dark", "WFI01")]["overdue"] is False
        assert grid["cells"][("dark", "WFI07")]["overdue"] is True
        assert grid["cells"][("psf_shape", "WFI01")]["overdue"] is True  # default cadence of an image monitor: 2 days
        assert grid["overdue"] == {"psf_shape"} and grid["monitors"] == ["dark", "psf_shape"]
        html = TestClient(create_app(dashboard, Settings())).get("/").text
        assert html.count("overdue (last") == 3  # every cell: now is long after March 2026's files
    finally:
        store.backend.execute("DELETE FROM rdmt.files WHERE 1")
