"""One ECSV table per file and monitor: every metric value with every evaluator's verdict.

One row per metric value (detector cell 0, amplifiers 1..32, super-pixels
0..1023). For each evaluator that ran, three columns give its status, its
reference value (the limit for ``mission`` and ``soc``, the previous value for
``change``, the history median for ``trend``) and its reason; they are empty
(NaN for the reference) where that evaluator gave no verdict. Empty text
fields read back from ECSV as masked values.

The table is built by concatenating whole arrays, never row by row. This
module writes the file and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..geometry import SCALES, cells
from ..records import FileResult
from .names import file_stem
from .verdicts import cell_positions, evaluator_names

# Spellings used in metric specs that astropy does not parse as they are.
_UNIT_ALIASES = {"pixels": "pix", "pixel": "pix"}

_DESCRIPTIONS = {
    "detector": "WFI detector (WFI01..WFI18)",
    "monitor": "RDMT monitor that computed the metric",
    "metric": "Metric name",
    "unit": "Unit of value and of the reference columns on this row",
    "scale": "Scale of the value: detector, amplifier or superpixel",
    "cell": "Cell of the scale: 0 for the detector, amplifier 1..32, super-pixel 0..1023 (32 * row + column)",
    "value": "Metric value (NaN when the cell has no finite pixel)",
}
_EVALUATOR_DESCRIPTIONS = {
    "status": "{ev} evaluator status: pass, caution, fail or incomplete (empty: no verdict)",
    "reference": "{ev} evaluator reference value: limit, previous value or history median (NaN: none)",
    "reason": "{ev} evaluator reason for the status (empty: no verdict)",
}


def astropy_unit(unit: str) -> u.UnitBase | None:
    """The astropy unit of a metric's unit string, or None when astropy does not know it."""
    parsed = u.Unit(_UNIT_ALIASES.get(unit, unit), parse_strict="silent")
    return None if isinstance(parsed, u.UnrecognizedUnit) else parsed


def metrics_table(result: FileResult) -> Table:
    """The result as an astropy Table, one row per metric value (see the module docstring)."""
    offsets: dict[tuple[str, str], int] = {}
    parts: dict[str, list[np.ndarray]] = {"metric": [], "unit": [], "scale": [], "cell": [], "value": []}
    n_rows = 0
    for metric in result.metrics:
        for scale in SCALES:
            values = metric.values.at(scale)
            scale_cells = cells(scale)
            if len(values) != len(scale_cells):
                raise ValueError(
                    f"metric {metric.spec.name} has {len(values)} {scale} values, expected {len(scale_cells)}"
                )
            offsets[(metric.spec.name, scale)] = n_rows
            n_rows += len(values)
            parts["metric"].append(np.full(len(values), metric.spec.name))
            parts["unit"].append(np.full(len(values), metric.spec.unit))
            parts["scale"].append(np.full(len(values), scale))
            parts["cell"].append(scale_cells)
            parts["value"].append(values)

    identity = result.identity
    columns: dict[str, np.ndarray] = {
        "detector": np.full(n_rows, identity.detector),
        "monitor": np.full(n_rows, result.monitor),
        **{name: np.concatenate(arrays) if arrays else np.empty(0) for name, arrays in parts.items()},
    }
    columns["cell"] = columns["cell"].astype(np.int32)
    columns["value"] = columns["value"].astype(np.float64)

    for evaluator in evaluator_names([result]):
        status = np.full(n_rows, "", dtype=object)
        reference = np.full(n_rows, np.nan)
        reason = np.full(n_rows, "", dtype=object)
        for block in result.evaluations:
            if block.evaluator != evaluator:
                continue
            start = offsets.get((block.metric, block.scale))
            if start is None:
                raise ValueError(f"{evaluator} evaluated metric {block.metric!r}, which the result does not hold")
            rows = start + cell_positions(block)
            status[rows] = block.status
            reference[rows] = block.reference
            reason[rows] = block.reason
        columns[f"{evaluator}_status"] = status.astype(str)
        columns[f"{evaluator}_reference"] = reference
        columns[f"{evaluator}_reason"] = reason.astype(str)

    table = Table(columns)
    for name, column in table.columns.items():
        prefix, _, kind = name.rpartition("_")
        column.description = _DESCRIPTIONS.get(name) or _EVALUATOR_DESCRIPTIONS[kind].format(ev=prefix)
    common = {metric.spec.unit for metric in result.metrics}
    if len(common) == 1 and (unit := astropy_unit(common.pop())) is not None:
        for name in table.colnames:
            if name == "value" or name.endswith("_reference"):
                table[name].unit = unit
    table.meta.update(_meta(result))
    return table


def _meta(result: FileResult) -> dict[str, object]:
    identity = result.identity
    return {
        "source": identity.source,
        "file_key": identity.file_key,
        "kind": identity.kind,
        "detector": identity.detector,
        "exposure_type": identity.exposure_type,
        "file_time": identity.file_time.isoformat(),
        "run_id": result.run_id,
        "release": result.release,
        "monitor": result.monitor,
        "monitor_title": result.monitor_title,
        "notes": dict(result.notes),
        "metrics": {
            m.spec.name: {
                "unit": m.spec.unit,
                "astropy_unit": "" if (unit := astropy_unit(m.spec.unit)) is None else unit.to_string(),
                "description": m.spec.description,
                "extensive": m.spec.extensive,
            }
            for m in result.metrics
        },
    }


def write_ecsv(result: FileResult, directory: Path) -> Path:
    """Write the result's metrics and verdicts as ``<detector>_<monitor>_<kind>_<time>.ecsv``.

    Parameters
    ----------
    result : FileResult
        One file and one monitor.
    directory : Path
        Output directory; created when missing. An existing file of the same name is replaced.

    Returns
    -------
    Path
        The ECSV file written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{file_stem(result)}.ecsv"
    metrics_table(result).write(path, format="ascii.ecsv", overwrite=True)
    return path
