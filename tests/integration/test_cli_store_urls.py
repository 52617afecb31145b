"""Store URLs that cannot go wrong silently: the rdmt command as a user runs it (subprocess, exit codes, messages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RDMT = str(Path(sys.executable).with_name("rdmt"))


def _rdmt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([RDMT, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_a_bare_path_or_a_one_slash_chdb_url_is_refused_and_nothing_is_created(tmp_path):
    for url, hint in (("notaurl", "use chdb://notaurl"), ("chdb:/x", "chdb:///x for an absolute one")):
        proc = _rdmt("sql", "--store", url, "SELECT 1", cwd=tmp_path)
        assert proc.returncode == 2, proc
        assert proc.stderr.startswith("rdmt: error: store") and hint in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no folder named after the typo
    assert not Path("/x").exists()


def test_read_commands_refuse_a_store_that_does_not_exist(tmp_path):
    for command in (["sql", "SELECT count() FROM metrics"],
                    ["history", "--monitor", "dark", "--metric", "n_hot_pixels", "--detector", "WFI01"]):  # fmt: skip
        proc = _rdmt(*command, "--store", "chdb://typo/store", cwd=tmp_path)
        assert proc.returncode == 2, proc
        assert "store chdb://typo/store does not exist" in proc.stderr and str(tmp_path / "typo") in proc.stderr
    assert not (tmp_path / "typo").exists()


def test_a_store_path_that_is_a_file_says_so(tmp_path):
    (tmp_path / "image.asdf").write_text("not a store")
    proc = _rdmt("run", str(tmp_path / "image.asdf"), "--store", "chdb://image.asdf", cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert f"{tmp_path / 'image.asdf'} is a file, not a store directory" in proc.stderr
    assert "Errno" not in proc.stderr


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    proc = _rdmt("sql", "--store", "clickhouse://rdmt:s3cret@127.0.0.1:9/qa", "SELECT 1", cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert proc.stderr.strip().splitlines() == [
        "rdmt: error: store clickhouse://rdmt@127.0.0.1:9/qa: cannot reach the ClickHouse server (Connection "
        "refused); check the host and port (8123 for HTTP, 8443 for HTTPS) and that the server is running"
    ]


def test_output_places_the_default_store_inside_it(tmp_path):
    from datetime import UTC, datetime

    from rdmt_core.synthetic import write_dark_delivery

    write_dark_delivery(tmp_path / "darks", datetime(2026, 10, 1, tzinfo=UTC), side=128, detectors=("WFI01",))
    proc = _rdmt("run", "darks", "--output", "out", "--no-notify", "--no-report", "--no-ecsv", cwd=tmp_path)
    assert proc.returncode == 0, proc
    assert "store:    chdb://out/store" in proc.stdout
    assert (tmp_path / "out" / "store").is_dir() and not (tmp_path / "rdmt-output").exists()
    # and the read commands find it there
    proc = _rdmt(
        "sql", "--store", "chdb://out/store", "--format", "csv", "SELECT count() AS n FROM files", cwd=tmp_path
    )
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines()[-1] == "1"
