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


def run_and_report(config, paths: list[str], run_id: str | None) -> int:
    """Run the embedded pipeline and print one line per file plus a summary; return the exit status."""
    from ..pipeline import EmbeddedPipeline
    from ..records import Status
    from ..store.backends import parse_store_url

    try:
        pipeline = EmbeddedPipeline(config, run_id=run_id)
    except RdmtError as exc:
        fail(str(exc))
    with pipeline:
        summary, outcomes = pipeline.run(paths, progress=sys.stderr.isatty())
    for outcome in outcomes:
        if outcome.problem is not None:
            word = "skipped" if outcome.problem.skipped else "FAILED"
            click.echo(f"{word}: {outcome.problem.source}: {outcome.problem.reason}", err=True)
        for result, stored in zip(outcome.results, outcome.stored, strict=True):
            fails = result.count(Status.FAIL)
            note = "" if stored or not config.outputs.store else " (already stored)"
            unmeasured = result.unmeasured is not None and result.status != Status.FAIL
            word = "NOT MEASURED" if unmeasured else result.status.value.upper()
            what = f"not measured, {result.unmeasured}" if unmeasured else f"{fails} failing values"
            click.echo(
                f"{word:12s} {result.identity.detector} {result.identity.kind} "
                f"{result.identity.file_time:%Y-%m-%dT%H:%M:%S} {result.monitor}: {what}{note}"
            )
    failed = summary.failed_results
    n_ok = sum(1 for o in outcomes if o.problem is None)  # a file where one monitor failed is not processed
    unmeasured = summary.unmeasured_results
    click.echo(
        f"\nrun {summary.run_id}: {n_ok} of {len(outcomes)} files processed, {len(failed)} with failures"
        + (f", {len(unmeasured)} {'result' if len(unmeasured) == 1 else 'results'} not measured" if unmeasured else "")
    )
    if config.outputs.store:
        click.echo(f"store:    {parse_store_url(config.store_url).display}")
    if config.outputs.ecsv or config.outputs.report:
        click.echo(f"outputs:  {Path(config.output_dir).resolve()}")
    if summary.overview_path:
        click.echo(f"overview: {Path(summary.overview_path).resolve()}")
    for result in failed:
        evaluators = sorted({b.evaluator for b in result.evaluations if (b.status == Status.FAIL.value).any()})
        click.echo(f"  failed: {result.identity.detector} {result.monitor} ({', '.join(evaluators)})")
    for result in unmeasured:
        click.echo(f"  not measured: {result.identity.detector} {result.monitor}: {result.unmeasured}")
    return EXIT_OK if n_ok == len(outcomes) and outcomes else EXIT_FILES


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
@click.option("--store", help="Store URL (default from the config: chdb://rdmt-output/store).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file overriding the defaults.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
def history(monitor, metric, detector, scale, release, store, config_file, fmt) -> None:
    """A metric's values over deliveries for one detector, with the worst status of each."""
    from ..monitors import get_monitor

    try:
        specs = get_monitor(monitor).metric_specs
    except RdmtError as exc:
        fail(str(exc))
    names = [spec.name for spec in specs]
    if metric not in names:
        fail(f"monitor {monitor!r} has no metric {metric!r} (metrics: {', '.join(names)})")
    with _open_store(store, config_file) as db:
        _print_frame(db.metric_history(monitor, metric, detector.upper(), scale, release), fmt)
