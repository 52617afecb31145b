"""The evaluator service: metric records in, evaluation records out, history in quixstreams state.

Wiring only (the decisions are :func:`rdmt_core.history.evaluate_record`, the state layout
:func:`rdmt_core.history.load_window` and :func:`~rdmt_core.history.save_window`). It consumes
``<prefix>.metrics`` (keyed by detector), keeps each detector's history windows in the RocksDB state of
the detector's partition, and produces one ``evaluation_record`` per metric record to
``<prefix>.evaluations``, keyed by detector. A message that is not a metric record, or that cannot be
evaluated (unknown monitor, wrong number of values), goes to ``<prefix>.deadletter`` with the reason.

With the default ``exactly-once`` guarantee, the evaluation records, the dead letters, the state
changelog and the consumer offsets of a checkpoint are committed in one Kafka transaction: a restart
(SIGTERM or SIGKILL) neither loses nor doubles an evaluation, and the history comes back from the
changelog topic even when the state directory is gone.

The packed pixel masks a metric record carries (the dark's hot and dead pixels) are kept in the same
state, one blob per delivery of the history window (``<release>|<monitor>[|<group>]|masks|<file_key>``):
the previous file's masks give the pixel-change metrics (``n_new_<class>``, ``n_recovered_<class>``),
added to the record's metrics before evaluating; a DARK's ``hot_mask_agreement`` reads the detector's
latest MASK masks from the mask monitor's window in the same partition. The evaluation record carries
the added metrics, not the masks (docs/pixel-changes.md).
"""

from __future__ import annotations

import logging
from typing import Any

from quixstreams import Application
from quixstreams.state import State

from rdmt_core import avro
from rdmt_core.cli.service import service_command
from rdmt_core.config import RdmtConfig
from rdmt_core.errors import RdmtError
from rdmt_core.history import (
    evaluate_record,
    load_previous_masks,
    load_reference_masks,
    load_window,
    save_masks,
    save_window,
    window_capacity,
)
from rdmt_core.kafka.deadletters import error_type
from rdmt_core.kafka.schema_registry import Codec
from rdmt_core.kafka.settings import StreamingSettings
from rdmt_core.kafka.stateful import (
    MessageMeter,
    Poison,
    application,
    avro_topic,
    dead_letter,
    deadletter_topic,
    poison_tombstones,
    produced_now,
    run_service,
)
from rdmt_core.kafka.topics import EVALUATIONS, METRICS, spec_for

SERVICE = "evaluator"
log = logging.getLogger("rdmt.streaming.evaluator")


def process(config: RdmtConfig, value: dict[str, Any] | Poison, key: bytes | None, state: State) -> tuple[str, dict]:
    """``("evaluation", record)`` or ``("dead_letter", record)`` for one consumed message."""
    if isinstance(value, Poison):
        return "dead_letter", dead_letter(key, value.value, value.error, value.error_type, f"rdmt-{SERVICE}")
    try:
        window = load_window(state, value, window_capacity(config, value["monitor"], value["detector"]))
        previous, reference = load_previous_masks(state, value, window), load_reference_masks(state, value)
        evaluation, values = evaluate_record(value, config, window, None, previous, reference)
    except (RdmtError, ValueError, KeyError, TypeError) as exc:
        error = f"metric_record {value.get('file_key')} (monitor {value.get('monitor')}): {exc}"
        original = avro.encode("metric_record", value)
        return "dead_letter", dead_letter(key, original, error, error_type(exc), f"rdmt-{SERVICE}")
    save_window(state, value, window, values)
    save_masks(state, value, window)  # the next file's previous masks; not forwarded in the evaluation
    log.info("%s %s %s: %s", value["detector"], value["monitor"], value["file_key"], evaluation["status"])
    return "evaluation", evaluation


def build(config: RdmtConfig, settings: StreamingSettings, meter: MessageMeter) -> Application:
    """The evaluator's quixstreams application (not started), its messages counted by ``meter``."""
    app = application(settings, settings.service, SERVICE, meter)
    prefix = settings.topic_prefix
    metrics, evaluations = spec_for(METRICS), spec_for(EVALUATIONS)
    codec = Codec.from_settings(settings.schema_registry)
    source = avro_topic(app, metrics.name(prefix), metrics.schema, meter, codec, read=True)
    sink = avro_topic(app, evaluations.name(prefix), evaluations.schema, meter, codec, write=True)
    dead = deadletter_topic(app, prefix, meter, codec)

    sdf = poison_tombstones(app.dataframe(source), metrics.schema)
    sdf = sdf.apply(lambda v, k, _t, _h, state: process(config, v, k, state), stateful=True, metadata=True)
    good = sdf.filter(lambda out: out[0] == "evaluation").apply(lambda out: out[1])
    produced_now(good).to_topic(sink, key=lambda record: record["detector"])
    bad = sdf.filter(lambda out: out[0] == "dead_letter").apply(lambda out: out[1])
    produced_now(bad).to_topic(dead, key=lambda record: record["key"])
    return app


@service_command("evaluator")
def command(config: RdmtConfig, settings: StreamingSettings, metrics_port: int | None) -> None:
    """Evaluate metric records against each detector's history (quixstreams state, restored from Kafka)."""
    run_service(f"rdmt-{SERVICE}", build, config, settings, metrics_port)
