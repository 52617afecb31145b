"""The gain monitor: metrics against plain numpy loops, the amplifier whose gain jumped, bad values, full size."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import get_monitor
from rdmt_core.monitors.gain import GainOptions
from rdmt_core.monitors.gain.examples import JUMP, JUMP_AMPLIFIER, example_arrays, reference_arrays
from rdmt_core.monitors.gain.metrics import gain_metrics
from rdmt_core.records import FileIdentity, Status
from rdmt_core.results import file_result

MONITOR = get_monitor("gain")


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _plain(frame: np.ndarray, max_gain: float) -> dict[str, dict[str, np.ndarray]]:
    """Each metric at each scale by loops over the amplifier strips and super-pixel blocks."""
    side = frame.shape[0]
    c = side // 32
    parts = {
        "detector": [frame],
        "amplifier": [frame[:, a * c : (a + 1) * c] for a in range(32)],
        "superpixel": [frame[i * c : (i + 1) * c, j * c : (j + 1) * c] for i in range(32) for j in range(32)],
    }
    detector_median = np.median(frame[np.isfinite(frame)])
    out = {}
    for scale, cells in parts.items():
        good = [p[np.isfinite(p)] for p in cells]
        good = [g if g.size else np.array([np.nan]) for g in good]
        median = np.array([np.median(g) for g in good])
        out[scale] = {
            "gain_median": median,
            "gain_p1": np.array([np.percentile(g, 1) for g in good]),
            "gain_p99": np.array([np.percentile(g, 99) for g in good]),
            "n_bad_gain": np.array(
                [p.size - np.count_nonzero(np.isfinite(p) & (p > 0) & (p <= max_gain)) for p in cells]
            ),
        }
        if scale != "detector":
            out[scale]["gain_amp_offset"] = median / detector_median - 1.0
    return out


@pytest.mark.parametrize(("side", "detector", "seed"), [(256, "WFI02", 1), (512, "WFI17", 5)])
def test_metrics_at_the_three_scales_match_plain_numpy(side, detector, seed):
    frame = reference_arrays(detector, side, seed)["data"]
    got = _values(gain_metrics(frame, GainOptions()))
    for scale, metrics in _plain(frame, 5.0).items():
        for name, expected in metrics.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} {scale}")
    assert np.isnan(got["gain_amp_offset"].detector)


def test_nan_infinite_and_non_physical_values():
    frame = reference_arrays("WFI09", 256, 3)["data"]
    frame[0:8, 0:8] = np.nan  # super-pixel 0: no finite pixel
    frame[100, 100], frame[101, 101], frame[102, 102] = np.inf, -np.inf, -1.0
    frame[103, 103], frame[104, 104] = 0.0, 7.0  # 0 and above max_gain (5)
    frame[105, 105] = 5.0  # at max_gain: physical
    got = _values(gain_metrics(frame, GainOptions()))
    for scale, metrics in _plain(frame, 5.0).items():
        for name, expected in metrics.items():
            value = got[name].at(scale)
            if scale == "superpixel" and name != "n_bad_gain":
                assert np.isnan(value[0]), name
                value, expected = value[1:], expected[1:]
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} {scale}")
    assert got["n_bad_gain"].superpixel[0] == 64
    original = reference_arrays("WFI09", 256, 3)["data"]
    before = np.count_nonzero(~(np.isfinite(original) & (original > 0) & (original <= 5.0)))
    before_in_cell0 = np.count_nonzero(~(np.isfinite(original[0:8, 0:8]) & (original[0:8, 0:8] > 0)))
    assert got["n_bad_gain"].detector == before - before_in_cell0 + 64 + 5


def test_the_gain_jump_is_found_on_its_amplifier():
    clean = _values(MONITOR.compute(example_arrays(512, 2), GainOptions(), {}))
    jumped = _values(MONITOR.compute(example_arrays(512, 2, anomaly=True), GainOptions(), {}))
    ratio = jumped["gain_median"].amplifier / clean["gain_median"].amplifier
    assert ratio[JUMP_AMPLIFIER - 1] == pytest.approx(JUMP, rel=1e-4)
    assert np.delete(ratio, JUMP_AMPLIFIER - 1) == pytest.approx(1.0)
    offset = jumped["gain_amp_offset"].amplifier
    assert np.argmax(np.abs(offset)) == JUMP_AMPLIFIER - 1 and offset[JUMP_AMPLIFIER - 1] > 0.05
    result = _evaluate("WFI01", 512, 2, anomaly=True)
    failing = {(b.metric, b.scale): set(b.cells[_fails(b)].tolist()) for b in result.evaluations if _fails(b).any()}
    assert failing[("gain_amp_offset", "amplifier")] == {JUMP_AMPLIFIER}
    columns = {cell % 32 for cell in failing[("gain_amp_offset", "superpixel")]}
    assert columns == {JUMP_AMPLIFIER - 1} and len(failing[("gain_amp_offset", "superpixel")]) == 32


def test_reference_arrays_fit_the_gain_model():
    from roman_datamodels import datamodels as dm

    arrays = reference_arrays("WFI12", 64, 1)
    model = dm.GainRefModel.create_fake_data(shape=(64, 64))
    assert set(arrays) == {"data"} and arrays["data"].dtype == model.data.dtype == np.float32
    model.data = arrays["data"]
    assert 1.7 < np.nanmedian(model.data) < 2.1


def _fails(block) -> np.ndarray:
    return np.asarray(block.status, dtype=str) == Status.FAIL.value


def _evaluate(detector: str, side: int, seed: int, anomaly: bool = False, history: History | None = None):
    identity = FileIdentity(f"/x/{detector}.asdf", "GAIN", detector, datetime(2027, 1, 1 + seed, tzinfo=UTC))
    arrays = reference_arrays(detector, side, seed, anomaly)
    return file_result(MONITOR, arrays, identity, load_config(), history or History(), "test")


def _failing(result) -> set[str]:
    return {f"{b.evaluator}/{b.metric}/{b.scale}" for b in result.evaluations if _fails(b).any()}


def _as_history(result) -> History:
    return History({(m.spec.name, s): m.values.at(s)[None, :] for m in result.metrics for s in m.spec.scales})


def check_deliveries(side: int) -> None:
    """Clean deliveries 1 and 2 of every detector fail nothing (empty history, and 2 against 1), the jump fails."""
    for detector in DETECTORS:
        first = _evaluate(detector, side, 1)
        second = _evaluate(detector, side, 2, history=_as_history(first))
        assert not _failing(first) and not _failing(second), (detector, _failing(first), _failing(second))
        assert any(b.evaluator == "change" for b in second.evaluations)
    assert f"soc/{MONITOR.anomaly.metric}/amplifier" in _failing(_evaluate("WFI01", side, 1, anomaly=True))


def test_clean_deliveries_pass_and_the_anomaly_fails_at_512():
    check_deliveries(512)


@pytest.mark.slow
def test_clean_deliveries_pass_and_the_anomaly_fails_at_full_size():
    check_deliveries(4096)
