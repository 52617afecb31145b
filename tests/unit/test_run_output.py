"""What `rdmt run` prints: each file's lines as soon as it is done, and a summary that counts truthfully."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from rdmt_core.cli.embedded import run_and_report
from rdmt_core.config import load_config
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.synthetic import write_dark_delivery

USEAFTER = datetime(2026, 10, 1, tzinfo=UTC)


def _config(tmp_path: Path):
    return load_config(
        store_url=f"chdb://{tmp_path / 'store'}", output_dir=str(tmp_path / "out"), outputs={"notify": False}
    )


def test_each_files_lines_are_printed_as_soon_as_it_is_done(tmp_path, monkeypatch, capsys):
    write_dark_delivery(tmp_path / "darks", USEAFTER, side=128, detectors=("WFI01", "WFI02", "WFI03"))
    original = EmbeddedPipeline.process
    seen_before: dict[str, str] = {}

    def process(self, source):
        seen_before[source] = capsys.readouterr().out  # what was printed before this file started
        return original(self, source)

    monkeypatch.setattr(EmbeddedPipeline, "process", process)
    assert run_and_report(_config(tmp_path), [str(tmp_path / "darks")], "streamed") == 0
    sources = sorted(seen_before)
    assert "WFI01 DARK" in seen_before[sources[1]]  # WFI01's line was out before WFI02 started
    assert "WFI02 DARK" in seen_before[sources[2]] and "WFI01 DARK" not in seen_before[sources[2]]


def test_the_summary_counts_pass_and_waiting_for_history_apart(tmp_path, capsys):
    write_dark_delivery(tmp_path / "darks", USEAFTER, side=128, detectors=("WFI01", "WFI02"))
    assert run_and_report(_config(tmp_path), [str(tmp_path / "darks")], "first") == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " DARK " in line]
    # a clean first delivery: every value within its limits; change and trend have no history yet
    assert all(line.startswith("PASS ") and line.endswith("no history yet for change/trend") for line in lines), out
    assert "2 of 2 files processed; 2 results (file x monitor): 2 pass; 2 of them wait for history" in out
    assert "INCOMPLETE" not in out
    # the overview: a clean detector passes; change and trend say they have no history yet, not "incomplete", and so
    # does soc, whose new-and-recovered-pixel values wait for an earlier dark
    overview = next((tmp_path / "out" / "reports").glob("overview_first.md")).read_text()
    (row,) = [line for line in overview.splitlines() if line.startswith("| WFI01 |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "pass" and cells[2:6] == ["pass", "no history yet", "no history yet", "no history yet"], cells


def test_an_empty_directory_or_a_missing_path_is_named_and_fails(tmp_path):
    rdmt = str(Path(sys.executable).with_name("rdmt"))
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [rdmt, "run", "empty", "--output", "out", "--no-notify"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc
    assert "rdmt: no *.asdf file found under empty: nothing to monitor" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing created for nothing
    proc = subprocess.run(
        [rdmt, "run", "missing.asdf", "--output", "out", "--no-notify", "--no-report", "--no-ecsv"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc
    assert "FAILED: missing.asdf: file not found" in proc.stderr
    assert "0 of 1 files processed, 1 with errors" in proc.stdout
    assert "overview:" not in proc.stdout and "outputs:" not in proc.stdout  # nothing written, nothing named
