"""The reports and overviews of the demo's files point at the problem.

Two dark deliveries as the demo makes them (WFI12's dark current x1.4 in the second) and the
demo's Level-2 exposure of WFI04 (its WCS off by 0.12, -0.08 arcsec), at the demo's smallest
documented size, through the embedded pipeline as ``rdmt run`` does:

- a change failure is drawn as the ratio to the previous file, not as red outlines over the values;
- a report links to its run's overview and to the previous and next file of its identity (the
  earlier report is rewritten to link forward), Markdown pages to Markdown pages;
- figure file names never repeat within a report;
- a monitor with no super-pixel value says so once, and draws no empty map;
- the overview's mosaic frames a detector that fails only at the detector or amplifier scale.
"""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdmt_core.cli.demo import EXPOSURE, SMOKE_BELOW, deliveries, exposure_injections
from rdmt_core.config import load_config
from rdmt_core.outputs.figures import DetectorFailures, failure_mosaic
from rdmt_core.outputs.html import STATUS_LINE
from rdmt_core.outputs.overview import FOCAL_PLANE_COLUMNS
from rdmt_core.outputs.report import change_map
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.records import Status
from rdmt_core.synthetic import write_dark_delivery

SIDE = SMOKE_BELOW  # the demo's smallest size whose verdicts mean something
RED = STATUS_LINE[Status.FAIL]


def has_colour(path: Path, colour: str) -> bool:
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    return bool((pixels == rgb).all(axis=2).any())


@pytest.fixture(scope="module")
def dark_runs(tmp_path_factory) -> Path:
    """Both demo dark deliveries of WFI03 (clean), WFI07 (hot cluster) and WFI12 (x1.4), stored and reported."""
    root = tmp_path_factory.mktemp("demo-darks")
    config = load_config(
        None, store_url=f"chdb://{root / 'store'}", output_dir=str(root / "out"), outputs={"notify": False}
    )
    for seed, (run_id, useafter, anomalies) in enumerate(deliveries(SIDE), start=1):
        inputs = root / run_id
        write_dark_delivery(
            inputs, useafter, side=SIDE, delivery_seed=seed, anomalies=anomalies, detectors=("WFI03", "WFI07", "WFI12")
        )
        with EmbeddedPipeline(config, run_id=run_id) as pipeline:
            summary, _ = pipeline.run([inputs])
        assert not summary.problems
    return root / "out" / "reports"


def _report(reports: Path, detector: str, month: str) -> tuple[str, str]:
    stem = reports / f"{detector}_dark_DARK_2026{month}01T000000"
    return stem.with_suffix(".md").read_text(encoding="utf-8"), stem.with_suffix(".html").read_text(encoding="utf-8")


def test_a_change_failure_is_drawn_as_the_ratio_to_the_previous_file(dark_runs: Path) -> None:
    markdown, html = _report(dark_runs, "WFI12", "11")
    stem = "WFI12_dark_DARK_20261101T000000"
    value_map, ratio_map = (
        dark_runs / f"{stem}_dark_rate_mean.png",
        dark_runs / f"{stem}_dark_rate_mean-vs-previous.png",
    )
    assert f"]({ratio_map.name})" in markdown and f'<img src="{ratio_map.name}"' in html
    # every super-pixel rose by 40 %: the change verdicts are on the ratio map, and the value map stays readable
    assert has_colour(ratio_map, RED)
    assert not has_colour(value_map, RED)
    assert "1024 super-pixels failing the change test outlined in red" in markdown
    # the amplifier table gives the change in percent in the change column
    section = markdown.split("## dark_rate_mean")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert len(rows) == 32
    changes = [float(re.search(r"fail: ([+-][\d.]+)%", row).group(1)) for row in rows]
    assert np.allclose(changes, 40.0, atol=2.0)
    # the clean detector's report draws no ratio map: nothing changed beyond the tolerance
    assert not list(dark_runs.glob("WFI03_*-vs-previous.png"))


def test_the_demo_s_hot_cluster_is_in_a_smaller_frame_too(dark_runs: Path) -> None:
    markdown, _ = _report(dark_runs, "WFI07", "11")
    assert "Overall status: **FAIL**" in markdown
    assert re.search(r"\| n_hot_pixels \|.*\*\*fail", markdown)


def test_a_new_hot_cluster_is_drawn_as_the_difference_from_the_previous_file(dark_runs: Path) -> None:
    """Counts rise from 0 in the cluster's super-pixels: no ratio there, so the map is the difference."""
    markdown, _ = _report(dark_runs, "WFI07", "11")
    stem = "WFI07_dark_DARK_20261101T000000"
    difference = dark_runs / f"{stem}_n_hot_pixels-vs-previous.png"
    assert difference.is_file() and has_colour(difference, RED)
    section = markdown.split("## n_hot_pixels")[1].split("\n## ")[0]
    assert "The difference from the previous file of this identity in each super-pixel" in section


def test_the_comparison_map_reads_a_rise_from_zero_and_a_steady_zero() -> None:
    values, previous = np.array([0.0, 5.0, 2.0, np.nan, -6.0]), np.array([0.0, 0.0, 4.0, 1.0, -3.0])
    ratio = change_map(values, previous, difference=False)
    assert ratio[0] == 1.0 and ratio[1] == np.inf and ratio[2] == 0.5 and np.isnan(ratio[3])
    assert list(change_map(values, previous, difference=True))[:3] == [0.0, 5.0, -2.0]


def test_figure_names_never_repeat_within_a_report(dark_runs: Path) -> None:
    for page in dark_runs.glob("WFI*.md"):
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8"))
        assert images and len(images) == len(set(images)), page.name
        assert all((dark_runs / name).is_file() for name in images)


def test_reports_link_to_their_overview_and_to_the_previous_and_next_file(dark_runs: Path) -> None:
    first_md, first_html = _report(dark_runs, "WFI12", "10")
    second_md, second_html = _report(dark_runs, "WFI12", "11")
    first, second = "WFI12_dark_DARK_20261001T000000", "WFI12_dark_DARK_20261101T000000"
    # the later report links back; the earlier one was rewritten to link forward
    assert f"[← previous file (2026-10-01 00:00:00)]({first}.md)" in second_md
    assert "no later file in this directory" in second_md
    assert f"[next file (2026-11-01 00:00:00) →]({second}.md)" in first_md
    assert "no earlier file in this directory" in first_md
    assert f'<a href="{second}.html">next file' in first_html and f'<a href="{first}.html">' in second_html
    # each links to the overview of its own run, which exists
    for markdown, html, run_id in (
        (first_md, first_html, "demo-delivery-1"),
        (second_md, second_html, "demo-delivery-2"),
    ):
        assert f"[the overview of run {run_id}](overview_{run_id}.md)" in markdown
        assert f'<a href="overview_{run_id}.html">' in html
        assert (dark_runs / f"overview_{run_id}.md").is_file() and (dark_runs / f"overview_{run_id}.html").is_file()
    # the series of one detector never links to another detector's reports
    clean_md, _ = _report(dark_runs, "WFI03", "11")
    assert "WFI12_" not in clean_md


def test_the_overview_links_markdown_to_markdown_and_names_the_monitor(dark_runs: Path) -> None:
    markdown = (dark_runs / "overview_demo-delivery-2.md").read_text(encoding="utf-8")
    html = (dark_runs / "overview_demo-delivery-2.html").read_text(encoding="utf-8")
    assert "[dark](WFI12_dark_DARK_20261101T000000.md)" in markdown and ".html)" not in markdown
    assert '<a href="WFI12_dark_DARK_20261101T000000.html">dark</a>' in html


def test_a_monitor_without_superpixel_values_says_so_once_and_draws_no_empty_map(tmp_path: Path) -> None:
    from rdmt_core.synthetic_l2 import L2Scene, field_catalog, l2_model

    detector, start = "WFI04", EXPOSURE[1].replace(tzinfo=UTC)
    scene = L2Scene(seed=4)
    table = field_catalog(scene, SIDE, (detector,))
    model, _ = l2_model(detector, start, table, scene, SIDE, injection=exposure_injections()[detector])
    model.save(tmp_path / "wfi04_cal.asdf")
    table.write(tmp_path / "catalog.ecsv", format="ascii.ecsv")
    config = load_config(
        output_dir=str(tmp_path / "out"),
        outputs={"store": False, "notify": False, "ecsv": False},
        monitors={
            "astrometry": {"options": {"catalog_path": str(tmp_path / "catalog.ecsv")}},
            **{name: {"enabled": False} for name in ("background", "one_over_f", "psf_shape")},
        },
    )
    with EmbeddedPipeline(config, run_id="exposure") as pipeline:
        outcome = pipeline.process(str(tmp_path / "wfi04_cal.asdf"))
    (result,) = outcome.results
    assert result.verdict == "fail"  # the shifted WCS is found at the detector scale
    reports = tmp_path / "out" / "reports"
    (page,) = reports.glob("WFI04_astrometry_*.md")
    markdown = page.read_text(encoding="utf-8")
    empty = [m.spec.name for m in result.metrics if not np.isfinite(m.values.superpixel).any()]
    assert "offset_median" in empty
    assert markdown.count("No super-pixel values (at most ") == 1
    assert re.search(r"No super-pixel values \(at most \d+ matched stars in a super-pixel, 5 needed\)", markdown)
    for name in empty:
        assert not list(reports.glob(f"*_{name}.png")), name
    assert list(reports.glob("*_n_matched.png"))  # the count of matched stars is a real map


def test_the_mosaic_frames_a_detector_that_fails_only_at_the_detector_or_amplifier_scale(tmp_path: Path) -> None:
    quiet = np.zeros(1024, dtype=np.int64)
    amplifier_only = np.zeros(32, dtype=np.int64)
    amplifier_only[16] = 3
    failures = {
        "WFI04": DetectorFailures(detector=2, amplifier=np.zeros(32, dtype=np.int64), superpixel=quiet),
        "WFI09": DetectorFailures(detector=0, amplifier=amplifier_only, superpixel=quiet),
        **{f"WFI{i:02d}": DetectorFailures(0, np.zeros(32, dtype=np.int64), quiet) for i in (1, 2, 3)},
    }
    assert failures["WFI04"].describe() == "detector"
    assert failures["WFI09"].describe() == "1 amp"
    assert failures["WFI01"].describe() == "no failure"
    path = tmp_path / "mosaic.png"
    failure_mosaic(failures, FOCAL_PLANE_COLUMNS, path, title="t")
    assert has_colour(path, RED)  # frames (and the amplifier's hatching) in the fail colour
    calm = tmp_path / "calm.png"
    failure_mosaic({d: failures[d] for d in ("WFI01", "WFI02", "WFI03")}, FOCAL_PLANE_COLUMNS, calm, title="t")
    assert not has_colour(calm, RED)
