"""Command groups of the streaming services: ``rdmt topics``, ``rdmt service``, ``rdmt publish``, ``rdmt subscribe``.

Registered on the ``rdmt`` group by :mod:`rdmt_core.cli`. Kafka settings come from the environment
(``RDMT_KAFKA_BOOTSTRAP``, ``RDMT_TOPIC_PREFIX``, ...; see :mod:`.settings`) and the ``streaming:``
section of ``--config``.
"""

from __future__ import annotations

import logging
import sys

import click

from ..errors import RdmtError

EXIT_SETUP = 2
config_option = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False),
    help="YAML file: rdmt configuration with an optional 'streaming:' section (Kafka, routing, retries).",
)


def _fail(message: str) -> None:
    click.echo(f"rdmt: error: {message}", err=True)
    sys.exit(EXIT_SETUP)


def _load(config_file: str | None):
    from .settings import load_service_config

    try:
        return load_service_config(config_file)
    except RdmtError as exc:
        _fail(str(exc))


# -- rdmt topics --------------------------------------------------------------------------------

@click.group()
def topics() -> None:
    """Create or list the Kafka topics (docs/topics.md)."""


@topics.command("create")
@config_option
def topics_create(config_file: str | None) -> None:
    """Create every missing topic; existing topics are left as they are."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from .topics import create_topics, topic_specs

    _, settings = _load(config_file)
    admin = AdminClient(settings.kafka.admin())
    try:
        outcome = create_topics(admin, settings.topic_prefix, topic_specs())
    except KafkaException as exc:
        _fail(f"cannot create topics on {settings.kafka.bootstrap_servers}: {exc}")
    for name, what in outcome.items():
        click.echo(f"{what:8s} {name}")


@topics.command("list")
@config_option
def topics_list(config_file: str | None) -> None:
    """Print the topics RDMT uses: name, schema, key, partitions, retention, cleanup policy."""
    from .topics import table, topic_specs

    _, settings = _load(config_file)
    rows = table(settings.topic_prefix, topic_specs())
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# -- rdmt service -------------------------------------------------------------------------------

@click.group()
def service() -> None:
    """Run a streaming service (until SIGTERM or SIGINT)."""


metrics_port_option = click.option(
    "--metrics-port", type=int, default=None, envvar="RDMT_METRICS_PORT",
    help="Serve /metrics, /healthz and /readyz on this port (default: no HTTP server).",
)


def _run(runner, metrics_port: int | None) -> None:
    from confluent_kafka import KafkaException

    from .observability import json_logging
    from .schema_registry import RegistryError

    json_logging(runner.service, logging.getLogger().level or logging.INFO)
    try:
        runner.run(metrics_port)
    except KafkaException as exc:
        logging.getLogger("rdmt.streaming").error("stopping on a Kafka error: %s", exc)
        sys.exit(1)
    except RegistryError as exc:  # not even a dead letter could be encoded
        logging.getLogger("rdmt.streaming").error("stopping: %s", exc)
        sys.exit(1)


@service.command("ingest")
@config_option
@metrics_port_option
def service_ingest(config_file: str | None, metrics_port: int | None) -> None:
    """Route CRDS deliveries and archive events to the monitors' request topics."""
    from .ingest import ingest_runner

    config, settings = _load(config_file)
    _run(ingest_runner(config, settings), metrics_port)


@service.command("monitor")
@click.option("--monitor", "name", required=True, help="Monitor to run, e.g. dark.")
@config_option
@metrics_port_option
def service_monitor(name: str, config_file: str | None, metrics_port: int | None) -> None:
    """Run one monitor on the requests of its topic; emit metric records."""
    from .monitor_service import monitor_runner

    config, settings = _load(config_file)
    try:
        runner = monitor_runner(name, config, settings)
    except RdmtError as exc:
        _fail(str(exc))
    _run(runner, metrics_port)



@service.command("evaluator")
@config_option
@metrics_port_option
def service_evaluator(config_file: str | None, metrics_port: int | None) -> None:
    """Evaluate metric records against each detector's history (quixstreams state, restored from Kafka)."""
    from .evaluator_service import run

    sys.exit(run(config_file, metrics_port))


@service.command("notifier")
@config_option
@metrics_port_option
def service_notifier(config_file: str | None, metrics_port: int | None) -> None:
    """Group evaluation results per delivery into one alert, and send it to the configured channels."""
    from .notifier_service import run

    sys.exit(run(config_file, metrics_port))


@service.command("sink")
@config_option
@metrics_port_option
def service_sink(config_file: str | None, metrics_port: int | None) -> None:
    """Write evaluation records (with their metrics) to the store, ECSV files and reports."""
    from .sink_service import sink_runner

    config, settings = _load(config_file)
    try:
        runner, store = sink_runner(config, settings)
    except RdmtError as exc:
        _fail(str(exc))
    try:
        _run(runner, metrics_port)
    finally:
        store.close()


# -- rdmt replay --------------------------------------------------------------------------------

@click.command()
@click.option("--from", "start", required=True, type=click.DateTime(), help="Start of the range (UTC), inclusive.")
@click.option("--to", "end", required=True, type=click.DateTime(), help="End of the range (UTC), exclusive.")
@click.option("--release", required=True, help="Release name of the reprocessed results (not 'live').")
@click.option("--monitor", "monitors", multiple=True, help="Monitor(s) to replay (default: all registered).")
@config_option
def replay(start, end, release: str, monitors: tuple[str, ...], config_file: str | None) -> None:
    """Reprocess the monitor requests produced between --from and --to under a release name."""
    from datetime import UTC

    from ..monitors import registered_monitors
    from .replay import replay as run_replay
    from .schema_registry import RegistryError

    _, settings = _load(config_file)
    try:
        summary = run_replay(
            settings, monitors or sorted(registered_monitors()), start.replace(tzinfo=UTC), end.replace(tzinfo=UTC),
            release,
        )
    except (ValueError, RuntimeError, RegistryError) as exc:
        _fail(str(exc))
    for topic, count in summary.topics.items():
        click.echo(f"{count:6d} requests replayed on {topic}")
    click.echo(f"release {release}: {summary.total} requests, {summary.skipped} skipped (not live requests)")


# -- rdmt publish -------------------------------------------------------------------------------

@click.group()
def publish() -> None:
    """Publish input events (for a user, a test or a replay)."""


def _producer(settings):
    from confluent_kafka import Producer

    return Producer(settings.kafka.producer("rdmt-publish"))


def _publish(settings, suffix: str, schema: str, messages) -> None:
    from confluent_kafka import KafkaException

    from .publish import publish as send
    from .schema_registry import Codec, RegistryError

    topic = f"{settings.topic_prefix}.{suffix}"
    try:
        with Codec.from_settings(settings.schema_registry) as codec:
            n = send(_producer(settings), topic, schema, messages, codec=codec)
    except KafkaException as exc:
        _fail(f"cannot publish to {topic} on {settings.kafka.bootstrap_servers}: {exc}")
    except RegistryError as exc:
        _fail(f"cannot publish to {topic}: {exc}")
    click.echo(f"published {n} {schema} message(s) to {topic}")


@publish.command("crds")
@click.option("--delivery-id", required=True, help="CRDS delivery (submission) identifier.")
@click.option("--context", required=True, help="CRDS context after the delivery, e.g. roman_0042.pmap.")
@click.argument("files", nargs=-1, required=True)
@config_option
def publish_crds(delivery_id: str, context: str, files: tuple[str, ...], config_file: str | None) -> None:
    """Publish one CRDS delivery event for reference FILES."""
    from .publish import crds_delivery
    from .topics import EVENTS_CRDS

    _, settings = _load(config_file)
    try:
        record = crds_delivery(delivery_id, context, files)
    except RdmtError as exc:
        _fail(str(exc))
    _publish(settings, EVENTS_CRDS, "crds_delivery", [(delivery_id, record)])


@publish.command("archive")
@click.argument("files", nargs=-1, required=True)
@click.option("--monitor", help="Run only this monitor (default: the routing rules decide).")
@click.option("--release", help="File the results under this release (default: live).")
@config_option
def publish_archive(files: tuple[str, ...], monitor: str | None, release: str | None, config_file: str | None) -> None:
    """Publish one archive event per Level-2 FILE."""
    from .publish import archive_event
    from .topics import EVENTS_ARCHIVE

    _, settings = _load(config_file)
    try:
        records = [archive_event(f, monitor, release) for f in files]
    except RdmtError as exc:
        _fail(str(exc))
    _publish(settings, EVENTS_ARCHIVE, "archive_event", [(r["detector"], r) for r in records])


# -- rdmt subscribe -----------------------------------------------------------------------------

@click.command()
@click.option("--topic", default="alerts", show_default=True, help="Topic without the prefix, e.g. alerts, metrics.")
@click.option("--monitor", help="Only records of this monitor.")
@click.option("--detector", help="Only records about this detector, e.g. WFI07.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message kept (default: new ones only).")
@click.option("--max", "max_messages", type=int, help="Stop after printing this many messages.")
@click.option("--timeout", "idle_timeout", type=float, help="Stop after this many seconds without a message.")
@config_option
def subscribe(topic, monitor, detector, from_beginning, max_messages, idle_timeout, config_file) -> None:
    """Print the decoded messages of a topic as JSON lines (the public alert topic by default)."""
    from .schema_registry import Codec
    from .subscribe import print_messages

    _, settings = _load(config_file)
    with Codec.from_settings(settings.schema_registry) as codec:
        print_messages(settings.kafka, f"{settings.topic_prefix}.{topic}", monitor, detector, from_beginning,
                       max_messages, idle_timeout, echo=click.echo, codec=codec)


COMMANDS = (topics, service, publish, subscribe, replay)
