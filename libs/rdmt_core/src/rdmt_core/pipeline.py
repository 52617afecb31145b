"""The embedded pipeline: files in; metrics, evaluations, store rows, files and a notification out.

One process, no servers: for each file, recognise its kind, run every enabled
monitor registered for it, evaluate against the store's history, write the
store (all-or-nothing per file and monitor), ECSV and report; at the end, the
delivery overview and one grouped notification. A bad file is reported with
its reason and the run goes on with the others.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .config import RdmtConfig
from .data_access import InputPolicy, RomanInput, open_roman
from .errors import InputError, RdmtError, UnsupportedInput
from .evaluators import History
from .monitors import Monitor, monitors_for, registered_monitors
from .pixel_masks import cross_check_for
from .records import DeliverySummary, FileResult, InputProblem
from .results import add_pixel_changes, evaluate, measurement
from .store import Store, open_store

log = logging.getLogger("rdmt.pipeline")


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def discover(paths: Iterable[str | Path]) -> list[str]:
    """Files to process: each file path as given, ``*.asdf`` files under each directory (sorted)."""
    found: list[str] = []
    for path in paths:
        text = str(path)
        if os.path.isdir(text):
            found.extend(str(p) for p in sorted(Path(text).rglob("*.asdf")) if p.is_file())
        else:
            found.append(text)
    return found


@dataclass
class FileOutcome:
    """What happened to one input file."""

    source: str
    results: list[FileResult] = field(default_factory=list)
    stored: list[bool] = field(default_factory=list)
    problem: InputProblem | None = None
    outputs: list[Path] = field(default_factory=list)


class ResultFiles:
    """The files of one result that the configuration asks for: its ECSV file and its report.

    Shared by the embedded pipeline and the sink service, so both write the same files.
    """

    def __init__(self, config: RdmtConfig, *, overview: bool = False) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.overview = overview  # the reports link to their run's overview (written when the run ends)
        self._maps = None

    def write(self, result: FileResult) -> list[Path]:
        """Write the ECSV file and the report of ``result``; the paths written (the report's HTML page)."""
        written: list[Path] = []
        if self.config.outputs.ecsv:
            from .outputs import write_ecsv

            written.append(write_ecsv(result, self.output_dir / "ecsv"))
        if self.config.outputs.report:
            from .outputs import SuperpixelMaps, write_report

            if self._maps is None:
                self._maps = SuperpixelMaps()  # building the canvases costs ~0.2 s: once per process
            written.append(write_report(result, self.output_dir / "reports", self._maps, overview=self.overview).html)
        return written


class EmbeddedPipeline:
    """Runs monitors on files with an optional store and file outputs.

    Parameters
    ----------
    config : RdmtConfig
        Validated configuration (outputs, store URL, monitors, evaluators).
    run_id : str, optional
        Identifier of this run; re-running with the same id is idempotent.
    store : Store, optional
        An open store to use instead of opening ``config.store_url``.
    """

    def __init__(self, config: RdmtConfig, run_id: str | None = None, store: Store | None = None) -> None:
        self.config = config
        self.run_id = run_id or new_run_id()
        self.output_dir = Path(config.output_dir)
        self._owns_store = store is None and config.outputs.store
        self.store = open_store(config.store_url) if self._owns_store else store
        self.outputs = ResultFiles(config, overview=True)
        self.inputs = InputPolicy.embedded(config.inputs)  # with no roots, any local path: rdmt run on a laptop

    def close(self) -> None:
        if self._owns_store and self.store is not None:
            self.store.close()

    def __enter__(self) -> EmbeddedPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enabled_monitors(self, kind: str) -> list[type[Monitor]]:
        return [m for m in monitors_for(kind) if self.config.monitor(m.name).enabled]

    def process(self, source: str) -> FileOutcome:
        """Process one file; input problems are caught and returned, never raised."""
        outcome = FileOutcome(source)
        try:
            with open_roman(source, self.inputs) as roman:
                monitors = self.enabled_monitors(roman.kind)
                if not monitors:
                    known = ", ".join(sorted(registered_monitors()))
                    raise UnsupportedInput(
                        source, f"no enabled monitor handles kind {roman.kind!r} (monitors: {known})"
                    )
                results, failures = self._evaluate_each(roman, monitors)
            if failures:  # the other monitors' results are kept
                outcome.problem = InputProblem(source, "; ".join(failures))
            for result, masks in results:  # the masks are stored with the result: the next file's previous masks
                outcome.stored.append(
                    self.store.write(result, masks) if self.store and self.config.outputs.store else False
                )
                outcome.results.append(result)  # stored: it belongs to the delivery even if a file output fails
                outcome.outputs.extend(self.write_outputs(result))
        except UnsupportedInput as exc:
            outcome.problem = InputProblem(source, exc.reason, skipped=True)
        except InputError as exc:
            outcome.problem = InputProblem(source, exc.reason)
        except RdmtError as exc:
            outcome.problem = InputProblem(source, str(exc))
        except OSError as exc:
            outcome.problem = InputProblem(source, f"cannot write outputs ({exc})")
        except Exception as exc:  # an error RDMT did not anticipate: this file's problem, never the run's end
            log.debug("unexpected error on %s", source, exc_info=True)
            outcome.problem = InputProblem(
                source, f"unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback and report it)"
            )
        return outcome

    def _evaluate_each(
        self, roman: RomanInput, monitors: list[type[Monitor]]
    ) -> tuple[list[tuple[FileResult, dict[str, np.ndarray]]], list[str]]:
        """Run each monitor on its own: one monitor's failure does not stop the others on the same file.

        Each result comes with the monitor's masks of its tracked pixel classes (empty for most monitors).

        An error RDMT anticipates (an input or configuration problem) of a file's only monitor is
        raised, to be the file's problem; any other exception, a monitor's bug included, is that
        monitor's failure on this file: reported with the file, never the end of the run.
        """
        results: list[tuple[FileResult, dict[str, np.ndarray]]] = []
        failures: dict[str, list[str]] = {}  # reason -> the monitors it stopped: a damaged file is named once
        frames: dict = {}  # the full-frame copies of Level-2 arrays, made once for all monitors of the file
        for monitor in monitors:
            try:
                results.append(self.evaluate(roman, monitor, frames))
            except InputError as exc:
                if len(monitors) == 1:
                    raise
                failures.setdefault(exc.reason, []).append(monitor.name)
            except RdmtError as exc:
                if len(monitors) == 1:
                    raise
                failures.setdefault(str(exc), []).append(monitor.name)
            except Exception as exc:
                log.debug("monitor %s raised on %s", monitor.name, roman.uri, exc_info=True)
                failures.setdefault(
                    f"raised {type(exc).__name__}: {exc} (an error in the monitor, not in your file, unless the "
                    "file is unusual: run with --verbose for the traceback and report it)",
                    [],
                ).append(monitor.name)
        joined = [
            f"{', '.join(names)}{' raised' if reason.startswith('raised ') else ':'} {reason.removeprefix('raised ')}"
            for reason, names in failures.items()
        ]
        return results, joined

    def evaluate(
        self, roman: RomanInput, monitor: type[Monitor], frames: dict | None = None
    ) -> tuple[FileResult, dict[str, np.ndarray]]:
        """Read the monitor's arrays, compute its metrics, add its pixel changes since the previous file's masks
        in the store, and evaluate them against the store's history; the result and the monitor's masks."""
        identity = roman.identity
        arrays = roman.read_arrays(monitor.arrays)
        context = monitor.load_context(roman, self.config.options_for(monitor.name, identity.detector))
        measured = measurement(monitor, arrays, identity, self.config, self.run_id, context, frames)
        history, previous, reference = History(), None, None
        if self.store is not None and self.config.outputs.store:
            window = self.config.evaluators_for(monitor.name, identity.detector).trend.window
            kind, optical_element, exposure_mode = identity.history_group
            history = self.store.history(
                monitor.name, identity.detector, self.config.release, identity.file_time, identity.file_key, window,
                kind=kind, optical_element=optical_element, exposure_mode=exposure_mode,
            )  # fmt: skip
            if monitor.tracked_pixels:
                previous = self.store.previous_masks(
                    monitor.name, identity.detector, self.config.release, identity.file_time, identity.file_key,
                    kind=kind, optical_element=optical_element, exposure_mode=exposure_mode,
                )  # fmt: skip
                check = cross_check_for(monitor.name)
                if check is not None:
                    reference = self.store.reference_masks(
                        check.reference_monitor, identity.detector, self.config.release, identity.file_time
                    )
        result = add_pixel_changes(measured.result, measured.masks, previous, reference)
        return evaluate(result, self.config, history, measured.geometry.pixels_per_cell()), measured.masks

    def write_outputs(self, result: FileResult) -> list[Path]:
        return self.outputs.write(result)

    def run(
        self,
        paths: Sequence[str | Path],
        progress: bool = False,
        on_file: Callable[[FileOutcome], None] | None = None,
    ) -> tuple[DeliverySummary, list[FileOutcome]]:
        """Process every file under ``paths``, then write the overview and notify once."""
        files = discover(paths)
        outcomes: list[FileOutcome] = []
        iterator: Iterable[str] = files
        if progress and len(files) > 1:
            from tqdm import tqdm

            iterator = tqdm(files, unit="file", desc="rdmt", leave=False)
        for source in iterator:
            outcome = self.process(source)
            outcomes.append(outcome)
            if on_file is not None:
                on_file(outcome)
        summary = DeliverySummary(
            run_id=self.run_id,
            release=self.config.release,
            results=[r for o in outcomes for r in o.results],
            problems=[o.problem for o in outcomes if o.problem is not None],
            output_dir=str(self.output_dir),
        )
        if self.config.outputs.report and summary.results:
            from .outputs import write_overview

            try:
                overview = write_overview(summary, self.output_dir / "reports")
                summary = dataclasses.replace(summary, overview_path=str(overview))
            except Exception as exc:  # the results are stored: still notify, without the page
                log.error(
                    "cannot write the delivery overview in %s: %s: %s",
                    self.output_dir / "reports",
                    type(exc).__name__,
                    exc,
                    exc_info=not isinstance(exc, OSError),
                )
        if self.config.outputs.notify and (summary.results or summary.problems):
            from .notify import notify_delivery

            notify_delivery(summary, self.config.notify)
        return summary, outcomes
