"""The ECSV table, the file report and the delivery overview show what the metrics and evaluators found.

Inputs are seeded 256x256 dark frames (8x8-pixel super-pixels) with a 32x32 block of
hot pixels at rows 64..95, columns 128..159: super-pixels rows 8..11 x columns 16..19,
amplifiers 17..20. The block is 1.6 % of the frame, so the detector's 99th percentile
exceeds the mission and SOC limits (0.99 DN/s) while its mean (limit 1 DN/s) does not.
Super-pixel 0 is all NaN.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from rdmt_core.geometry import GRID, SCALES
from rdmt_core.outputs import ReportPaths, write_ecsv, write_overview, write_report
from rdmt_core.outputs.html import STATUS_LINE
from rdmt_core.records import DeliverySummary, FileResult, InputProblem, Status

from .. import builders

SIDE = 256
HOT_ROWS, HOT_COLS = slice(64, 96), slice(128, 160)
HOT_SUPERPIXELS = {row * GRID + col for row in range(8, 12) for col in range(16, 20)}
HOT_AMPLIFIERS = {17, 18, 19, 20}
FILE_TIME = datetime(2026, 2, 1)
STEM = "WFI07_dark_DARK_20260201T000000"
NOTE = "<script>alert('x')</script> & co"


def dark_result(detector: str, seed: int, hot: bool, run_id: str = "run-42") -> FileResult:
    rng = np.random.default_rng(seed)
    dark_slope = rng.normal(0.005, 0.001, (SIDE, SIDE)).astype(np.float32)
    if hot:
        dark_slope[HOT_ROWS, HOT_COLS] = 2.0
    dark_slope[:8, :8] = np.nan  # super-pixel 0 has no finite pixel
    result = builders.dark_result(dark_slope, detector, f"/deliveries/2026-02/{detector}_dark.asdf", FILE_TIME, run_id)
    return dataclasses.replace(result, notes={**result.notes, "comment": NOTE})


@pytest.fixture(scope="module")
def hot() -> FileResult:
    return dark_result("WFI07", seed=7, hot=True)


@pytest.fixture(scope="module")
def written(hot: FileResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ReportPaths]:
    directory = tmp_path_factory.mktemp("outputs")
    return directory, write_ecsv(hot, directory), write_report(hot, directory)


def block(result: FileResult, evaluator: str, metric: str, scale: str):
    (found,) = [b for b in result.evaluations if (b.evaluator, b.metric, b.scale) == (evaluator, metric, scale)]
    return found


def metric(result: FileResult, name: str):
    (found,) = [m for m in result.metrics if m.spec.name == name]
    return found


def markdown_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is ``first_cell``."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0] == first_cell:
            rows.append(cells)
    return rows


def text(column) -> np.ndarray:
    """A string column as plain strings; ECSV reads empty fields back as masked."""
    return np.asarray(column.filled("") if hasattr(column, "filled") else column, dtype=str)


def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def has_colour(path: Path, colour: str) -> bool:
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    return bool((pixels == rgb).all(axis=2).any())


# ---------------------------------------------------------------- ECSV


def test_ecsv_has_every_value_with_every_verdict(hot: FileResult, written) -> None:
    _, path, _ = written
    assert path.name == f"{STEM}.ecsv"
    table = Table.read(path, format="ascii.ecsv")
    assert len(table) == 9 * 1057
    assert table.colnames[:7] == ["detector", "monitor", "metric", "unit", "scale", "cell", "value"]
    for evaluator in ("mission", "soc", "change", "trend"):
        assert {f"{evaluator}_status", f"{evaluator}_reference", f"{evaluator}_reason"} <= set(table.colnames)
    assert set(table["detector"]) == {"WFI07"} and set(table["monitor"]) == {"dark"}

    for m in hot.metrics:
        for scale in SCALES:
            rows = table[(table["metric"] == m.spec.name) & (table["scale"] == scale)]
            assert set(rows["unit"]) == {m.spec.unit}
            np.testing.assert_array_equal(rows["cell"], block(hot, "change", m.spec.name, scale).cells)
            np.testing.assert_array_equal(np.asarray(rows["value"]), m.values.at(scale))  # NaN == NaN here
            for evaluator in ("mission", "soc", "change", "trend"):
                status = text(rows[f"{evaluator}_status"])
                matching = [
                    b for b in hot.evaluations if (b.evaluator, b.metric, b.scale) == (evaluator, m.spec.name, scale)
                ]
                if matching:
                    np.testing.assert_array_equal(status, matching[0].status.astype(str))
                    np.testing.assert_array_equal(np.asarray(rows[f"{evaluator}_reference"]), matching[0].reference)
                    np.testing.assert_array_equal(text(rows[f"{evaluator}_reason"]), matching[0].reason.astype(str))
                else:  # no limit configured (dark_rate_std has no mission/SOC limit): no verdict
                    assert (status == "").all()
                    assert np.isnan(np.asarray(rows[f"{evaluator}_reference"])).all()


def test_ecsv_shows_the_hot_block_and_carries_the_file_metadata(written) -> None:
    _, path, _ = written
    table = Table.read(path, format="ascii.ecsv")
    means = table[(table["metric"] == "dark_rate_mean") & (table["scale"] == "superpixel")]
    failing = set(means["cell"][means["mission_status"] == "fail"])
    assert failing == HOT_SUPERPIXELS
    assert means["mission_reference"][0] == 1.0
    assert np.isnan(means["value"][0]) and means["mission_status"][0] == "incomplete"
    p99 = table[(table["metric"] == "dark_rate_p99") & (table["scale"] == "detector")]
    assert list(p99["mission_status"]) == ["fail"] and list(p99["soc_status"]) == ["fail"]
    assert "above the mission limit 0.99 DN/s" in p99["mission_reason"][0]

    meta = table.meta
    assert meta["source"] == "/deliveries/2026-02/WFI07_dark.asdf"
    assert meta["file_key"] == "DARK/WFI07/2026-02-01T00:00:00.000"
    assert (meta["kind"], meta["monitor"], meta["run_id"], meta["release"]) == ("DARK", "dark", "run-42", "live")
    assert meta["file_time"] == "2026-02-01T00:00:00"
    assert meta["notes"]["comment"] == NOTE
    assert meta["metrics"]["dark_rate_mean"]["astropy_unit"] == "DN / s"
    assert meta["metrics"]["n_hot_pixels"]["extensive"] is True
    assert table["cell"].description.startswith("Cell of the scale")


# ---------------------------------------------------------------- report


def test_report_files_share_the_ecsv_stem(written, hot: FileResult) -> None:
    directory, _, paths = written
    assert paths.markdown == directory / f"{STEM}.md"
    assert paths.html == directory / f"{STEM}.html"
    assert paths.figures == [directory / f"{STEM}_{m.spec.name}.png" for m in hot.metrics]


def test_report_detector_table_has_values_limits_and_statuses(written, hot: FileResult) -> None:
    _, _, paths = written
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert markdown.startswith("# Dark reference file: WFI07 DARK 2026-02-01 00:00:00\n")
    header = "| Metric | Unit | Value | Mission limit | SOC limit | Change tolerance | Status |"
    assert header in markdown

    (mean,) = markdown_rows(markdown, "dark_rate_mean")
    value = metric(hot, "dark_rate_mean").values.detector
    assert mean[1:6] == ["DN/s", f"{value:.6g}", "1", "1", "11%"]
    assert mean[6] == "no history yet (change, trend)"  # first delivery

    (p99,) = markdown_rows(markdown, "dark_rate_p99")
    assert p99[2] == "2" and p99[3] == p99[4] == "0.99"
    assert p99[6].startswith("**fail: mission: 2 DN/s is above the mission limit 0.99 DN/s; soc: ")

    (std,) = markdown_rows(markdown, "dark_rate_std")
    assert std[3] == std[4] == "-"  # no absolute limit configured

    (hot_pixels,) = markdown_rows(markdown, "n_hot_pixels")
    assert hot_pixels[1:5] == ["pixels", "1,024", "1,000,000", "100,000"]

    counts = markdown_rows(markdown, "mission")[0]
    n_fail = sum(int((b.status == "fail").sum()) for b in hot.evaluations if b.evaluator == "mission")
    assert counts[1] == "**fail**" and counts[4] == str(n_fail)
    assert "Overall status: **FAIL**" in markdown


def test_report_amplifier_tables_mark_the_hot_amplifiers(written, hot: FileResult) -> None:
    """One table per metric: compact (4 x 8) when no amplifier is flagged, a row per amplifier otherwise."""
    _, _, paths = written
    markdown = paths.markdown.read_text(encoding="utf-8")
    sections = markdown.split("\n## ")[3:]  # after Status and Detector
    assert [s.split(" ", 1)[0] for s in sections] == [m.spec.name for m in hot.metrics]
    assert "- Amp " not in markdown  # no list of reasons, amplifier by amplifier
    for section, m in zip(sections, hot.metrics, strict=True):
        rows = [line for line in section.splitlines() if re.match(r"\| \d+ \| ", line)]
        cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
        values = m.values.at("amplifier")
        expected = [f"{v:,.0f}" if m.spec.extensive else f"{v:.6g}" for v in values]
        if len(rows) == 8:  # nothing flagged
            assert [int(cells[r][2 * c]) for c in range(4) for r in range(8)] == list(range(1, 33))
            shown = {int(row[i]): row[i + 1] for row in cells for i in (0, 2, 4, 6)}
            assert [shown[amp] for amp in range(1, 33)] == expected
            assert "no amplifier at caution or fail" in section
            marked: set[int] = set()
        else:
            assert len(rows) == 32
            assert "| Amp | Value | mission | soc | change | trend |" in section
            assert [int(row[0]) for row in cells] == list(range(1, 33))
            assert [row[1] for row in cells] == expected
            marked = {int(row[0]) for row in cells if any(c.startswith("**fail") for c in row[2:])}
            assert all(row[4] == "no history yet" for row in cells)  # change: first delivery
        if m.spec.name in ("dark_rate_p95", "dark_rate_p99"):
            assert marked == HOT_AMPLIFIERS
            (amp17,) = [row for row in cells if row[0] == "17"]
            mission = next(
                b for b in hot.evaluations if (b.evaluator, b.metric, b.scale) == ("mission", m.spec.name, "amplifier")
            )
            assert amp17[2] == f"**fail (limit {mission.reference[16]:.6g})**"
        if m.spec.name in ("dark_rate_mean", "dark_rate_median", "n_dead_pixels"):
            assert marked == set()


def test_report_has_a_readable_superpixel_map_per_metric(written, hot: FileResult) -> None:
    _, _, paths = written
    markdown = paths.markdown.read_text(encoding="utf-8")
    html = paths.html.read_text(encoding="utf-8")
    for figure in paths.figures:
        width, height = png_size(figure)
        assert 400 <= width <= 1200 and 300 <= height <= 1000
        assert f"]({figure.name})" in markdown  # relative link
        assert f'<img src="{figure.name}"' in html
    by_name = dict(zip((m.spec.name for m in hot.metrics), paths.figures, strict=True))
    # Failing super-pixels are outlined in the fail colour; a map without failures has none.
    assert has_colour(by_name["dark_rate_mean"], STATUS_LINE[Status.FAIL])
    assert not has_colour(by_name["n_dead_pixels"], STATUS_LINE[Status.FAIL])


def test_report_html_escapes_text_and_colours_statuses(written) -> None:
    _, _, paths = written
    html = paths.html.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html and "<link" not in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    (row,) = [line for line in html.splitlines() if line.startswith("<tr><td>dark_rate_p99</td>")]
    assert '<td class="st-fail">fail: mission: 2 DN/s is above the mission limit 0.99 DN/s' in row
    (row,) = [line for line in html.splitlines() if line.startswith("<tr><td>dark_rate_mean</td>")]
    assert '<td class="st-incomplete">no history yet (change, trend)</td>' in row
    assert ".st-fail { background:" in html and ".st-pass { background:" in html
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "\\<script\\>alert('x')\\</script\\> & co" in markdown


# ---------------------------------------------------------------- overview


def test_overview_shows_every_detector_and_the_failing_one(tmp_path: Path, hot: FileResult) -> None:
    clean = dark_result("WFI03", seed=3, hot=False)
    for result in (hot, clean):
        write_report(result, tmp_path / "reports")
    problems = [
        InputProblem("/deliveries/2026-02/WFI11_dark.asdf", "cannot read array 'dq' (truncated block)"),
        InputProblem("/deliveries/2026-02/WFI12_flat.asdf", "no enabled monitor handles kind 'FLAT'", skipped=True),
    ]
    summary = DeliverySummary("run-42", "live", [hot, clean], problems, str(tmp_path))
    html_path = write_overview(summary, tmp_path / "reports")

    assert html_path == tmp_path / "reports" / "overview_run-42.html"
    html = html_path.read_text(encoding="utf-8")
    markdown = html_path.with_suffix(".md").read_text(encoding="utf-8")
    for detector in (f"WFI{i:02d}" for i in range(1, 19)):
        assert len(markdown_rows(markdown, detector)) == 1
        assert f"<tr><td>{detector}</td>" in html
    assert markdown_rows(markdown, "WFI01")[0][1:6] == ["no file"] * 5

    (wfi07,) = markdown_rows(markdown, "WFI07")
    n_fail = sum(int((b.status == "fail").sum()) for b in hot.evaluations if b.evaluator == "mission")
    # the cells name what failed: the monitor and its evaluators, and the number of failing values
    assert wfi07[1] == "**fail: dark (mission, soc)**" and wfi07[2] == f"**fail ({n_fail:,}): dark**"
    assert wfi07[6] == f"[dark]({STEM}.md)"  # the Markdown page links to the Markdown report
    (wfi03,) = markdown_rows(markdown, "WFI03")
    # super-pixel 0 has no finite pixel: incomplete, not failing
    assert wfi03[1] == "incomplete" and wfi03[2] == "incomplete"
    (row,) = [line for line in html.splitlines() if line.startswith("<tr><td>WFI07</td>")]
    assert '<td class="st-fail">fail: dark (mission, soc)</td>' in row and f'<a href="{STEM}.html">' in row

    for problem in problems:
        assert f"{problem.source}: {problem.reason}" in markdown
    assert "Failed (1):" in markdown and "Skipped (1):" in markdown
    assert "cannot read array &#x27;dq&#x27; (truncated block)" in html

    mosaic = tmp_path / "reports" / "overview_run-42.png"
    width, height = png_size(mosaic)
    assert width >= 1000 and height >= 500
    assert "](overview_run-42.png)" in markdown and '<img src="overview_run-42.png"' in html
    assert has_colour(mosaic, STATUS_LINE[Status.FAIL])  # the failing detector's frame and title


def test_overview_without_results_still_lists_all_detectors(tmp_path: Path) -> None:
    summary = DeliverySummary("empty run", "live", [], [], str(tmp_path))
    html_path = write_overview(summary, tmp_path)
    assert html_path.name == "overview_empty-run.html"
    markdown = html_path.with_suffix(".md").read_text(encoding="utf-8")
    assert sum(len(markdown_rows(markdown, f"WFI{i:02d}")) for i in range(1, 19)) == 18
    assert "None: every input file was monitored." in markdown
    png_size(tmp_path / "overview_empty-run.png")


def test_files_that_differ_only_in_optical_element_get_their_own_reports_and_series(tmp_path: Path) -> None:
    """Two flats of one detector and one time: two reports, each linked only within its own filter."""
    base = dark_result("WFI05", seed=5, hot=False)
    results = {
        element: dataclasses.replace(
            base, identity=dataclasses.replace(base.identity, kind="FLAT", optical_element=element)
        )
        for element in ("F158", "F087")
    }
    later = dataclasses.replace(
        results["F158"],
        identity=dataclasses.replace(results["F158"].identity, file_time=datetime(2026, 3, 1)),
    )
    for result in (*results.values(), later):
        write_report(result, tmp_path)
    f158, f087 = (tmp_path / f"WFI05_dark_FLAT_{e}_20260201T000000.md" for e in ("F158", "F087"))
    assert f158.is_file() and f087.is_file()
    assert "- Optical element: F158" in f158.read_text(encoding="utf-8")
    assert "(WFI05_dark_FLAT_F158_20260301T000000.md)" in f158.read_text(encoding="utf-8")
    assert "no later file in this directory" in f087.read_text(encoding="utf-8")  # F158's later file is not F087's
    summary = DeliverySummary("run-7", "live", list(results.values()), [], str(tmp_path))
    overview = write_overview(summary, tmp_path).with_suffix(".md").read_text(encoding="utf-8")
    assert "[dark F087 2026-02-01 00:00:00](WFI05_dark_FLAT_F087_20260201T000000.md)" in overview
