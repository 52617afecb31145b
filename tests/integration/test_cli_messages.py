"""Messages a user meets on a typo: the rdmt command as a user runs it (subprocess, exit codes, messages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RDMT = str(Path(sys.executable).with_name("rdmt"))


def _rdmt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([RDMT, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_a_config_key_typo_gets_the_key_it_meant(tmp_path):
    (tmp_path / "my.yaml").write_text(
        "store_ur: chdb://x\noutputs: {stroe: true}\nmonitors:\n  dark:\n    evaluators:\n"
        "      change: {tolerence: 0.2}\n"
    )
    proc = _rdmt("run", "nothing", "--config", "my.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert "store_ur: Extra inputs are not permitted (did you mean 'store_url'?)" in proc.stderr
    assert "outputs.stroe: Extra inputs are not permitted (did you mean 'store'?)" in proc.stderr
    assert "monitors.dark.evaluators.change.tolerence: Extra inputs are not permitted (did you mean 'tolerance'?)" in (
        proc.stderr
    )


def test_a_monitor_options_typo_and_an_unknown_monitor_get_suggestions(tmp_path):
    (tmp_path / "options.yaml").write_text("monitors:\n  dark:\n    options: {hot_frm: 3}\n")
    proc = _rdmt("run", "nothing", "--config", "options.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert "dark.options: hot_frm: Extra inputs are not permitted (did you mean 'hot_from'?)" in proc.stderr
    (tmp_path / "monitor.yaml").write_text("monitors:\n  darkk: {enabled: true}\n")
    proc = _rdmt("run", "nothing", "--config", "monitor.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert "unknown monitor 'darkk'" in proc.stderr and "did you mean 'dark'?" in proc.stderr


def test_a_metric_name_typo_in_history_gets_the_metric_it_meant(tmp_path):
    proc = _rdmt("history", "--monitor", "dark", "--metric", "n_hot_pixel", "--detector", "WFI01", cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert "monitor 'dark' has no metric 'n_hot_pixel' (did you mean 'n_hot_pixels'?)" in proc.stderr
    assert not (tmp_path / "rdmt-output").exists()  # refused before any store is touched
