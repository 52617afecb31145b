"""From arrays to a FileResult, including Level-2 arrays placed back into the full frame."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import BaseModel

from rdmt_core.config import load_config
from rdmt_core.errors import InputError
from rdmt_core.evaluators import History
from rdmt_core.measure.blockstats import count_at_scales, distribution_at_scales
from rdmt_core.monitors import Monitor, MonitorResult
from rdmt_core.monitors.dark import DarkMonitor
from rdmt_core.records import ArraySpec, FileIdentity, Metric, MetricSpec
from rdmt_core.results import file_result

IDENTITY = FileIdentity("/data/image.asdf", "ImageModel", "WFI04", datetime(2026, 5, 1, tzinfo=UTC))


@pytest.fixture
def level2_monitor():
    """A throwaway monitor of 4088-style images (border 4), removed from the registry afterwards."""

    class Options(BaseModel):
        pass

    class CountingMonitor(Monitor):
        name = "test_level2_counts"
        title = "Test"
        model_types = frozenset({"ImageModel"})
        arrays = {"data": ArraySpec("f")}  # noqa: RUF012
        border = 4
        options_model = Options
        metric_specs = (MetricSpec("n_pixels", "pixels", "finite pixels", extensive=True),)

        @classmethod
        def example_arrays(cls, side, seed):
            return {"data": np.ones((side - 8, side - 8), dtype=np.float32)}

        @classmethod
        def compute(cls, arrays, options, context):
            frame = arrays["data"]
            counts = distribution_at_scales(frame, (50.0,)).count
            return MonitorResult([Metric(cls.metric_specs[0], counts)])

    yield CountingMonitor
    del Monitor._registry["test_level2_counts"]


def test_level2_arrays_are_measured_in_the_full_frame(level2_monitor):
    science = np.ones((248, 248), dtype=np.float32)  # a 256 frame less its 4-pixel border
    result = file_result(level2_monitor, {"data": science}, IDENTITY, load_config(), History(), "r")
    counts = result.metrics[0].values
    assert counts.detector == 248 * 248
    assert counts.amplifier[0] == 4 * 248 and counts.amplifier[1] == 8 * 248
    assert counts.superpixel[0] == 4 * 4 and counts.superpixel[33] == 8 * 8


def test_arrays_that_do_not_split_into_scales_name_the_file():
    arrays = {"dark_slope": np.zeros((100, 100), np.float32), "dq": np.zeros((100, 100), np.uint32)}
    with pytest.raises(InputError, match=r"/data/image.asdf: array 'dark_slope' .*divisible by 32"):
        file_result(DarkMonitor, arrays, IDENTITY, load_config(), History(), "r")


def test_result_status_counts_match_the_blocks():
    rate = np.full((64, 64), 0.005, dtype=np.float32)
    rate[:2, :2] = 5.0  # hot and above every rate limit at one super-pixel
    arrays = {"dark_slope": rate, "dq": np.zeros(rate.shape, np.uint32)}
    result = file_result(DarkMonitor, arrays, IDENTITY, load_config(), History(), "r")
    assert result.count(result.status) > 0 and result.status.value == "fail"
    assert count_at_scales(rate > 1).detector == 4


def test_monitors_of_one_file_share_read_only_frames(level2_monitor):
    science = {"data": np.ones((248, 248), dtype=np.float32)}
    frames: dict = {}
    first = file_result(level2_monitor, science, IDENTITY, load_config(), History(), "r", frames=frames)
    assert len(frames) == 1
    (frame,) = frames.values()
    assert frame.shape == (256, 256) and not frame.flags.writeable
    second = file_result(level2_monitor, science, IDENTITY, load_config(), History(), "r", frames=frames)
    assert len(frames) == 1, "the second monitor reuses the frame"
    alone = file_result(level2_monitor, science, IDENTITY, load_config(), History(), "r")
    for result in (first, second):
        np.testing.assert_array_equal(result.metrics[0].values.superpixel, alone.metrics[0].values.superpixel)
