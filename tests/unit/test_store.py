"""Store round trips on chDB: contents, idempotence, all-or-nothing writes, history."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from rdmt_core.errors import StoreError
from rdmt_core.records import EvaluationBlock
from rdmt_core.store import open_store, parse_store_url
from rdmt_core.synthetic import dark_arrays

from .. import builders


def _result(detector="WFI05", when=datetime(2026, 3, 1, tzinfo=UTC), run_id="run-a", seed=1):
    rate, _, dq = dark_arrays(detector, side=256, delivery_seed=seed)
    return builders.dark_result(rate, detector, f"/data/{detector}_{seed}.asdf", when, run_id, dq=dq)


def test_round_trip_of_metrics_and_evaluations(store_url):
    result = _result()
    with open_store(store_url) as store:
        assert store.write(result) is True
        rows = store.sql("SELECT metric, toString(scale) AS scale, cell, value FROM rdmt.metrics")
        assert len(rows) == 9 * 1057
        mean = rows[(rows.metric == "dark_rate_mean") & (rows.scale == "superpixel")].sort_values("cell")
        np.testing.assert_allclose(mean.value.to_numpy(), result.metrics[0].values.superpixel)
        amps = rows[(rows.metric == "n_hot_pixels") & (rows.scale == "amplifier")]
        assert sorted(amps.cell) == list(range(1, 33))
        evaluations = store.sql("SELECT count() AS n, countIf(status = 'fail') AS fails FROM rdmt.evaluations")
        assert evaluations.n[0] == sum(len(b.cells) for b in result.evaluations)
        files = store.sql("SELECT file_key, n_metrics, toString(status) AS status FROM rdmt.files")
        assert files.file_key[0] == "DARK/WFI05/2026-03-01T00:00:00.000" and files.n_metrics[0] == 9 * 1057


def test_rewriting_the_same_file_and_run_changes_nothing(store_url):
    result = _result()
    with open_store(store_url) as store:
        assert store.write(result)
        before = store.sql("SELECT * FROM rdmt.metrics ORDER BY metric, scale, cell")
        assert store.write(result) is False
        after = store.sql("SELECT * FROM rdmt.metrics ORDER BY metric, scale, cell")
        assert before.equals(after)
        assert store.write(dataclasses.replace(result, run_id="run-b"))  # a new run is new rows
        assert store.sql("SELECT count() AS n FROM rdmt.metrics").n[0] == 2 * 9 * 1057


def test_a_failed_write_leaves_nothing(store_url):
    result = _result()
    bad = EvaluationBlock(
        "mission",
        "dark_rate_mean",
        "detector",
        np.array([0]),
        np.array(["bogus"], dtype=object),
        np.array([1.0]),
        np.array(["x"], dtype=object),
    )
    broken = dataclasses.replace(result, evaluations=[*result.evaluations, bad])
    with open_store(store_url) as store:
        with pytest.raises(StoreError, match=r"writing /data/WFI05_1.asdf failed"):
            store.write(broken)
        for table in ("metrics", "evaluations", "files"):
            assert store.sql(f"SELECT count() AS n FROM rdmt.{table}").n[0] == 0
        assert store.write(result)  # and the good version still goes in


def test_history_returns_earlier_committed_deliveries_oldest_first(store_url):
    with open_store(store_url) as store:
        for month, seed in ((1, 1), (2, 2), (3, 3)):
            store.write(_result(when=datetime(2026, month, 1, tzinfo=UTC), seed=seed))
        store.write(_result(detector="WFI06", when=datetime(2026, 2, 15, tzinfo=UTC)))
        current = _result(when=datetime(2026, 3, 1, tzinfo=UTC), seed=3)
        history = store.history("dark", "WFI05", "live", current.identity.file_time, current.identity.file_key, 10)
        grid = history.values[("dark_rate_mean", "superpixel")]
        assert grid.shape == (2, 1024)  # March itself is excluded, WFI06 is another detector
        january = _result(when=datetime(2026, 1, 1, tzinfo=UTC), seed=1).metrics[0].values
        np.testing.assert_allclose(grid[0], january.superpixel)
        np.testing.assert_allclose(
            history.previous("dark_rate_mean", "amplifier"),
            _result(when=datetime(2026, 2, 1, tzinfo=UTC), seed=2).metrics[0].values.amplifier,
        )
        frame = store.metric_history("dark", "dark_rate_mean", "WFI05")
        assert list(frame.file_time.dt.month) == [1, 2, 3] and set(frame.status) <= {
            "pass",
            "incomplete",
            "caution",
            "fail",
        }


def test_store_urls():
    assert parse_store_url("chdb:///abs/dir").path == "/abs/dir"
    assert parse_store_url("chdb://rel/dir").path == "rel/dir"
    for bare in ("some/dir", "notaurl", "/abs/dir", "file:///abs/dir"):  # never guessed: a typo is not a store
        with pytest.raises(StoreError, match="is not a store URL: use chdb://"):
            parse_store_url(bare)
    with pytest.raises(StoreError, match=r"starts with chdb:// \(chdb://x for a relative directory, chdb:///x"):
        parse_store_url("chdb:/x")
    server = parse_store_url("clickhouse://rdmt:s3cret@db.example:8124/qa")
    assert (server.host, server.port, server.username, server.database) == ("db.example", 8124, "rdmt", "qa")
    assert "s3cret" not in server.display
    with pytest.raises(StoreError, match="unknown scheme"):
        parse_store_url("postgres://x/y")


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(StoreError) as info:
        open_store("clickhouse://rdmt:s3cret@127.0.0.1:9/qa")
    assert "127.0.0.1:9" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhous://bob:S3cretPW@h/x", "unknown scheme"),
        ("clickhouse://bob:S3cretPW@h:8x23/db", "port is not a number"),
        ("clickhouse://bob:S3cretPW@h:8123/my-db;DROP", "database name"),
    ],
)
def test_bad_store_urls_never_repeat_the_password(url, message):
    with pytest.raises(StoreError, match=message) as info:
        parse_store_url(url)
    assert "S3cretPW" not in str(info.value) and "bob:***@" in str(info.value)


def test_store_url_repr_hides_the_password():
    assert "s3cret" not in repr(parse_store_url("clickhouse://rdmt:s3cret@db:8123/qa"))


def test_a_file_without_evaluations_is_stored(store_url):
    result = dataclasses.replace(_result(), evaluations=[])
    with open_store(store_url) as store:
        assert store.write(result)
        files = store.sql("SELECT n_metrics, n_evaluations, toString(status) AS status FROM rdmt.files")
        assert (files.n_metrics[0], files.n_evaluations[0], files.status[0]) == (9 * 1057, 0, "pass")


def test_nan_values_are_stored_as_nan_not_zero(store_url):
    """A cell without a value (too few stars, no finite pixel) must not read back as 0."""
    result = _result()
    first = result.metrics[0]
    superpixel = first.values.superpixel.copy()
    superpixel[:10] = np.nan
    values = dataclasses.replace(first.values, detector=float("nan"), superpixel=superpixel)
    result = dataclasses.replace(result, metrics=[dataclasses.replace(first, values=values), *result.metrics[1:]])
    with open_store(store_url) as store:
        assert store.write(result)
        rows = store.sql(
            f"SELECT toString(scale) AS scale, cell, value FROM rdmt.metrics WHERE metric = '{first.spec.name}'"
        )
        nan = rows[np.isnan(rows.value)]
        expected = [("detector", 0)] + [("superpixel", c) for c in range(10)]
        assert sorted(zip(nan.scale, nan.cell, strict=True)) == expected
        assert (rows.value != 0).all()
        history = store.history(
            "dark", "WFI05", "live", datetime(2026, 4, 1, tzinfo=UTC), "DARK/WFI05/2026-04-01T00:00:00.000", 5
        )
        assert np.isnan(history.previous(first.spec.name, "detector")[0])
