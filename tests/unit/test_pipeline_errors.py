"""Errors stay per file and per monitor: a raising monitor or figure never ends a run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from rdmt_core.cli import main
from rdmt_core.config import load_config
from rdmt_core.monitors import monitors_for
from rdmt_core.monitors.astrometry import AstrometryMonitor
from rdmt_core.monitors.dark import DarkMonitor
from rdmt_core.outputs import monitor_figures
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.synthetic import write_dark_delivery
from rdmt_core.synthetic_l2 import L2Scene, write_l2_exposure

START = datetime(2027, 3, 1, tzinfo=UTC)
SIDE = 256


@pytest.fixture(scope="module")
def level2_files(tmp_path_factory):
    """Two realistic Level-2 images (galsim.roman PSFs, a distortion-only gwcs) and their catalogue."""
    directory = tmp_path_factory.mktemp("l2")
    scene = L2Scene(seed=5, star_density=150 / (SIDE - 8) ** 2)
    paths, catalog = write_l2_exposure(directory, START, scene, SIDE, detectors=("WFI03", "WFI04"))
    return paths, catalog


def _config(tmp_path, catalog=None, report=False):
    monitors = {"astrometry": {"options": {"catalog_path": str(catalog)}}} if catalog else {}
    return load_config(
        store_url=f"chdb://{tmp_path / 'store'}",
        output_dir=str(tmp_path / "out"),
        outputs={"ecsv": False, "report": report, "notify": False},
        monitors=monitors,
    )


def _raise_on(monitor, source_part: str, monkeypatch):
    """Make ``monitor.compute`` raise AttributeError on files whose name contains ``source_part``."""
    original = monitor.load_context.__func__

    def load_context(cls, roman, options):
        if source_part in roman.uri:
            raise AttributeError("'Pix2Sky_Gnomonic' object has no attribute '__name__'")
        return original(cls, roman, options)

    monkeypatch.setattr(monitor, "load_context", classmethod(load_context))


def test_realistic_level2_images_go_through_every_monitor(level2_files, tmp_path):
    paths, catalog = level2_files
    with EmbeddedPipeline(_config(tmp_path, catalog, report=True), run_id="realistic") as pipeline:
        summary, outcomes = pipeline.run([str(p) for p in paths])
    assert [o.problem for o in outcomes] == [None, None]
    names = {m.name for m in monitors_for("ImageModel")}
    for outcome in outcomes:
        assert {r.monitor for r in outcome.results} == names
        astrometry = next(r for r in outcome.results if r.monitor == "astrometry")
        assert "status" not in astrometry.notes, astrometry.notes  # measured through the distorted WCS
    assert summary.overview_path


def test_a_raising_monitor_fails_its_file_only_and_the_run_goes_on(level2_files, tmp_path, monkeypatch):
    paths, catalog = level2_files
    _raise_on(AstrometryMonitor, "wfi03", monkeypatch)
    with EmbeddedPipeline(_config(tmp_path, catalog), run_id="raising") as pipeline:
        _, outcomes = pipeline.run([str(p) for p in paths])
    first, second = outcomes
    assert first.problem is not None and not first.problem.skipped
    assert "astrometry raised AttributeError" in first.problem.reason
    assert "Pix2Sky_Gnomonic" in first.problem.reason
    others = {m.name for m in monitors_for("ImageModel")} - {"astrometry"}
    assert {r.monitor for r in first.results} == others  # the file's other monitors are kept
    assert second.problem is None and len(second.results) == len(others) + 1


def test_a_single_monitor_that_raises_is_a_failed_line_and_exit_status_1(tmp_path, monkeypatch):
    paths = write_dark_delivery(tmp_path / "darks", START, side=128, detectors=("WFI01", "WFI02"))
    _raise_on(DarkMonitor, "wfi01", monkeypatch)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "darks"),
            "--store",
            f"chdb://{tmp_path / 'store'}",
            "--output",
            str(tmp_path / "o"),
            "--no-notify",
            "--no-report",
            "--no-ecsv",
        ],
    )
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1 and "wfi01" in failed[0].lower() and "dark raised AttributeError" in failed[0]
    assert "WFI02 DARK" in result.output  # the next file is processed
    assert "1 of 2 files processed" in result.output
    assert len(paths) == 2


def test_a_figure_that_cannot_be_drawn_is_a_note_in_the_report(level2_files, tmp_path, monkeypatch):
    paths, catalog = level2_files

    def broken(result, path):
        raise ValueError("no figure today")

    kind = monitor_figures.FIGURES["offsets"]
    monkeypatch.setitem(monitor_figures.FIGURES, "offsets", monitor_figures.FigureKind(kind.title, broken, kind.needs))
    with EmbeddedPipeline(_config(tmp_path, catalog, report=True), run_id="figure") as pipeline:
        outcome = pipeline.process(str(paths[0]))
    assert outcome.problem is None
    report = next(p for p in outcome.outputs if "astrometry" in p.name)
    text = report.with_suffix(".md").read_text()
    assert "Figure not drawn: could not be drawn (ValueError: no figure today)" in text
    assert not list(report.parent.glob("*astrometry*_offsets.png"))


def test_level2_without_a_catalogue_is_not_measured_wherever_a_user_looks(level2_files, tmp_path, caplog):
    paths, _ = level2_files
    out = tmp_path / "o"
    with caplog.at_level("INFO", logger="rdmt.notify"):  # nothing failed: the notification is only logged
        result = CliRunner().invoke(
            main, ["run", *map(str, paths), "--store", f"chdb://{tmp_path / 'store'}", "--output", str(out)]
        )
    lines = result.output.splitlines()
    astrometry = [line for line in lines if " astrometry: " in line and "ImageModel" in line]
    assert len(astrometry) == 2
    assert all(line.startswith("NOT MEASURED") and "no reference catalogue configured" in line for line in astrometry)
    assert "2 not measured" in result.output
    assert "  not measured: WFI03 astrometry: no reference catalogue configured" in result.output
    # the notification
    assert "astrometry: 2 of 2 detectors not measured" in caplog.text
    assert "astrometry: all 2 detectors passed" not in caplog.text
    assert "Not measured:\n• *WFI03* astrometry" in caplog.text
    # the overview and the file's report
    overview = next((out / "reports").glob("overview_*.md")).read_text()
    assert "## Not measured" in overview and "WFI04 astrometry (ImageModel" in overview
    assert "not measured: astrometry" in overview  # in the detector's overall verdict
    report = next((out / "reports").glob("WFI03_astrometry_*.md")).read_text()
    assert "Overall status: NOT MEASURED (no reference catalogue configured" in report


def test_an_unexpected_error_writing_a_files_outputs_is_that_files_problem(tmp_path, monkeypatch):
    from rdmt_core.pipeline import ResultFiles

    write_dark_delivery(tmp_path / "darks", START, side=128, detectors=("WFI01", "WFI02"))
    original = ResultFiles.write

    def write(self, result):
        if result.identity.detector == "WFI01":
            raise RuntimeError("the report writer broke")
        return original(self, result)

    monkeypatch.setattr(ResultFiles, "write", write)
    config = load_config(
        store_url=f"chdb://{tmp_path / 'store'}", output_dir=str(tmp_path / "out"), outputs={"notify": False}
    )
    with EmbeddedPipeline(config, run_id="writer") as pipeline:
        summary, (first, second) = pipeline.run([str(tmp_path / "darks")])
    assert first.problem is not None and "unexpected RuntimeError: the report writer broke" in first.problem.reason
    assert first.stored == [True]  # stored before the files were written: it belongs to the delivery
    assert second.problem is None and second.outputs
    assert summary.overview_path is not None


def test_a_truncated_level2_file_is_named_once_with_what_to_do(level2_files, tmp_path):
    paths, catalog = level2_files
    data = paths[0].read_bytes()
    truncated = tmp_path / "truncated_cal.asdf"
    truncated.write_bytes(data[: len(data) * 2 // 3])  # the tree is intact, the array blocks are cut
    with EmbeddedPipeline(_config(tmp_path, catalog), run_id="truncated") as pipeline:
        outcome = pipeline.process(str(truncated))
    reason = outcome.problem.reason
    assert reason.startswith("astrometry, background, one_over_f, psf_shape: the file looks truncated or damaged")
    assert reason.count("truncated") == 1 and "copy it again" in reason
    assert outcome.results == []
