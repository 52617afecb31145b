"""Newly bad and recovered pixels: packed masks, the metrics at three scales, the store and the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rdmt_core.config import load_config
from rdmt_core.geometry import N_AMPLIFIERS, N_SUPERPIXELS
from rdmt_core.monitors import registered_monitors
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.pixel_masks import (
    HOT_MASK_CHECK,
    MaskFormatError,
    PixelMasks,
    derived_specs,
    mask_agreement,
    mask_shape,
    pack_mask,
    pixel_change_metrics,
    unpack_mask,
)
from rdmt_core.results import add_pixel_changes, evaluate, measurement
from rdmt_core.store import open_store
from rdmt_core.synthetic import Anomaly, HotCluster, write_dark_delivery

SIDE = 256  # 8x8-pixel super-pixels, 8-column amplifiers


def _by_name(metrics):
    return {m.spec.name: m.values for m in metrics}


def _reference_counts(mask: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Counts per detector, amplifier and super-pixel with plain loops over the cells."""
    cell = mask.shape[0] // 32
    sp = np.array(
        [mask[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell].sum() for r in range(32) for c in range(32)]
    )
    amp = np.array([mask[:, a * cell : (a + 1) * cell].sum() for a in range(N_AMPLIFIERS)])
    return float(mask.sum()), amp.astype(float), sp.astype(float)


# -- pure ----------------------------------------------------------------------------------------


def test_pack_round_trip_and_header() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((SIDE, SIDE)) < 0.01
    data = pack_mask(mask)
    assert mask_shape(data) == (SIDE, SIDE)
    np.testing.assert_array_equal(unpack_mask(data), mask)
    odd = rng.random((3, 5)) < 0.5  # not a multiple of 8 bits
    np.testing.assert_array_equal(unpack_mask(pack_mask(odd)), odd)
    with pytest.raises(MaskFormatError, match="not a packed pixel mask"):
        unpack_mask(b"XXXX" + data[4:])
    with pytest.raises(MaskFormatError, match="corrupt"):
        unpack_mask(data[:20])


def test_a_full_size_hot_mask_packs_small() -> None:
    from rdmt_core.synthetic import dark_arrays

    _, _, dq = dark_arrays("WFI07", 4096, delivery_seed=1)
    hot = (dq & (1 << 11)) != 0  # HOT
    assert hot.sum() == 2001
    assert len(pack_mask(hot)) < 12_000  # 8.8 kB measured, of 2 MiB of bits


def test_new_and_recovered_at_three_scales_match_plain_numpy() -> None:
    rng = np.random.default_rng(7)
    before = {"hot": rng.random((SIDE, SIDE)) < 0.02, "dead": rng.random((SIDE, SIDE)) < 0.01}
    now = {"hot": before["hot"] ^ (rng.random((SIDE, SIDE)) < 0.01), "dead": before["dead"].copy()}
    metrics, notes = pixel_change_metrics(("hot", "dead"), now, before, "DARK/WFI01/2026-01-01T00:00:00.000")
    got = _by_name(metrics)
    assert list(got) == ["n_new_hot", "n_recovered_hot", "n_new_dead", "n_recovered_dead"]
    for name, expected in (
        ("n_new_hot", now["hot"] & ~before["hot"]),
        ("n_recovered_hot", before["hot"] & ~now["hot"]),
        ("n_new_dead", np.zeros((SIDE, SIDE), bool)),
    ):
        detector, amp, sp = _reference_counts(expected)
        assert got[name].detector == detector
        np.testing.assert_array_equal(got[name].amplifier, amp)
        np.testing.assert_array_equal(got[name].superpixel, sp)
    assert got["n_new_hot"].detector > 0
    assert notes == {"pixel changes": "since DARK/WFI01/2026-01-01T00:00:00.000"}


def test_no_previous_or_another_shape_gives_nan_with_a_note() -> None:
    now = {"hot": np.ones((SIDE, SIDE), bool)}
    metrics, notes = pixel_change_metrics(("hot",), now, None)
    assert all(np.isnan(m.values.at(s)).all() for m in metrics for s in ("detector", "amplifier", "superpixel"))
    assert "no earlier file" in notes["pixel changes"]
    metrics, notes = pixel_change_metrics(("hot",), now, {"hot": np.ones((512, 512), bool)}, "k")
    assert np.isnan(metrics[0].values.detector) and len(metrics[0].values.superpixel) == N_SUPERPIXELS
    assert "differs from the previous (512, 512)" in notes["pixel changes"]


def test_hot_mask_agreement_per_cell() -> None:
    dark_hot = np.zeros((SIDE, SIDE), bool)
    dark_hot[0:8, 0:8] = True  # super-pixel 0: 64 hot, 16 of them flagged in the mask
    dark_hot[8, 8] = True  # super-pixel 33: one hot, flagged
    flagged = np.zeros((SIDE, SIDE), bool)
    flagged[0:2, 0:8] = True
    flagged[8, 8] = True
    flagged[100, 100] = True  # flagged in the mask, not hot in the dark: does not count
    metric, notes = mask_agreement(HOT_MASK_CHECK, {"hot": dark_hot}, {"hot": flagged}, "MASK/WFI01/x")
    assert metric.spec.name == "hot_mask_agreement" and notes == {"hot mask agreement": "against MASK/WFI01/x"}
    assert metric.values.detector == pytest.approx(17 / 65)
    assert metric.values.superpixel[0] == pytest.approx(0.25) and metric.values.superpixel[33] == 1.0
    assert np.isnan(metric.values.superpixel[1])  # no hot pixel in the cell
    assert metric.values.amplifier[0] == pytest.approx(16 / 64) and metric.values.amplifier[1] == 1.0
    missing, notes = mask_agreement(HOT_MASK_CHECK, {"hot": dark_hot}, None, "")
    assert np.isnan(missing.values.detector) and "no mask file known" in notes["hot mask agreement"]


def test_monitors_tracking_pixels_list_their_derived_metrics_and_return_their_masks() -> None:
    for name, monitor in registered_monitors().items():
        derived = derived_specs(name, monitor.tracked_pixels)
        if not monitor.tracked_pixels:
            continue
        assert set(derived) <= set(monitor.metric_specs), f"{name}: metric_specs lacks {derived}"
        result = monitor.compute(
            monitor.example_arrays(SIDE, seed=1), monitor.options_model(), monitor.example_context(SIDE, seed=1)
        )
        assert set(result.masks) == set(monitor.tracked_pixels), name
        assert all(m.dtype == bool and m.shape == (SIDE, SIDE) for m in result.masks.values()), name
        assert not {m.spec.name for m in result.metrics} & {s.name for s in derived}, f"{name} computes derived"


def test_derived_metrics_get_mission_and_soc_only() -> None:
    dark = registered_monitors()["dark"]
    from rdmt_core.records import FileIdentity

    identity = FileIdentity("x.asdf", "DARK", "WFI01", datetime(2026, 1, 1, tzinfo=UTC))
    config = load_config()
    measured = measurement(dark, dark.example_arrays(SIDE, 1), identity, config, "r")
    previous = PixelMasks("DARK/WFI01/2025", {c: pack_mask(m) for c, m in measured.masks.items()})
    result = add_pixel_changes(measured.result, measured.masks, previous)
    result = evaluate(result, config, _no_history(), measured.geometry.pixels_per_cell())
    evaluators = {(b.metric, b.evaluator) for b in result.evaluations}
    assert ("n_new_hot", "soc") in evaluators and ("n_new_hot", "change") not in evaluators
    assert ("n_recovered_dead", "trend") not in evaluators and ("n_hot_pixels", "change") in evaluators
    assert _by_name(result.metrics)["n_new_hot"].detector == 0
    assert result.status.value != "fail"


def _no_history():
    from rdmt_core.evaluators import History

    return History()


# -- embedded pipeline and store -----------------------------------------------------------------

CLUSTER = HotCluster(row=8 * 4, col=8 * 6, side=16, rate=0.5)  # super-pixels 4*32+6, 4*32+7, 5*32+6, 5*32+7


def _config(tmp_path):
    return load_config(
        store_url=f"chdb://{tmp_path / 'store'}",
        output_dir=str(tmp_path / "out"),
        outputs={"ecsv": False, "report": False, "notify": False},
    )


def _dark(result_list):
    (result,) = [r for r in result_list if r.monitor == "dark"]
    return result


def test_embedded_two_deliveries_then_a_restart(tmp_path) -> None:
    detectors = ("WFI07",)
    first = write_dark_delivery(tmp_path / "d1", datetime(2026, 1, 1), SIDE, 1, detectors=detectors)
    second = write_dark_delivery(
        tmp_path / "d2", datetime(2026, 2, 1), SIDE, 2, {"WFI07": Anomaly(hot_cluster=CLUSTER)}, detectors
    )
    third = write_dark_delivery(tmp_path / "d3", datetime(2026, 3, 1), SIDE, 3, detectors=detectors)
    config = _config(tmp_path)
    with EmbeddedPipeline(config, run_id="one") as pipeline:
        summary, _ = pipeline.run([str(p) for p in first])
        one = _dark(summary.results)
        summary, _ = pipeline.run([str(p) for p in second])
        two = _dark(summary.results)
    got = _by_name(one.metrics)
    assert np.isnan(got["n_new_hot"].detector) and np.isnan(got["n_recovered_dead"].superpixel).all()
    assert "no earlier file" in one.notes["pixel changes"]
    assert "no mask file known" in one.notes["hot mask agreement"]
    # a first file: its new and recovered pixels wait for an earlier file, they are not "could not be judged"
    assert one.verdict == "pass" and one.waiting_for_history and one.count_unjudged() == 0

    got = _by_name(two.metrics)
    # the synthetic hot pixels sit at fixed positions: only the cluster's pixels are new (some were hot already)
    from rdmt_core.synthetic import dark_arrays

    _, _, dq1 = dark_arrays("WFI07", SIDE, 1)
    was_hot = (dq1 & (1 << 11)) != 0
    cluster = np.zeros((SIDE, SIDE), bool)
    cluster[CLUSTER.row : CLUSTER.row + CLUSTER.side, CLUSTER.col : CLUSTER.col + CLUSTER.side] = True
    expected = cluster & ~was_hot
    assert got["n_new_hot"].detector == expected.sum() > 200
    cells = {4 * 32 + 6, 4 * 32 + 7, 5 * 32 + 6, 5 * 32 + 7}
    new_sp = got["n_new_hot"].superpixel
    assert set(np.flatnonzero(new_sp)) == cells
    assert sum(new_sp[c] for c in cells) == expected.sum()
    assert got["n_recovered_hot"].detector == 0 and got["n_new_dead"].detector == 0
    assert two.notes["pixel changes"] == "since DARK/WFI07/2026-01-01T00:00:00.000"
    failing = {(b.metric, b.scale) for b in two.evaluations if b.evaluator == "soc" and (b.status == "fail").any()}
    assert ("n_new_hot", "superpixel") in failing and ("n_new_hot", "detector") in failing

    # a new pipeline on the same store (a restart) finds the second file's masks
    with EmbeddedPipeline(_config(tmp_path), run_id="two") as pipeline:
        summary, _ = pipeline.run([str(p) for p in third])
        three = _dark(summary.results)
        rows = pipeline.store.sql(
            "SELECT file_key, class, shape, n_pixels FROM rdmt.pixel_masks ORDER BY file_key, class"
        )
    got = _by_name(three.metrics)
    assert three.notes["pixel changes"] == "since DARK/WFI07/2026-02-01T00:00:00.000"
    assert got["n_recovered_hot"].detector == expected.sum() and got["n_new_hot"].detector == 0
    assert list(rows["class"]) == ["dead", "hot"] * 3 and set(rows["shape"]) == {f"{SIDE}x{SIDE}"}


def test_store_previous_and_reference_masks(tmp_path) -> None:
    from tests.builders import dark_result

    store = open_store(f"chdb://{tmp_path / 'store'}")
    try:
        hot = np.zeros((SIDE, SIDE), bool)
        hot[3, 4] = True
        jan = dark_result(np.full((SIDE, SIDE), 0.005, np.float32), "WFI01", "a", datetime(2026, 1, 1, tzinfo=UTC))
        mar = dark_result(np.full((SIDE, SIDE), 0.005, np.float32), "WFI01", "c", datetime(2026, 3, 1, tzinfo=UTC))
        assert store.write(jan, {"hot": hot, "dead": ~hot}) and store.write(mar, {"hot": ~hot})
        found = store.previous_masks(
            "dark", "WFI01", "live", datetime(2026, 2, 1, tzinfo=UTC), "x", kind="DARK"
        )  # fmt: skip
        assert found is not None and found.file_key == jan.identity.file_key
        np.testing.assert_array_equal(unpack_mask(found.packed["hot"]), hot)
        assert set(found.packed) == {"hot", "dead"}
        later = store.previous_masks("dark", "WFI01", "live", datetime(2026, 4, 1, tzinfo=UTC), "x", kind="DARK")
        assert later is not None and later.file_key == mar.identity.file_key
        assert store.previous_masks("dark", "WFI01", "live", datetime(2026, 1, 1, tzinfo=UTC), "x", kind="DARK") is None
        assert store.previous_masks("dark", "WFI01", "live", datetime(2026, 4, 1, tzinfo=UTC), "x", kind="FLAT") is None
        assert store.reference_masks("dark", "WFI01", "live", datetime(2026, 3, 1, tzinfo=UTC)).file_key == (
            mar.identity.file_key
        )
        assert store.reference_masks("mask", "WFI01", "live", datetime(2026, 3, 1, tzinfo=UTC)) is None
    finally:
        store.close()


# -- streaming: the evaluator's process() with a real quixstreams (RocksDB) state ----------------


class _Partition:
    """One RocksDB state partition of the evaluator; each message is processed in its own committed transaction."""

    def __init__(self, path) -> None:
        from quixstreams.state.rocksdb import RocksDBStorePartition

        self.path = str(path)
        self.partition = RocksDBStorePartition(path=self.path)

    def process(self, config, record, key: bytes = b"WFI07"):
        from rdmt_services.evaluator.service import process

        transaction = self.partition.begin()
        out = process(config, record, key, transaction.as_state(prefix=key))
        transaction.prepare()
        transaction.flush()
        return out

    def close(self) -> None:
        self.partition.close()


def _record(day: int, seed: int, anomaly: Anomaly | None = None, monitor: str = "dark") -> dict:
    """A decoded metric_record of the dark monitor (through Avro, as the evaluator reads it)."""
    from rdmt_core import avro
    from rdmt_core.pixel_masks import pack_masks
    from rdmt_core.records import FileIdentity
    from rdmt_core.synthetic import dark_arrays
    from rdmt_core.wire import metric_record

    rate, _, dq = dark_arrays("WFI07", SIDE, seed, anomaly)
    identity = FileIdentity(f"d{day}.asdf", "DARK", "WFI07", datetime(2026, 1, day, tzinfo=UTC))
    dark = registered_monitors()["dark"]
    measured = measurement(dark, {"dark_slope": rate, "dq": dq}, identity, load_config(), f"run-{day}")
    delivery = {"delivery_id": f"d{day}", "n_files_in_delivery": 1}
    record = metric_record(measured.result, delivery, datetime.now(UTC), pack_masks(measured.masks))
    return avro.decode(avro.encode("metric_record", record), expected="metric_record").record


def _mask_record(day: int, hot: np.ndarray) -> dict:
    """A MASK's metric record as the evaluator keeps it: only what save_window/save_masks read."""
    return {
        "release": "live", "monitor": "mask", "kind": "MASK", "optical_element": "", "exposure_mode": "",
        "file_key": f"MASK/WFI07/2026-01-{day:02d}T00:00:00.000", "file_time": datetime(2026, 1, day, tzinfo=UTC),
        "masks": {"hot": pack_mask(hot)},
    }  # fmt: skip


def test_evaluator_adds_pixel_changes_from_its_state_and_does_not_forward_masks(tmp_path) -> None:
    from rdmt_core import avro
    from rdmt_core.history import HistoryWindow, save_masks, save_window
    from rdmt_core.synthetic import dark_arrays

    config = load_config()
    partition = _Partition(tmp_path / "state")
    kind, first = partition.process(config, _record(1, 1))
    assert kind == "evaluation" and "masks" not in first
    got = {m["metric"]: m for m in first["metrics"]}
    assert np.isnan(got["n_new_hot"]["detector"]) and "no earlier file" in first["notes"]["pixel changes"]
    assert "no mask file known" in first["notes"]["hot mask agreement"]
    avro.encode("evaluation_record", first)  # valid as it is produced

    # a MASK of the detector, flagging a quarter of the dark's hot pixels, arrives in the same partition
    _, _, dq = dark_arrays("WFI07", SIDE, 1)
    hot = (dq & (1 << 11)) != 0
    flagged = hot.copy()
    flagged[SIDE // 4 :, :] = False  # only the top quarter's hot pixels are flagged HOT in the mask
    transaction = partition.partition.begin()
    state = transaction.as_state(prefix=b"WFI07")
    window = HistoryWindow(11)
    mask = _mask_record(1, flagged)
    save_window(state, mask, window, {})
    save_masks(state, mask, window)
    transaction.prepare()
    transaction.flush()

    # a restart: the state comes back (here from RocksDB; after a rebalance from the changelog topic)
    partition.close()
    partition = _Partition(tmp_path / "state")
    kind, second = partition.process(config, _record(2, 2, Anomaly(hot_cluster=CLUSTER)))
    got = {m["metric"]: m for m in second["metrics"]}
    cluster = np.zeros((SIDE, SIDE), bool)
    cluster[CLUSTER.row : CLUSTER.row + CLUSTER.side, CLUSTER.col : CLUSTER.col + CLUSTER.side] = True
    new = cluster & ~hot
    assert got["n_new_hot"]["detector"] == new.sum() and got["n_recovered_hot"]["detector"] == 0
    assert set(np.flatnonzero(got["n_new_hot"]["superpixel"])) == {4 * 32 + 6, 4 * 32 + 7, 5 * 32 + 6, 5 * 32 + 7}
    assert second["notes"]["pixel changes"] == "since DARK/WFI07/2026-01-01T00:00:00.000"
    now_hot = hot | cluster
    assert got["hot_mask_agreement"]["detector"] == pytest.approx((now_hot & flagged).sum() / now_hot.sum())
    assert second["notes"]["hot mask agreement"] == "against MASK/WFI07/2026-01-01T00:00:00.000"
    assert "masks" not in second and second["status"] == "fail"
    failing = {(b["metric"], b["evaluator"]) for b in second["evaluations"] if "fail" in b["status"]}
    assert ("n_new_hot", "soc") in failing
    relative = {b["metric"] for b in second["evaluations"] if b["evaluator"] in ("change", "trend")}
    assert not {m for m in relative if m.startswith(("n_new", "n_recovered", "hot_mask"))}

    # a late file (before the first) has no previous masks; the third sees the second's
    earlier = {"file_time": datetime(2025, 12, 1, tzinfo=UTC), "file_key": "DARK/WFI07/2025-12-01T00:00:00.000"}
    kind, late = partition.process(config, _record(1, 1) | earlier)
    assert "no earlier file" in late["notes"]["pixel changes"]
    kind, third = partition.process(config, _record(3, 3))
    got = {m["metric"]: m for m in third["metrics"]}
    assert third["notes"]["pixel changes"] == "since DARK/WFI07/2026-01-02T00:00:00.000"
    assert got["n_recovered_hot"]["detector"] == new.sum()
    partition.close()


def test_masks_over_the_message_budget_are_left_out_and_named() -> None:
    from rdmt_core.wire import MASKS_BUDGET, metric_record

    dark = registered_monitors()["dark"]
    from rdmt_core.records import FileIdentity

    identity = FileIdentity("x.asdf", "DARK", "WFI01", datetime(2026, 1, 1, tzinfo=UTC))
    measured = measurement(dark, dark.example_arrays(SIDE, 1), identity, load_config(), "r")
    packed = {"hot": b"h" * 100, "dead": b"d" * (MASKS_BUDGET + 1)}
    record = metric_record(measured.result, {"delivery_id": "d", "n_files_in_delivery": 1}, datetime.now(UTC), packed)
    assert set(record["masks"]) == {"hot"} and record["notes"]["pixel masks"].startswith(
        "not sent, too large for one message: dead"
    )


def test_a_dark_agrees_with_the_mask_of_its_detector(tmp_path) -> None:
    """A MASK through the mask monitor, then a DARK: hot_mask_agreement against the MASK's HOT flags."""
    from astropy.time import Time
    from roman_datamodels import datamodels as dm
    from roman_datamodels import dqflags

    from rdmt_core.synthetic import dark_arrays

    _, _, dark_dq = dark_arrays("WFI07", SIDE, 1)
    hot = (dark_dq & dqflags.pixel.HOT) != 0
    flags = np.zeros((SIDE, SIDE), np.uint32)
    flags[: SIDE // 2][hot[: SIDE // 2]] = dqflags.pixel.HOT  # the mask flags the top half's hot pixels only
    model = dm.MaskRefModel.create_fake_data(shape=(SIDE, SIDE))
    model.meta.instrument.detector = "WFI07"
    model.meta.useafter = Time(datetime(2025, 12, 1))
    model.dq = flags
    model.save(tmp_path / "mask_wfi07.asdf")
    dark = write_dark_delivery(tmp_path / "d1", datetime(2026, 1, 1), SIDE, 1, detectors=("WFI07",))
    with EmbeddedPipeline(_config(tmp_path), run_id="one") as pipeline:
        summary, outcomes = pipeline.run([str(tmp_path / "mask_wfi07.asdf"), *map(str, dark)])
    assert [o.problem for o in outcomes] == [None, None]
    result = _dark(summary.results)
    agreement = _by_name(result.metrics)["hot_mask_agreement"]
    assert result.notes["hot mask agreement"] == "against MASK/WFI07/2025-12-01T00:00:00.000"
    assert agreement.detector == pytest.approx(hot[: SIDE // 2].sum() / hot.sum())
    top, bottom = agreement.superpixel[: 32 * 16], agreement.superpixel[32 * 16 :]
    assert set(top[np.isfinite(top)]) == {1.0} and set(bottom[np.isfinite(bottom)]) == {0.0}
    mask_result = next(r for r in summary.results if r.monitor == "mask")
    assert "n_new_hot" in {m.spec.name for m in mask_result.metrics}


def test_a_damaged_stored_mask_is_treated_as_missing_not_as_a_failure() -> None:
    """One unreadable mask in the store must not fail every later file of its identity."""
    from rdmt_core.config import load_config
    from rdmt_core.evaluators import History
    from rdmt_core.monitors import get_monitor
    from rdmt_core.pixel_masks import PixelMasks
    from rdmt_core.records import FileIdentity
    from rdmt_core.results import add_pixel_changes, file_result
    from rdmt_core.synthetic import dark_arrays

    dark = get_monitor("dark")
    rate, _, dq = dark_arrays("WFI07", SIDE, 1)
    identity = FileIdentity("/x.asdf", "DARK", "WFI07", datetime(2026, 2, 1))
    base = file_result(dark, {"dark_slope": rate, "dq": dq}, identity, load_config(), History(), "r")
    masks = {"hot": np.zeros((SIDE, SIDE), bool), "dead": np.zeros((SIDE, SIDE), bool)}
    damaged = PixelMasks("DARK/WFI07/2026-01-01T00:00:00.000", {"hot": b"not a mask", "dead": b"RPM9....."})
    result = add_pixel_changes(base, masks, damaged, damaged)
    got = _by_name(result.metrics)
    assert np.isnan(got["n_new_hot"].detector) and np.isnan(got["hot_mask_agreement"].detector)
    assert "unreadable masks of DARK/WFI07/2026-01-01T00:00:00.000" in result.notes
