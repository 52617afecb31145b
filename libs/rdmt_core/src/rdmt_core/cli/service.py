"""``rdmt service NAME``: run one of the streaming services installed beside the library.

The services live at the top of the repository (``services/<name>/``, the ``rdmt-services``
distribution) and register themselves under the ``rdmt.services`` entry-point group, so the library
never imports them. Each is a :func:`service_command`: the options every service shares
(``--config``, ``--metrics-port``), the loading of the configuration and the streaming settings,
JSON logging and the exit statuses (2 for a configuration error, 1 for a Kafka error that needs a
restart) are here, once; a service module only wires its topics to the library's functions.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import click

from ..errors import RdmtError
from .common import EXIT_SETUP, SERVICE_CONFIG_HELP, fail, load_service

ENTRY_POINT_GROUP = "rdmt.services"
EXIT_KAFKA = 1



def _shared_params() -> list[click.Parameter]:
    return [
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False), help=SERVICE_CONFIG_HELP),
        click.Option(
            ["--metrics-port"], type=int, default=None, envvar="RDMT_METRICS_PORT",
            help="Serve /metrics, /healthz and /readyz on this port (default: no HTTP server).",
        ),
        click.Option(
            ["--print-settings"], is_flag=True,
            help="Print the effective settings (file, then environment; secrets masked) as JSON and exit.",
        ),
    ]


def effective_settings(name: str, config: Any, settings: Any, metrics_port: int | None) -> dict[str, Any]:
    """What a service runs with, as JSON-able data (secrets masked): ``--print-settings`` and the start log line."""
    from ..store.backends import parse_store_url

    try:
        store = parse_store_url(config.store_url).display
    except RdmtError as exc:
        store = f"invalid: {exc}"
    return {
        "service": name,
        "store_url": store,
        "output_dir": str(config.output_dir),
        "release": config.release,
        "outputs": config.outputs.model_dump(mode="json"),
        "inputs": config.inputs.model_dump(mode="json"),
        "metrics_port": metrics_port,
        "streaming": settings.describe(),
    }


def _installed() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


class ServiceGroup(click.Group):
    """The ``rdmt service`` group: one subcommand per installed service, loaded only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_installed())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = _installed().get(name)
        if found is None:
            known = ", ".join(sorted(_installed())) or "none installed (pip install -e services)"
            fail(f"unknown service {name!r} (services: {known})")
        _quiet_authlib()
        return found.load()


def _quiet_authlib() -> None:
    """Silence authlib's import-time warning about httpx (nothing for an operator to act on).

    quixstreams imports confluent-kafka's schema-registry client, whose authlib warns at import, before the
    service's JSON logging starts: a plain-text line in a JSON log. authlib puts an "always" filter for its
    warnings first when imported, so the "ignore" filter goes in after it.
    """
    try:
        import authlib.deprecate  # noqa: F401
    except ImportError:
        return
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")


@click.group(cls=ServiceGroup)
def service() -> None:
    """Run a streaming service (until SIGTERM or SIGINT); see services/README.md."""


def service_command(name: str, *extra: click.Parameter) -> Callable[[Callable[..., None]], click.Command]:
    """Make ``func(config, settings, metrics_port, **extra_options)`` the command ``rdmt service NAME``.

    ``func``'s docstring is the command's help. An :class:`~rdmt_core.errors.RdmtError` raised while it
    starts (an unknown monitor, a store that cannot be opened) exits with status 2 and the message; a
    Kafka or schema-registry error that stops the service exits with status 1 after a JSON log line.
    """

    def wrap(func: Callable[..., None]) -> click.Command:
        def callback(config_file: str | None, metrics_port: int | None, print_settings: bool, **options: Any) -> None:
            import json

            from confluent_kafka import KafkaException

            from ..kafka.observability import json_logging
            from ..kafka.schema_registry import RegistryError

            config, settings = load_service(config_file)
            described = effective_settings(name, config, settings, metrics_port)
            if print_settings:
                click.echo(json.dumps(described, indent=2, sort_keys=True))
                return
            json_logging(f"rdmt-{name}", logging.getLevelName(settings.observability.log_level))
            logging.captureWarnings(True)  # warnings become JSON log lines too
            logging.getLogger("rdmt.streaming").info("starting with %s", json.dumps(described, sort_keys=True))
            try:
                func(config, settings, metrics_port, **options)
            except (KafkaException, RegistryError) as exc:
                logging.getLogger("rdmt.streaming").error("stopping on a %s: %s", type(exc).__name__, exc)
                sys.exit(EXIT_KAFKA)
            except RdmtError as exc:
                fail(str(exc), EXIT_SETUP)

        return click.Command(name, callback=callback, params=[*extra, *_shared_params()], help=func.__doc__)

    return wrap
