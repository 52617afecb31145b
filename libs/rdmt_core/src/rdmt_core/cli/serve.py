"""``rdmt serve``: the dashboard (Starlette under uvicorn) over a store, read-only.

Only click and the standard library at import: Starlette, uvicorn and Bokeh load when the command runs.
"""

from __future__ import annotations

import os

import click

from .common import fail


def _cadences(values: tuple[str, ...]):
    from ..dashboard.queries import Cadence, parse_duration

    per = {}
    for value in values:
        monitor, _, duration = value.partition("=")
        try:
            per[monitor.strip()] = parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(
                f"{value!r}: {exc} (MONITOR=DURATION, e.g. dark=35d)", param_hint="--cadence"
            ) from None
        if not monitor.strip():
            raise click.BadParameter(f"{value!r} names no monitor (MONITOR=DURATION)", param_hint="--cadence")
    return Cadence(per)


@click.command()
@click.option(
    "--store",
    envvar="RDMT_STORE_URL",
    help="Store URL (else RDMT_STORE_URL, else the config's: chdb://rdmt-output/store).",
)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file overriding the defaults.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 in a container).")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--reports",
    type=click.Path(file_okay=False),
    help="The reports directory of the runs (e.g. rdmt-output/reports): links to each file's report, and to its ECSV "
    "in the sibling ecsv/ directory.",
)
@click.option(
    "--cadence",
    multiple=True,
    metavar="MONITOR=DURATION",
    help="How long a monitor may go without a new file before it is shown overdue (e.g. dark=35d, psf_shape=12h); "
    "repeatable. Defaults: 2d for the Level-2 monitors, 45d for the reference-file monitors.",
)
def serve(store, config_file, host, port, reports, cadence) -> None:
    """Serve the dashboard: Now, runs, detectors, trends, super-pixel maps and CSV downloads (read-only).

    Protection (optional): RDMT_DASHBOARD_TOKEN=TOKEN requires 'Authorization: Bearer TOKEN' (or opening
    /?token=TOKEN once, which sets a cookie); RDMT_DASHBOARD_USER_HEADER=X-Forwarded-User requires that
    header, set by a trusted reverse proxy that authenticates the users.
    """
    from pathlib import Path

    from ..config import load_config
    from ..errors import RdmtError
    from ..store.backends import connect, parse_store_url

    cadences = _cadences(cadence)
    try:
        config = load_config(config_file, **({"store_url": store} if store else {}))
        parsed = parse_store_url(config.store_url)
        if parsed.scheme == "chdb" and not os.path.isdir(parsed.path):
            fail(
                f"store {parsed.display} does not exist (no directory {os.path.abspath(parsed.path)}): give the "
                "--store of an earlier `rdmt run` (its default is chdb://rdmt-output/store, or DIR/store with "
                "--output DIR)"
            )
        backend, parsed = connect(config.store_url)  # no DDL: the dashboard never writes
        backend.use_database()
    except RdmtError as exc:
        fail(str(exc))
    except Exception as exc:  # e.g. the database does not exist on the server
        fail(f"store {parsed.display}: cannot open ({str(exc).splitlines()[0] if str(exc) else exc})")
    if reports is not None and not os.path.isdir(reports):
        fail(f"--reports {reports}: no such directory")

    import uvicorn

    from ..dashboard.app import Settings, create_app
    from ..dashboard.queries import DashboardStore

    settings = Settings(
        reports=Path(reports).resolve() if reports else None,
        cadence=cadences,
        token=os.environ.get("RDMT_DASHBOARD_TOKEN") or None,
        user_header=os.environ.get("RDMT_DASHBOARD_USER_HEADER") or None,
    )
    dashboard = DashboardStore(backend, parsed)
    click.echo(f"rdmt serve: store {parsed.display}, http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        uvicorn.run(create_app(dashboard, settings), host=host, port=port, log_level="warning")
    finally:
        dashboard.close()
