"""The sink's conversion: an evaluation record (through Avro) back to the FileResult the store writes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rdmt_core import avro
from rdmt_core.config import load_config
from rdmt_core.errors import InputError
from rdmt_core.history import HistoryWindow, evaluate_record
from rdmt_core.results import add_pixel_changes
from rdmt_core.store import open_store
from rdmt_core.synthetic import dark_arrays
from rdmt_core.wire import metric_record, result_from_record

from .. import builders

REQUEST = {"delivery_id": "d-1", "n_files_in_delivery": 1}
WHEN = datetime(2026, 4, 1, tzinfo=UTC)


def _evaluation_bytes() -> tuple[bytes, object]:
    rate, _, dq = dark_arrays("WFI09", side=256, delivery_seed=3)
    result = builders.dark_result(rate, "WFI09", "/data/wfi09.asdf", WHEN, run_id="req-1", dq=dq)
    record = avro.decode(avro.encode("metric_record", metric_record(result, REQUEST, WHEN))).record
    evaluation, _ = evaluate_record(record, load_config(), HistoryWindow(capacity=11))
    # the evaluator adds the dark's pixel-change metrics (NaN: no earlier file, and this record has no masks)
    return avro.encode("evaluation_record", evaluation), add_pixel_changes(result, {}, None)


def test_evaluation_record_round_trips_to_the_same_result():
    data, original = _evaluation_bytes()
    decoded = avro.decode(data, "evaluation_record")
    assert decoded.version == "1.3"  # 1.2 carries the monitor's notes, 1.3 the optical element and exposure mode
    result = result_from_record(decoded.record, "Dark reference file")
    assert result.notes == original.notes and "pixel classes" in result.notes
    assert result.identity.file_key == original.identity.file_key and result.run_id == "req-1"
    for got, want in zip(result.metrics, original.metrics, strict=True):
        assert got.spec.name == want.spec.name
        np.testing.assert_array_equal(got.values.superpixel, want.values.superpixel)
    got_blocks = {(b.evaluator, b.metric, b.scale): b for b in result.evaluations}
    for block in original.evaluations:
        twin = got_blocks[(block.evaluator, block.metric, block.scale)]
        assert list(twin.status) == list(block.status)
        np.testing.assert_array_equal(twin.cells, block.cells)
    assert result.status == original.status


def test_the_sink_writes_a_record_once(store_url):
    data, _ = _evaluation_bytes()
    result = result_from_record(avro.decode(data).record)
    with open_store(store_url) as store:
        assert store.write(result) is True
        assert store.write(result_from_record(avro.decode(data).record)) is False  # a redelivery
        counts = store.sql(
            "SELECT (SELECT count() FROM rdmt.metrics) AS m, (SELECT count() FROM rdmt.evaluations) AS e"
        )
        assert len(result.metrics) == 9 + 5  # the dark's 9, n_new_/n_recovered_ hot and dead, hot_mask_agreement
        assert counts.m[0] == 14 * 1057 and counts.e[0] == sum(len(b.cells) for b in result.evaluations)


def test_a_record_without_metrics_is_refused():
    data, _ = _evaluation_bytes()
    record = dict(avro.decode(data).record, metrics=None)
    with pytest.raises(InputError, match="carries no metrics"):
        result_from_record(record)


def test_a_report_from_the_services_equals_the_report_of_rdmt_run(tmp_path):
    """The same file through the services' records (monitor -> evaluator -> sink) and through rdmt run."""
    from rdmt_core.evaluators import History
    from rdmt_core.geometry import FULL_SIDE, Geometry
    from rdmt_core.monitors import get_monitor
    from rdmt_core.outputs import write_report
    from rdmt_core.pixel_masks import pack_masks
    from rdmt_core.records import FileIdentity
    from rdmt_core.results import evaluate, measurement

    config, dark = load_config(), get_monitor("dark")
    rate, _, dq = dark_arrays("WFI09", side=256, delivery_seed=3)
    identity = FileIdentity("/data/wfi09.asdf", "DARK", "WFI09", WHEN)
    measured, _, masks = measurement(dark, {"dark_slope": rate, "dq": dq}, identity, config, "req-1")
    # rdmt run adds the pixel changes (none earlier) and evaluates with the full-size pixel counts as the evaluator
    with_changes = add_pixel_changes(measured, masks, None)
    embedded = evaluate(with_changes, config, History(), Geometry(FULL_SIDE, dark.border).pixels_per_cell())
    sent = metric_record(measured, REQUEST, WHEN, pack_masks(masks))
    record = avro.decode(avro.encode("metric_record", sent)).record
    evaluation, _ = evaluate_record(record, config, HistoryWindow(capacity=11))
    streamed = result_from_record(avro.decode(avro.encode("evaluation_record", evaluation)).record)

    pages = {}
    for name, result in (("embedded", embedded), ("services", streamed)):
        written = write_report(result, tmp_path / name)
        pages[name] = written.markdown.read_text()
    assert "pixel classes" in pages["services"]
    assert pages["services"] == pages["embedded"]
