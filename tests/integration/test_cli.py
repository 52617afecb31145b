"""The rdmt command line on real files: main job, SQL, history, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest
from click.testing import CliRunner
from roman_datamodels import datamodels as dm

from rdmt_core.cli import main
from rdmt_core.monitors import get_monitor
from rdmt_core.synthetic import dark_model

from ..conftest import USEAFTER_1

N_DARK = len(get_monitor("dark").metric_specs)  # the dark monitor's metrics, its pixel changes included


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _quiet(tmp_path: Path, store_url: str) -> list[str]:
    return ["--store", store_url, "--output", str(tmp_path / "out"), "--no-notify"]


def test_run_stores_reports_and_queries(tmp_path, store_url, two_deliveries):
    first, second = two_deliveries
    code, out, err = _run("run", *_quiet(tmp_path, store_url), "--run-id", "r1", str(first[0].parent))
    assert code == 0, err
    assert "3 of 3 files processed" in out
    code, out, err = _run("run", *_quiet(tmp_path, store_url), "--run-id", "r2", str(second[0].parent))
    assert code == 0, err
    assert "failed: WFI07 dark" in out and "overview:" in out
    reports = list((tmp_path / "out" / "reports").glob("*.html"))
    assert len(reports) == 3 * 2 + 2  # a report per file and an overview per delivery
    assert len(list((tmp_path / "out" / "ecsv").glob("*.ecsv"))) == 6

    code, out, _ = _run(
        "sql",
        "--store",
        store_url,
        "--format",
        "json",
        "SELECT detector, count() AS n FROM rdmt.metrics GROUP BY detector ORDER BY detector",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [{"detector": d, "n": 2 * N_DARK * 1057} for d in ("WFI01", "WFI07", "WFI12")]

    code, out, _ = _run(
        "history",
        "--store",
        store_url,
        "--monitor",
        "dark",
        "--metric",
        "n_hot_pixels",
        "--detector",
        "WFI07",
        "--scale",
        "superpixel",
        "--format",
        "csv",
    )
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 1 + 2 * 1024
    cluster = [line for line in lines if ",340," in line]
    assert cluster[-1].split(",")[4] == "256.0" and cluster[-1].endswith("fail,r2")


def test_rerun_with_same_run_id_is_idempotent(tmp_path, store_url, two_deliveries):
    first, _ = two_deliveries
    args = [
        "run",
        *_quiet(tmp_path, store_url),
        "--run-id",
        "same",
        "--no-report",
        "--no-ecsv",
        str(first[0]),
    ]
    assert _run(*args)[0] == 0
    code, out, _ = _run(*args)
    assert code == 0 and "already stored" in out
    _, out, _ = _run("sql", "--store", store_url, "--format", "csv", "SELECT count() FROM rdmt.metrics")
    assert out.strip().splitlines()[-1] == str(N_DARK * 1057)


@pytest.fixture
def bad_inputs(tmp_path: Path, two_deliveries) -> dict[str, Path]:
    good = two_deliveries[0][0]
    bad = tmp_path / "bad"
    bad.mkdir()
    files = {"good": good}
    files["missing"] = bad / "missing.asdf"
    files["not_asdf"] = bad / "notes.asdf"
    files["not_asdf"].write_text("this is not ASDF\n")
    files["no_roman"] = bad / "plain.asdf"
    asdf.AsdfFile({"data": np.arange(4)}).write_to(files["no_roman"])
    files["unsupported"] = bad / "apcorr.asdf"  # no monitor for aperture corrections
    dm.ApcorrRefModel.create_fake_data().save(files["unsupported"])
    files["truncated"] = bad / "truncated.asdf"
    shutil.copy(good, files["truncated"])
    with open(files["truncated"], "r+b") as handle:
        handle.truncate(files["truncated"].stat().st_size * 2 // 3)
    files["wrong_shape"] = bad / "wrong_shape.asdf"
    model = dark_model("WFI02", USEAFTER_1, side=64)
    model.dark_slope = np.full((100, 100), 0.005, dtype=np.float32)
    model.dark_slope_error = np.zeros((100, 100), dtype=np.float32)
    model.dq = np.zeros((100, 100), dtype=np.uint32)
    model.save(files["wrong_shape"])
    files["wrong_dtype"] = bad / "wrong_dtype.asdf"
    # an untagged Roman-like tree, so the schema cannot stop the wrong dtype from being written
    meta = {
        "reftype": "DARK",
        "instrument": {"name": "WFI", "detector": "WFI02"},
        "useafter": "2026-01-01T00:00:00",
    }
    asdf.AsdfFile(
        {
            "roman": {
                "meta": meta,
                "dark_slope": np.zeros((64, 64), np.float32),
                "dq": np.zeros((64, 64), np.float32),
            }
        }
    ).write_to(files["wrong_dtype"])
    return files


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("missing", "file not found"),
        ("not_asdf", "not a readable ASDF file"),
        ("no_roman", "no Roman metadata"),
        ("unsupported", "no enabled monitor handles kind 'APCORR'"),
        ("truncated", "the file looks truncated or damaged: its array 'dark_slope' cannot be read"),
        ("wrong_shape", "side divisible by 32"),
        ("wrong_dtype", "array 'dq' has dtype float32"),
    ],
)
def test_each_bad_input_is_named_and_the_rest_is_processed(tmp_path, store_url, bad_inputs, name, expected):
    args = [
        "run",
        *_quiet(tmp_path, store_url),
        "--run-id",
        "bad",
        str(bad_inputs[name]),
        str(bad_inputs["good"]),
    ]
    code, out, err = _run(*args)
    assert code == 1
    line = next(line for line in err.splitlines() if str(bad_inputs[name]) in line)
    assert expected in line
    assert line.startswith("skipped:" if name == "unsupported" else "FAILED:")
    assert "1 of 2 files processed" in out
    _, sql_out, _ = _run(
        "sql",
        "--store",
        store_url,
        "--format",
        "csv",
        "SELECT DISTINCT source FROM rdmt.metrics UNION ALL SELECT DISTINCT source FROM rdmt.evaluations",
    )
    assert set(sql_out.split()[1:]) == {str(bad_inputs["good"])}  # nothing partial from the bad file


def test_invalid_config_file_exits_2_naming_key_and_value(tmp_path, store_url, two_deliveries):
    config = tmp_path / "bad.yaml"
    config.write_text("monitors:\n  dark:\n    evaluators:\n      soc: {caution_fraction: 7}\n")
    code, _, err = _run(
        "run", "--config", str(config), *_quiet(tmp_path, store_url), str(two_deliveries[0][0])
    )
    assert code == 2
    assert str(config) in err and "monitors.dark.evaluators.soc.caution_fraction" in err and "7" in err


def test_unreachable_store_exits_2(tmp_path, two_deliveries):
    code, _, err = _run(
        "run",
        "--store",
        "clickhouse://u:pw@127.0.0.1:9/rdmt",
        "--output",
        str(tmp_path),
        str(two_deliveries[0][0]),
    )
    assert code == 2 and "cannot reach" in err and "pw@" not in err


def test_unknown_metric_in_history(store_url):
    code, _, err = _run(
        "history", "--store", store_url, "--monitor", "dark", "--metric", "nope", "--detector", "WFI01"
    )
    assert code == 2 and "no metric 'nope'" in err
    code, _, err = _run(
        "history", "--store", store_url, "--monitor", "biass", "--metric", "x", "--detector", "WFI01"
    )
    assert code == 2 and "unknown monitor 'biass'" in err


def test_rdmt_is_a_real_command(tmp_path, store_url, two_deliveries):
    rdmt = Path(sys.executable).with_name("rdmt")
    proc = subprocess.run(
        [
            str(rdmt),
            "run",
            *_quiet(tmp_path, store_url),
            "--no-report",
            str(two_deliveries[0][0]),
            "/no/such.asdf",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "FAILED: /no/such.asdf: file not found" in proc.stderr
    assert "1 of 2 files processed" in proc.stdout


def test_history_with_an_unknown_metric_lists_the_valid_ones(store_url):
    code, _, err = _run(
        "history", "--store", store_url, "--monitor", "dark", "--metric", "hot", "--detector", "WFI01"
    )
    assert code == 2 and "no metric 'hot'" in err
    assert "n_hot_pixels" in err and "dark_rate_mean" in err  # the valid names, to pick from


def test_sql_names_the_tables_without_their_database(tmp_path, store_url, two_deliveries):
    code, _, _ = _run("run", *_quiet(tmp_path, store_url), "--no-report", "--no-ecsv", *map(str, two_deliveries[0]))
    assert code == 0
    code, out, _ = _run("sql", "SELECT count() AS n FROM metrics", "--store", store_url, "--format", "csv")
    assert code == 0 and out.splitlines() == ["n", str(3 * N_DARK * 1057)]
    code, out, _ = _run("sql", "SELECT count() AS n FROM rdmt.files", "--store", store_url, "--format", "csv")
    assert code == 0 and out.splitlines() == ["n", "3"]


@pytest.mark.slow
def test_the_demo_runs_end_to_end_at_a_reduced_size(tmp_path):
    """`rdmt demo` (what `make demo` runs) at 256 pixels: every delivery and the exposure are monitored and stored.

    At this size the change evaluator flags clean detectors too (issue 11): only completion is checked here.
    """
    output, scratch = tmp_path / "demo", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run([str(Path(sys.executable).with_name("rdmt")), "demo", "--size", "256", "--output",
                           str(output)], capture_output=True, text=True, timeout=900, check=False,
                          env=os.environ | {"TMPDIR": str(scratch)})  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    # it says up front how long it takes, labels a small run as a smoke run, and shows progress at each step
    first = proc.stdout.splitlines()[0]
    assert first.startswith("RDMT demo: ") and ("Expect under 2 minutes" in first or "Expect about" in first)
    assert "A smoke run: below 1024 pixels" in proc.stdout
    assert proc.stdout.count("18 of 18 dark files written") == 2
    assert "18 of 18 Level-2 images (galsim.roman PSFs) written" in proc.stdout
    assert proc.stdout.index("monitoring the 18 files of demo-delivery-1") < proc.stdout.index("run demo-delivery-1:")
    from rdmt_core.cli.demo import REFERENCE_DELIVERIES

    references = [f"demo-{monitor}-1" for monitor in REFERENCE_DELIVERIES]
    for run_id in ("demo-delivery-1", "demo-delivery-2", *references, "demo-exposure-1"):
        assert (output / "reports" / f"overview_{run_id}.html").is_file(), run_id
    assert "18 of 18 FLAT files (F158) written" in proc.stdout
    assert not any(scratch.iterdir())  # the synthetic inputs are gone
    code, out, _ = _run("sql", "SELECT monitor, count() AS n FROM files GROUP BY monitor ORDER BY monitor",
                        "--store", f"chdb://{output / 'store'}", "--format", "csv")  # fmt: skip
    assert code == 0
    counts = dict(line.split(",") for line in out.splitlines()[1:])
    expected = {"astrometry": 18, "background": 18, "dark": 36, "one_over_f": 18, "psf_shape": 18}
    assert counts == {name: str(n) for name, n in (expected | dict.fromkeys(REFERENCE_DELIVERIES, 18)).items()}
    failed = _run("sql", "SELECT monitor, detector FROM files WHERE status = 'fail' AND monitor IN "
                  f"({', '.join(repr(m) for m in REFERENCE_DELIVERIES)})", "--store", f"chdb://{output / 'store'}",
                  "--format", "csv")[1]  # fmt: skip
    for monitor, (detector, _) in REFERENCE_DELIVERIES.items():  # found even in a smoke run
        assert f"{monitor},{detector}" in failed.splitlines(), (monitor, failed)
