"""The dashboard in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium) as a scientist would.

The store is built with the real pipeline (tests/dashboard_store.py: darks of WFI01, WFI07, WFI12 at four
useafters, WFI07 with a hot-pixel cluster in the last, and a reprocessing release), then ``rdmt serve``
runs as a subprocess on a free port. Each step asserts what is on the page and that the browser console
has no error, and saves a screenshot under the test's tmp path; with ``RDMT_DOCS_SCREENSHOTS=1`` the final
ones are also copied to docs/dashboard/ for the documentation (a plain test run writes nothing in the
repository). Chromium is installed by scripts/install-browser.sh (``make test`` runs it).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import dashboard_store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # without these, Chromium's connections are refused on a closed network
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"

UPDATE_DOCS = os.environ.get("RDMT_DOCS_SCREENSHOTS") == "1"


@pytest.fixture(scope="module", autouse=True)
def _chromium_is_installed() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh (make test runs it)", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[str, Path]:
    """The store and reports directory, built in a subprocess (its chDB session ends with it)."""
    reuse = os.environ.get("RDMT_TEST_DASHBOARD_ROOT")  # a store built earlier, for quick local iterations
    if reuse and Path(reuse, "store").is_dir():
        return f"chdb://{Path(reuse) / 'store'}", Path(reuse) / "out" / "reports"
    root = tmp_path_factory.mktemp("dashboard")
    subprocess.run([sys.executable, "-m", "tests.dashboard_store", str(root)], check=True, timeout=900,
                   cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    return f"chdb://{root / 'store'}", root / "out" / "reports"


@pytest.fixture(scope="module")
def server(built, tmp_path_factory):
    store_url, reports = built
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log = log_path.open("w")
    rdmt = Path(sys.executable).parent / "rdmt"
    proc = subprocess.Popen(
        [
            str(rdmt),
            "serve",
            "--store",
            store_url,
            "--port",
            str(port),
            "--reports",
            str(reports),
            "--cadence",
            "dark=3650d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail(f"rdmt serve did not start: {log_path.read_text()}")
            time.sleep(0.3)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("response", lambda r: page.console_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.shots = tmp_path / "screenshots"
    page.shots.mkdir()
    yield page
    context.close()


def _shot(page, name: str, docs: bool = False) -> None:
    path = page.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and UPDATE_DOCS:
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / f"{name}.png")


FIGURES = (
    "Bokeh.documents.map(d => [...d.all_models].filter(m => m.type === 'Figure').length).reduce((a, b) => a + b, 0)"
)


def _plots_drawn(page, n: int = 1) -> int:
    """Bokeh has rendered its documents (a view per root), with at least ``n`` figures; their number."""
    page.wait_for_function(
        "window.Bokeh !== undefined && Bokeh.documents.length > 0 && Object.keys(Bokeh.index).length > 0 "
        f"&& {FIGURES} >= {n}",
        timeout=20_000,
    )
    return page.evaluate(FIGURES)


def test_a_scientist_clicks_through(page, server):
    # 1. Now: the grid of the 18 detectors by monitor; WFI07 fails, WFI02 has no file
    page.goto(server + "/")
    grid = page.locator("#now-grid")
    assert grid.locator("tr").count() == 19  # header + 18 detectors
    cell = grid.locator('td[data-detector="WFI07"][data-monitor="dark"]')
    assert cell.get_attribute("data-status") == "fail"
    assert "soc" in cell.inner_text() and "change" in cell.inner_text()
    assert grid.locator('td[data-detector="WFI02"]').first.inner_text() == "no file"
    assert "overdue" not in grid.inner_text()
    _shot(page, "now", docs=True)

    # 2. the failing cell: the detector page with the monitor's verdicts and small trends
    cell.locator("a").click()
    page.wait_for_url("**/detector/WFI07**")
    assert page.locator("figure.spark svg polyline").count() == 6  # small trends, failing metrics first
    assert "n_new_hot 576" in " ".join(page.locator("figure.spark figcaption").all_inner_texts())
    assert page.locator("h1").inner_text() == "Detector WFI07"
    row = page.locator('table.verdicts tr[data-metric="n_new_hot"]')
    assert "above the soc limit" in row.inner_text()
    assert page.locator("a.report").count() >= 1 and page.locator("a.ecsv").count() >= 1
    assert not page.console_errors, page.console_errors
    _shot(page, "detector", docs=True)

    # 3. the report link opens the file's report, served from --reports
    with page.expect_navigation():
        page.locator("a.report").first.click()
    assert "/reports/WFI07_dark_DARK_20260401T000000.html" in page.url
    assert "WFI07" in page.content()
    page.go_back()

    # 4. a metric's trend, from its row: the values, the limits, the failing point
    page.locator('table.verdicts tr[data-metric="n_new_hot"] a').click()
    page.wait_for_url("**/trend?**")
    _plots_drawn(page)
    assert "n_new_hot" in page.locator("h1").inner_text()
    text = page.locator("body").inner_text()
    assert "1 failing" in text
    # several detectors overlaid: tick WFI01 and WFI12 too, and show
    page.check('#detectors input[value="WFI01"]')
    page.check('#detectors input[value="WFI12"]')
    page.click("#trend-form button[type=submit]")
    page.wait_for_load_state()
    _plots_drawn(page)
    assert "detector=WFI01" in page.url and "detector=WFI12" in page.url
    assert not page.console_errors, page.console_errors
    _shot(page, "trend", docs=True)

    # zoom: the mouse wheel over the plot narrows its time axis (the wheel-zoom tool is active)
    x_range = "(() => { const f = [...Bokeh.documents[0].all_models].find(m => m.type === 'Figure'); " \
              "return [f.x_range.start, f.x_range.end]; })()"  # fmt: skip
    before = page.evaluate(x_range)
    box = page.locator("#trend-plot canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"JSON.stringify({x_range}) !== JSON.stringify({before})", timeout=10_000)
    after = page.evaluate(x_range)
    assert after[1] - after[0] < before[1] - before[0]

    # the CSV of what the plot shows, with the limits and statuses
    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["detector"] for r in rows} == {"WFI01", "WFI07", "WFI12"}
    assert len(rows) == 3 * 4  # (the first file of each has no previous masks: an empty value)
    failing = [r for r in rows if r["status"] == "fail"]
    assert [(r["detector"], r["failing"]) for r in failing] == [("WFI07", "soc")]
    assert all(float(r["soc_limit"]) == 200 for r in rows if r["soc_limit"])

    # 5. the release selector: live and the reprocessing release side by side
    page.check(f'#releases input[value="{dashboard_store.REPROCESSING}"]')
    page.click("#trend-form button[type=submit]")
    page.wait_for_load_state()
    assert _plots_drawn(page, 2) == 2  # one panel per release
    assert not page.console_errors, page.console_errors
    _shot(page, "trend-releases", docs=True)


def test_run_page_links_every_report_and_ecsv(page, server):
    page.goto(server + "/runs")
    page.locator("a", has_text="live-delivery-4").click()
    page.wait_for_url("**/run/live-delivery-4**")
    table = page.locator("#run-table")
    assert table.locator('tr[data-detector="WFI07"] td').nth(2).inner_text() == "fail"
    assert page.locator("#run-table a.report").count() == 3
    assert page.locator("#run-table a.ecsv").count() == 3
    assert page.locator("#overview").count() == 1
    assert "no file" in table.locator("tr", has_text="WFI02").inner_text()
    _shot(page, "run", docs=True)
    with page.expect_download() as download:
        page.locator('tr[data-detector="WFI07"] a.ecsv').click()
    assert "# %ECSV" in Path(download.value.path()).read_text()[:200]
    assert not page.console_errors, page.console_errors


def test_superpixel_map_and_ratio(page, server):
    page.goto(server + "/map?monitor=dark&detector=WFI07&metric=n_hot_pixels")
    _plots_drawn(page, 2)
    assert "ratio to the previous file (2026-03-01 00:00)" in page.content()
    assert not page.console_errors, page.console_errors
    _shot(page, "map", docs=True)
    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 1024
    assert sum(r["status"] == "fail" for r in rows) >= 1
    assert max(float(r["value"]) for r in rows) > 50  # the hot cluster


def test_bokeh_javascript_is_served_locally(server):
    html = urllib.request.urlopen(server + "/trend?detector=WFI07").read().decode()
    assert "cdn.bokeh.org" not in html and "/static/bokeh/js/bokeh.min.js" in html
    with urllib.request.urlopen(server + "/static/bokeh/js/bokeh.min.js") as response:
        assert response.status == 200 and len(response.read()) > 100_000
