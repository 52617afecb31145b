"""``rdmt run``, ``rdmt sql`` and ``rdmt history``: the embedded pipeline and its store.

Exit status of ``rdmt run``: 0 when every file was processed, 1 when any file failed or was skipped,
2 for a usage, configuration or store error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import RdmtError
from .common import EXIT_FILES, EXIT_OK, fail, load_config


def _config(config_file: str | None, store: str | None, output: str | None, **extra: object):
    return load_config(config_file, store_url=store, output_dir=output, **extra)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file overriding the defaults.")
@click.option(
    "--store",
    help="Store URL: chdb://relative/dir, chdb:///absolute/dir or clickhouse://host:8123/db "
    "(default chdb://OUTPUT/store, inside --output).",
)
@click.option("--output", help="Directory for ECSV files, reports and the default store (default rdmt-output).")
@click.option("--run-id", help="Run identifier; re-running a file with the same id changes nothing.")
@click.option("--release", help="Release name stored with the results (default live).")
@click.option("--store-results/--no-store", "store_results", default=None, help="Write to the store.")
@click.option("--ecsv/--no-ecsv", default=None, help="Write ECSV files.")
@click.option("--report/--no-report", default=None, help="Write reports.")
@click.option("--notify/--no-notify", default=None, help="Send the grouped notification.")
def run(paths, config_file, store, output, run_id, release, store_results, ecsv, report, notify) -> None:
    """Monitor ASDF files and directories (PATH...)."""
    switches = {"store": store_results, "ecsv": ecsv, "report": report, "notify": notify}
    config = _config(
        config_file,
        store,
        output,
        release=release,
        outputs={k: v for k, v in switches.items() if v is not None},
    )
    if store is None and output is not None and config.store_url == _config(None, None, None).store_url:
        # the default store follows --output (a store_url from the config file or --store is kept)
        config = config.model_copy(update={"store_url": f"chdb://{output.rstrip('/') or '/'}/store"})
    code = run_and_report(config, list(paths), run_id)
    sys.exit(code)


def _result_line(result, stored: bool, store_on: bool) -> str:
    """One line per result: its verdict in capitals, the file, the monitor and what to know about it."""
    from ..records import Status

    verdict = result.verdict
    if verdict == "not measured":
        what = f"not measured, {result.unmeasured}"
    elif verdict in (Status.FAIL.value, Status.CAUTION.value):
        what = f"{result.count(Status.FAIL)} failing, {result.count(Status.CAUTION)} caution values"
    elif verdict == Status.INCOMPLETE.value:
        what = f"{result.count_unjudged()} values could not be judged (no value, e.g. too few stars: see the report)"
    else:
        what = "all values pass"
    if result.waiting_for_history and verdict != "not measured":
        what += "; no history yet for change/trend"
    note = "" if stored or not store_on else " (already stored)"
    identity = result.identity
    return (
        f"{verdict.upper():12s} {identity.detector} {identity.kind} "
        f"{identity.file_time:%Y-%m-%dT%H:%M:%S} {result.monitor}: {what}{note}"
    )


def run_and_report(config, paths: list[str], run_id: str | None) -> int:
    """Run the embedded pipeline, print each file's lines as soon as it is done, then a summary; return the
    exit status (0: every file processed; 1: a file could not be, or no file was found)."""
    from collections import Counter

    from ..pipeline import EmbeddedPipeline, discover
    from ..records import Status
    from ..store.backends import parse_store_url

    files = discover(paths)
    if not files:
        where = ", ".join(paths)
        click.echo(f"rdmt: no *.asdf file found under {where}: nothing to monitor", err=True)
        return EXIT_FILES
    progress = sys.stderr.isatty() and len(files) > 1

    def echo(line: str, err: bool = False) -> None:
        if progress:  # above the progress bar, which stays at the bottom
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr if err else sys.stdout)
        else:
            click.echo(line, err=err)

    def show(outcome) -> None:
        if outcome.problem is not None:
            word = "skipped" if outcome.problem.skipped else "FAILED"
            echo(f"{word}: {outcome.problem.source}: {outcome.problem.reason}", err=True)
        for result, stored in zip(outcome.results, outcome.stored, strict=True):
            echo(_result_line(result, stored, config.outputs.store))

    try:
        pipeline = EmbeddedPipeline(config, run_id=run_id)
    except RdmtError as exc:
        fail(str(exc))
    with pipeline:
        summary, outcomes = pipeline.run(files, progress=progress, on_file=show)

    verdicts = Counter(r.verdict for r in summary.results)
    waiting = sum(1 for r in summary.results if r.waiting_for_history and r.verdict != "not measured")
    errors = sum(1 for o in outcomes if o.problem is not None and not o.problem.skipped)
    skipped = sum(1 for o in outcomes if o.problem is not None and o.problem.skipped)
    n_ok = len(outcomes) - errors - skipped  # a file where one monitor failed is not processed
    counts = ", ".join(
        f"{verdicts[v]} {v}"
        for v in (Status.FAIL.value, Status.CAUTION.value, "not measured", Status.INCOMPLETE.value, Status.PASS.value)
        if verdicts[v]
    )
    click.echo(
        f"\nrun {summary.run_id}: {n_ok} of {len(outcomes)} files processed"
        + (f", {errors} with errors" if errors else "")
        + (f", {skipped} skipped (no monitor for them)" if skipped else "")
        + f"; {len(summary.results)} results (file x monitor): {counts or 'none'}"
        + (f"; {waiting} of them wait for history (change/trend need earlier files)" if waiting else "")
    )
    failed = summary.failed_results
    if config.outputs.store:
        click.echo(f"store:    {parse_store_url(config.store_url).display}")
    output_dir = Path(config.output_dir)
    if (config.outputs.ecsv or config.outputs.report) and output_dir.is_dir() and any(output_dir.iterdir()):
        click.echo(f"outputs:  {output_dir.resolve()}")
    if summary.overview_path and Path(summary.overview_path).exists():
        click.echo(f"overview: {Path(summary.overview_path).resolve()}")
    for result in failed:
        evaluators = sorted({b.evaluator for b in result.evaluations if (b.status == Status.FAIL.value).any()})
        click.echo(f"  failed: {result.identity.detector} {result.monitor} ({', '.join(evaluators)})")
    for result in summary.unmeasured_results:
        click.echo(f"  not measured: {result.identity.detector} {result.monitor}: {result.unmeasured}")
    return EXIT_OK if n_ok == len(outcomes) else EXIT_FILES


def _open_store(store: str | None, config_file: str | None):
    """The store to read (``sql``, ``history``): it must exist; a mistyped path is not a new, empty store."""
    import os

    from ..store import open_store
    from ..store.backends import parse_store_url

    config = _config(config_file, store, None)
    try:
        parsed = parse_store_url(config.store_url)
        if parsed.scheme == "chdb" and not os.path.isdir(parsed.path):
            fail(
                f"store {parsed.display} does not exist (no directory {os.path.abspath(parsed.path)}): give the "
                "--store of an earlier `rdmt run` (its default is chdb://rdmt-output/store, or DIR/store with "
                "--output DIR)"
            )
        return open_store(config.store_url)
    except RdmtError as exc:
        fail(str(exc))


def _print_frame(frame, fmt: str) -> None:
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(frame.to_json(orient="records", date_format="iso", lines=True), nl=False)
    else:
        click.echo(frame.to_string(index=False) if len(frame) else "(no rows)")


@click.command()
@click.argument("query")
@click.option("--store", help="Store URL (default from the config: chdb://rdmt-output/store).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file overriding the defaults.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
def sql(query, store, config_file, fmt) -> None:
    """Run a SQL query on the store (tables metrics, evaluations, files of database rdmt)."""
    with _open_store(store, config_file) as db:
        try:
            frame = db.sql(query)
        except RdmtError as exc:
            fail(str(exc))
        _print_frame(frame, fmt)


@click.command()
@click.option("--monitor", required=True, help="Monitor name, e.g. dark or psf_shape.")
@click.option("--metric", required=True, help="One of the monitor's metrics, e.g. n_hot_pixels.")
@click.option("--detector", required=True, help="Detector, WFI01..WFI18.")
@click.option(
    "--scale",
    type=click.Choice(["detector", "amplifier", "superpixel"]),
    default="detector",
    show_default=True,
    help="Scale of the values: one per file, or one row per amplifier or super-pixel.",
)
@click.option("--release", help="Only this release (default: every release).")
@click.option(
    "--filter",
    "optical_element",
    help="Only the files of this optical element, e.g. F158 (flats and other per-element references, images).",
)
@click.option("--store", help="Store URL (default from the config: chdb://rdmt-output/store).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file overriding the defaults.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
def history(monitor, metric, detector, scale, release, optical_element, store, config_file, fmt) -> None:
    """A metric's values over deliveries for one detector, with the worst status of each.

    Files of different optical elements or exposure modes have separate histories: the columns
    optical_element and exposure_mode are shown when any file has one.
    """
    from ..monitors import get_monitor

    try:
        specs = get_monitor(monitor).metric_specs
    except RdmtError as exc:
        fail(str(exc))
    names = [spec.name for spec in specs]
    if metric not in names:
        from ..config import did_you_mean

        fail(f"monitor {monitor!r} has no metric {metric!r}{did_you_mean(metric, names)} (metrics: {', '.join(names)})")
    with _open_store(store, config_file) as db:
        frame = db.metric_history(monitor, metric, detector.upper(), scale, release, optical_element)
        if optical_element and frame.empty:
            known = db.optical_elements(monitor, detector.upper())
            fail(
                f"no {monitor} files of optical element {optical_element.upper()} on {detector.upper()} "
                f"(optical elements: {', '.join(known) or 'none, its files have no optical element'})"
            )
        empty = [c for c in ("optical_element", "exposure_mode") if c in frame and not (frame[c] != "").any()]
        _print_frame(frame.drop(columns=empty), fmt)
