"""What the ``rdmt`` commands share: exit statuses, error output, the ``--config`` options, loading.

Imports nothing heavy: the configuration (pydantic, the monitor registry) and the streaming settings
are imported when a command loads them, not when ``rdmt --help`` lists the commands.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from ..config import RdmtConfig
    from ..kafka.settings import StreamingSettings

EXIT_OK, EXIT_FILES, EXIT_SETUP = 0, 1, 2
SERVICE_CONFIG_HELP = (
    "YAML file: rdmt configuration with an optional 'streaming:' section (Kafka, routing, retries, state)."
)
config_option = click.option("--config", "config_file", type=click.Path(dir_okay=False), help=SERVICE_CONFIG_HELP)


def fail(message: str, code: int = EXIT_SETUP) -> NoReturn:
    """Print ``rdmt: error: message`` on stderr and exit with ``code``."""
    click.echo(f"rdmt: error: {message}", err=True)
    sys.exit(code)


def load_config(config_file: str | None, **overrides: Any) -> RdmtConfig:
    """The configuration (defaults, the file, then ``overrides``); exits with status 2 when it is invalid."""
    from ..config import load_config as load
    from ..errors import RdmtError

    try:
        return load(config_file, **overrides)
    except RdmtError as exc:
        fail(str(exc))


def load_service(config_file: str | None) -> tuple[RdmtConfig, StreamingSettings]:
    """The configuration and the streaming settings of a service or Kafka tool; exits with 2 when invalid."""
    from ..errors import RdmtError
    from ..kafka.settings import load_service_config

    try:
        return load_service_config(config_file)
    except RdmtError as exc:
        fail(str(exc))
