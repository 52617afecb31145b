"""A file's identity includes its optical element and exposure mode (issue 12): keys, store, wire, history.

Two flats of one detector with the same useafter and different filters are two files, each compared
only with the earlier flats of its own filter.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import ClassVar

import numpy as np
import pytest
from astropy.time import Time
from click.testing import CliRunner
from pydantic import BaseModel

from rdmt_core import avro
from rdmt_core.cli import main
from rdmt_core.config import load_config
from rdmt_core.data_access import open_roman
from rdmt_core.history import state_prefix
from rdmt_core.measure.blockstats import distribution_at_scales
from rdmt_core.monitors import Monitor, MonitorResult, monitors_for, registered_monitors
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.records import ArraySpec, FileIdentity, Metric, MetricSpec
from rdmt_core.store import open_store
from rdmt_core.wire import metric_record, result_from_record
from tests.builders import dark_result as _dark_result

WHEN = datetime(2026, 5, 1, tzinfo=UTC)
LATER = datetime(2026, 6, 1, tzinfo=UTC)
DAY_AFTER = datetime(2026, 6, 2, tzinfo=UTC)
SIDE = 256


def dark_result(detector: str, when: datetime):
    """The dark monitor's result on a flat 0.01 DN/s dark (a 256-pixel frame)."""
    return _dark_result(np.full((SIDE, SIDE), 0.01, np.float32), detector, f"/data/{detector}.asdf", when)


def test_file_key_names_the_optical_element_and_exposure_mode_only_when_set():
    plain = FileIdentity("/d.asdf", "DARK", "WFI01", WHEN)
    assert plain.file_key == "DARK/WFI01/2026-05-01T00:00:00.000"  # as before the fields existed
    flat = FileIdentity("/f.asdf", "FLAT", "WFI01", WHEN, optical_element="F158")
    assert flat.file_key == "FLAT/WFI01/F158/2026-05-01T00:00:00.000"
    dark = FileIdentity("/d.asdf", "DARK", "WFI01", WHEN, exposure_mode="MA7")
    assert dark.file_key == "DARK/WFI01/MA7/2026-05-01T00:00:00.000"
    both = FileIdentity("/i.asdf", "ImageModel", "WFI01", WHEN, optical_element="F087", exposure_mode="MA7")
    assert both.file_key == "ImageModel/WFI01/F087/MA7/2026-05-01T00:00:00.000"
    assert flat.history_group == ("FLAT", "F158", "")


def _write_flat(path, detector: str, element: str, when: datetime, level: float) -> str:
    from roman_datamodels.datamodels import FlatRefModel

    model = FlatRefModel.create_fake_data(shape=(SIDE, SIDE))
    model.meta.instrument.detector = detector
    model.meta.instrument.optical_element = element
    model.meta.useafter = Time(when.replace(tzinfo=None))
    rng = np.random.default_rng(int(level * 100))
    model.data = (level + 0.01 * rng.standard_normal((SIDE, SIDE))).astype(np.float32)
    model.err = np.full((SIDE, SIDE), 0.01, dtype=np.float32)
    model.dq = np.zeros((SIDE, SIDE), dtype=np.uint32)
    model.save(path)
    return str(path)


def test_identity_is_read_from_the_reference_schemas(tmp_path):
    from roman_datamodels.datamodels import DarkRefModel

    flat = _write_flat(tmp_path / "flat.asdf", "WFI03", "F158", WHEN, 1.0)
    with open_roman(flat) as roman:
        assert (roman.identity.optical_element, roman.identity.exposure_mode) == ("F158", "")
        assert roman.identity.file_key == "FLAT/WFI03/F158/2026-05-01T00:00:00.000"
    dark = DarkRefModel.create_fake_data(shape=(2, 8, 8))  # rad 2.0: an optical element, no MA table
    dark.save(tmp_path / "dark.asdf")
    with open_roman(tmp_path / "dark.asdf") as roman:
        assert (roman.identity.optical_element, roman.identity.exposure_mode) == ("", "")
        assert roman.identity.file_key.count("/") == 2  # kind/detector/time: the keys of stored darks hold


def test_a_dark_with_an_ma_table_has_an_exposure_mode(tmp_path):
    """rad dark 1.0-1.4 name the MA table (meta.exposure.ma_table_name, ma_table_number): it is the exposure mode."""
    import asdf

    meta = {
        "reftype": "DARK",
        "useafter": "2026-01-01T00:00:00",
        "instrument": {"detector": "WFI02", "optical_element": "DARK"},
        "exposure": {"type": "WFI_IMAGE", "ma_table_name": "DIAGNOSTIC", "ma_table_number": 7},
    }
    asdf.AsdfFile({"roman": {"meta": meta}}).write_to(tmp_path / "dark.asdf")
    with open_roman(tmp_path / "dark.asdf") as roman:
        assert (roman.identity.optical_element, roman.identity.exposure_mode) == ("", "MA7")
        assert roman.identity.file_key == "DARK/WFI02/MA7/2026-01-01T00:00:00.000"
    del meta["exposure"]["ma_table_number"]
    asdf.AsdfFile({"roman": {"meta": meta}}).write_to(tmp_path / "named.asdf")
    with open_roman(tmp_path / "named.asdf") as roman:
        assert roman.identity.exposure_mode == "DIAGNOSTIC"


# The store of the release before issue 12: the three tables without optical_element and exposure_mode.
OLD_DDL = """
CREATE DATABASE IF NOT EXISTS rdmt;
CREATE TABLE rdmt.metrics (run_id String, release LowCardinality(String), monitor LowCardinality(String),
    detector LowCardinality(String), kind LowCardinality(String), file_key String,
    file_time DateTime64(3, 'UTC'), source String, metric LowCardinality(String), unit LowCardinality(String),
    scale Enum8('detector' = 1, 'amplifier' = 2, 'superpixel' = 3), cell UInt16, value Float64,
    stored_at DateTime64(3, 'UTC'))
ENGINE = ReplacingMergeTree(stored_at) ORDER BY (monitor, detector, metric, scale, cell, release, file_key, run_id);
CREATE TABLE rdmt.evaluations (run_id String, release LowCardinality(String), monitor LowCardinality(String),
    detector LowCardinality(String), kind LowCardinality(String), file_key String,
    file_time DateTime64(3, 'UTC'), source String, metric LowCardinality(String),
    scale Enum8('detector' = 1, 'amplifier' = 2, 'superpixel' = 3), cell UInt16, evaluator LowCardinality(String),
    status Enum8('pass' = 1, 'incomplete' = 2, 'caution' = 3, 'fail' = 4), reference Nullable(Float64),
    threshold Nullable(Float64), reason String, stored_at DateTime64(3, 'UTC'))
ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (monitor, detector, metric, scale, cell, evaluator, release, file_key, run_id);
CREATE TABLE rdmt.files (run_id String, release LowCardinality(String), monitor LowCardinality(String),
    detector LowCardinality(String), kind LowCardinality(String), file_key String,
    file_time DateTime64(3, 'UTC'), source String, exposure_type LowCardinality(String), n_metrics UInt32,
    n_evaluations UInt32, n_fail UInt32, n_caution UInt32,
    status Enum8('pass' = 1, 'incomplete' = 2, 'caution' = 3, 'fail' = 4), stored_at DateTime64(3, 'UTC'))
ENGINE = ReplacingMergeTree(stored_at) ORDER BY (monitor, detector, release, file_key, run_id);
INSERT INTO rdmt.files VALUES ('old-run', 'live', 'dark', 'WFI05', 'DARK', 'DARK/WFI05/2026-04-01T00:00:00.000',
    '2026-04-01 00:00:00.000', '/old/dark.asdf', '', 1, 0, 0, 0, 'pass', now64(3));
INSERT INTO rdmt.metrics VALUES ('old-run', 'live', 'dark', 'WFI05', 'DARK', 'DARK/WFI05/2026-04-01T00:00:00.000',
    '2026-04-01 00:00:00.000', '/old/dark.asdf', 'dark_rate_mean', 'DN/s', 'detector', 0, 0.25, now64(3))
"""


def test_a_store_of_the_previous_release_is_upgraded(tmp_path):
    from chdb import session

    directory = tmp_path / "store"
    old = session.Session(str(directory))
    for statement in (s.strip() for s in OLD_DDL.split(";")):
        if statement:
            old.query(statement)
    old.close()

    with open_store(f"chdb://{directory}") as store:
        columns = store.sql(
            "SELECT table, name, type, default_expression FROM system.columns WHERE database = 'rdmt' "
            "AND name IN ('optical_element', 'exposure_mode') AND table IN ('metrics', 'evaluations', 'files') "
            "ORDER BY table, name"
        )
        assert len(columns) == 6
        assert set(columns.type) == {"LowCardinality(String)"}
        old_rows = store.sql("SELECT optical_element, exposure_mode FROM files")
        assert old_rows.values.tolist() == [["", ""]]
        # the old file (no element, no mode) is the history of a new file without them, under the same key scheme
        new = dark_result("WFI05", datetime(2026, 5, 1, tzinfo=UTC))
        assert store.write(new)
        history = store.history("dark", "WFI05", "live", new.identity.file_time, new.identity.file_key, 10, kind="DARK")
        assert history.previous("dark_rate_mean", "detector")[0] == pytest.approx(0.25)  # the old row's value
        # not the history of a file of another group
        other = store.history("dark", "WFI05", "live", LATER, "x", 10, kind="DARK", exposure_mode="MA7")
        assert other.previous("dark_rate_mean", "detector") is None
    with open_store(f"chdb://{directory}") as store:  # opening an upgraded store again changes nothing
        assert len(store.sql("SELECT * FROM files")) == 2


class _NoOptions(BaseModel):
    pass


class _TestFlatMonitor(Monitor):
    """A test-only FLAT monitor, used while no real one is registered: the mean of the flat."""

    name = "test_identity_flat"
    title = "Flat (test)"
    reftypes = frozenset({"FLAT"})
    arrays: ClassVar[dict[str, ArraySpec]] = {"data": ArraySpec("f")}
    options_model = _NoOptions
    metric_specs = (MetricSpec("flat_mean", "", "Mean of the flat"),)

    @classmethod
    def compute(cls, arrays, options, context):
        return MonitorResult([Metric(cls.metric_specs[0], distribution_at_scales(arrays["data"], ()).mean)])


# Registered at import (class creation); kept only while the test needs it and no real FLAT monitor exists.
Monitor._registry.pop(_TestFlatMonitor.name)


@pytest.fixture
def flat_monitors():
    """The monitors that handle FLAT: the real one(s) when registered, else the test-only one (then unregistered)."""
    real = monitors_for("FLAT")
    if real:
        yield real
        return
    Monitor._registry[_TestFlatMonitor.name] = _TestFlatMonitor
    try:
        yield [_TestFlatMonitor]
    finally:
        Monitor._registry.pop(_TestFlatMonitor.name, None)


def _change_statuses(store, element: str, when: datetime, monitor: str) -> set[str]:
    frame = store.sql(
        f"SELECT DISTINCT toString(status) AS s FROM evaluations WHERE monitor = '{monitor}' "
        f"AND evaluator = 'change' AND optical_element = '{element}' "
        f"AND file_time = toDateTime64('{when:%Y-%m-%d %H:%M:%S}', 3, 'UTC')"
    )
    return set(frame.s)


def test_flats_of_two_filters_are_two_files_with_separate_histories(tmp_path, flat_monitors):
    config = load_config(
        store_url=f"chdb://{tmp_path / 'store'}",
        output_dir=str(tmp_path / "out"),
        outputs={"ecsv": False, "report": False, "notify": False},
    )
    first = [
        _write_flat(tmp_path / "f158_1.asdf", "WFI01", "F158", WHEN, 1.0),
        _write_flat(tmp_path / "f087_1.asdf", "WFI01", "F087", WHEN, 2.0),
    ]
    # F158 changed by half; F087 the same, a day later: were the filters one history, F087 would be
    # compared with the new F158 flat (1.5) and fail
    second = [
        _write_flat(tmp_path / "f158_2.asdf", "WFI01", "F158", LATER, 1.5),
        _write_flat(tmp_path / "f087_2.asdf", "WFI01", "F087", DAY_AFTER, 2.0),
    ]
    with EmbeddedPipeline(config, run_id="flats") as pipeline:
        _, outcomes = pipeline.run(first)
        assert [o.problem for o in outcomes] == [None, None]
        assert [all(o.stored) and len(o.stored) > 0 for o in outcomes] == [True, True]  # both stored, none skipped
        pipeline.run(second)
        store = pipeline.store
        files = store.sql("SELECT optical_element, file_key FROM files ORDER BY file_key")
        names = {m.name for m in flat_monitors}
        assert len(files) == 4 * len(names)
        assert sorted(set(files.optical_element)) == ["F087", "F158"]
        for monitor in names:
            assert "fail" in _change_statuses(store, "F158", LATER, monitor)  # compared with the F158 flat
            assert _change_statuses(store, "F087", DAY_AFTER, monitor) == {"pass"}  # with the F087 flat, unchanged
            metric = registered_monitors()[monitor].metric_specs[0].name
            frame = store.metric_history(monitor, metric, "WFI01", "detector", None, "F158")
            assert set(frame.optical_element) == {"F158"} and len(frame) == 2

    runner = CliRunner()
    metric = flat_monitors[0].metric_specs[0].name
    args = ["history", "--monitor", flat_monitors[0].name, "--metric", metric, "--detector", "wfi01"]
    out = runner.invoke(main, [*args, "--store", f"chdb://{tmp_path / 'store'}", "--filter", "f087"])
    assert out.exit_code == 0, out.output
    assert "optical_element" in out.output and "F087" in out.output and "F158" not in out.output
    out = runner.invoke(main, [*args, "--store", f"chdb://{tmp_path / 'store'}", "--filter", "F999"])
    assert out.exit_code == 2 and "no " in out.output and "(optical elements: F087, F158)" in out.output


def test_history_without_an_element_hides_the_empty_columns(tmp_path):
    with open_store(f"chdb://{tmp_path / 'store'}") as store:
        store.write(dark_result("WFI05", WHEN))
    out = CliRunner().invoke(
        main,
        ["history", "--monitor", "dark", "--metric", "dark_rate_mean", "--detector", "WFI05",
         "--store", f"chdb://{tmp_path / 'store'}"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "optical_element" not in out.output and "exposure_mode" not in out.output


def test_the_streaming_history_is_per_element_and_mode_and_keeps_old_prefixes():
    base = {"release": "live", "monitor": "flat", "kind": "FLAT"}
    assert state_prefix(base) == "live|flat"  # a record of an older writer (no fields)
    assert state_prefix(base | {"optical_element": "", "exposure_mode": ""}) == "live|flat"
    assert state_prefix(base | {"optical_element": "F158", "exposure_mode": ""}) == "live|flat|FLAT|F158|"
    assert state_prefix(base | {"optical_element": "F087"}) != state_prefix(base | {"optical_element": "F158"})


def test_metric_record_carries_the_identity_and_old_and_new_versions_read_each_other():
    catalog = avro.catalog()
    avro.check_compatibility("metric_record", "1.0", "1.1")  # old reader/new writer and new reader/old writer
    avro.check_compatibility("evaluation_record", "1.2", "1.3")
    result = dark_result("WFI05", WHEN)
    identity = FileIdentity(result.identity.source, "FLAT", "WFI05", WHEN, optical_element="F158")
    result = dataclasses.replace(result, identity=identity)
    record = metric_record(result, {"delivery_id": "d", "n_files_in_delivery": 1}, WHEN)
    decoded = avro.decode(avro.encode("metric_record", record))
    assert decoded.version == catalog.newest("metric_record")
    assert result_from_record(decoded.record).identity == identity
    # a 1.0 writer's record reads with empty fields, and the key it carries is the old one
    old = catalog.samples("metric_record", "1.0")[0]
    again = avro.decode(avro.encode("metric_record", old, "1.0"))
    assert (again.record["optical_element"], again.record["exposure_mode"]) == ("", "")
    assert result_from_record(again.record).identity.file_key == old["file_key"]
