"""The Kafka tools: ``rdmt topics``, ``rdmt publish``, ``rdmt subscribe`` and ``rdmt replay``.

Click commands only; the work is in :mod:`.publish`, :mod:`.subscribe`, :mod:`.replay` and
:mod:`rdmt_core.kafka.topics`, imported when a command runs. Kafka settings come from the environment
(``RDMT_KAFKA_BOOTSTRAP``, ``RDMT_TOPIC_PREFIX``, ...; see :mod:`rdmt_core.kafka.settings`) and the
``streaming:`` section of ``--config``.
"""

from __future__ import annotations

import click

from ..errors import RdmtError
from .common import config_option, fail, load_service


def _quiet_kafka_log():
    """A logger that drops librdkafka's own lines: a failure reaches the user as one error naming the broker."""
    import logging

    quiet = logging.getLogger("rdmt.cli.kafka")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    return quiet


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

    from ..kafka.topics import create_topics, topic_specs

    _, settings = load_service(config_file)
    admin = AdminClient(settings.kafka.admin() | {"logger": _quiet_kafka_log()})
    try:
        outcome = create_topics(admin, settings.topic_prefix, topic_specs())
    except KafkaException as exc:
        fail(f"cannot create topics on {settings.kafka.bootstrap_servers}: {exc.args[0].str() if exc.args else exc} "
             "(is the broker running? RDMT_KAFKA_BOOTSTRAP names it)")
    for name, what in outcome.items():
        click.echo(f"{what:8s} {name}")


@topics.command("list")
@config_option
def topics_list(config_file: str | None) -> None:
    """Print the topics RDMT uses: name, schema, key, partitions, retention, cleanup policy."""
    from ..kafka.topics import table, topic_specs

    _, settings = load_service(config_file)
    rows = table(settings.topic_prefix, topic_specs())
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


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

    from ..kafka.schema_registry import RegistryError
    from ..monitors import registered_monitors
    from .replay import replay as run_replay

    _, settings = load_service(config_file)
    try:
        summary = run_replay(
            settings, monitors or sorted(registered_monitors()), start.replace(tzinfo=UTC), end.replace(tzinfo=UTC),
            release,
        )
    except (ValueError, RuntimeError, RegistryError) as exc:
        fail(str(exc))
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

    from ..kafka.schema_registry import Codec, RegistryError
    from .publish import publish as send

    topic = f"{settings.topic_prefix}.{suffix}"
    try:
        with Codec.from_settings(settings.schema_registry) as codec:
            n = send(_producer(settings), topic, schema, messages, codec=codec)
    except KafkaException as exc:
        fail(f"cannot publish to {topic} on {settings.kafka.bootstrap_servers}: {exc}")
    except RegistryError as exc:
        fail(f"cannot publish to {topic}: {exc}")
    click.echo(f"published {n} {schema} message(s) to {topic}")


@publish.command("crds")
@click.option("--delivery-id", required=True, help="CRDS delivery (submission) identifier.")
@click.option("--context", required=True, help="CRDS context after the delivery, e.g. roman_0042.pmap.")
@click.argument("files", nargs=-1, required=True)
@config_option
def publish_crds(delivery_id: str, context: str, files: tuple[str, ...], config_file: str | None) -> None:
    """Publish one CRDS delivery event for reference FILES."""
    from ..kafka.topics import EVENTS_CRDS
    from .publish import crds_delivery

    _, settings = load_service(config_file)
    try:
        record = crds_delivery(delivery_id, context, files)
    except RdmtError as exc:
        fail(str(exc))
    _publish(settings, EVENTS_CRDS, "crds_delivery", [(delivery_id, record)])


@publish.command("archive")
@click.argument("files", nargs=-1, required=True)
@click.option("--monitor", help="Run only this monitor (default: the routing rules decide).")
@click.option("--release", help="File the results under this release (default: live).")
@config_option
def publish_archive(files: tuple[str, ...], monitor: str | None, release: str | None, config_file: str | None) -> None:
    """Publish one archive event per Level-2 FILE."""
    from ..kafka.topics import EVENTS_ARCHIVE
    from .publish import archive_event

    _, settings = load_service(config_file)
    try:
        records = [archive_event(f, monitor, release) for f in files]
    except RdmtError as exc:
        fail(str(exc))
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
    from ..kafka.schema_registry import Codec
    from .subscribe import print_messages

    _, settings = load_service(config_file)
    with Codec.from_settings(settings.schema_registry) as codec:
        print_messages(settings.kafka, f"{settings.topic_prefix}.{topic}", monitor, detector, from_beginning,
                       max_messages, idle_timeout, echo=click.echo, codec=codec)
