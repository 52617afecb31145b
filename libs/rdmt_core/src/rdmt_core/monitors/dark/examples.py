"""Example DARK arrays of the dark monitor, clean or with a cluster of hot pixels (:mod:`rdmt_core.synthetic`)."""

from __future__ import annotations

import numpy as np

CLUSTER_SIDE = 96  # pixels: as the demo's cluster; fills whole super-pixels at any size from 256


def example_arrays(side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
    """``dark_slope`` and ``dq`` of synthetic WFI01; with ``anomaly`` a 96x96 cluster at 0.5 DN/s.

    The cluster starts a quarter of the way into the frame, so it covers whole super-pixels and
    fails their hot-pixel count whatever the frame size.
    """
    from ...synthetic import Anomaly, HotCluster, dark_arrays

    injected = Anomaly(hot_cluster=HotCluster(side // 4, side // 4, min(CLUSTER_SIDE, side // 2))) if anomaly else None
    dark_slope, _, dq = dark_arrays("WFI01", side, delivery_seed=seed, anomaly=injected)
    return {"dark_slope": dark_slope, "dq": dq}
