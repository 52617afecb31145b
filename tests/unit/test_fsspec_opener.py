"""Files behind fsspec URLs open like local ones (fsspec's in-memory filesystem stands in for s3://)."""

from __future__ import annotations

from datetime import datetime

import fsspec
import pytest

from rdmt_core.data_access import open_roman
from rdmt_core.errors import InputError
from rdmt_core.monitors.dark import DarkMonitor
from rdmt_core.synthetic import write_dark_delivery


def test_a_dark_file_in_an_fsspec_filesystem_is_read(tmp_path):
    (path,) = write_dark_delivery(tmp_path, datetime(2026, 1, 1), side=128, detectors=("WFI11",))
    memory = fsspec.filesystem("memory")
    memory.pipe("/rdmt-test/wfi11.asdf", path.read_bytes())
    try:
        with open_roman("memory://rdmt-test/wfi11.asdf") as roman:
            arrays = roman.read_arrays(DarkMonitor.arrays)
            assert roman.identity.detector == "WFI11" and roman.kind == "DARK"
        assert arrays["dark_slope"].shape == (128, 128)
    finally:
        memory.rm("/rdmt-test", recursive=True)


def test_a_missing_fsspec_file_is_named():
    with pytest.raises(InputError, match=r"memory://rdmt-test/absent.asdf: file not found"):
        with open_roman("memory://rdmt-test/absent.asdf"):
            pass
