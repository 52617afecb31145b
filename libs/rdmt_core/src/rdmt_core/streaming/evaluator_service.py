"""The evaluator service: metric records in, evaluation records out, history in quixstreams state.

Wiring only (the decisions are in :mod:`.evaluation` and :mod:`.history_state`). It consumes
``<prefix>.metrics`` (keyed by detector), keeps each detector's history windows in the RocksDB
state of the detector's partition (one index and one blob per delivery, per release and monitor),
and produces one ``evaluation_record`` per metric record to ``<prefix>.evaluations``, keyed by
detector. A message that is not a metric record, or that cannot be evaluated (unknown monitor,
wrong number of values), goes to ``<prefix>.deadletter`` with the reason; the partition moves on.

With the default ``exactly-once`` guarantee, the evaluation records, the dead letters, the state
changelog and the consumer offsets of a checkpoint are committed in one Kafka transaction: a
restart (SIGTERM or SIGKILL) neither loses nor doubles an evaluation, and the history comes back
from the changelog topic even when the state directory is gone.

Run it with ``rdmt service evaluator`` or ``python -m rdmt_core.streaming.evaluator_service [--config FILE]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from quixstreams import Application
from quixstreams.state import State

from .. import avro
from ..config import RdmtConfig
from ..errors import RdmtError
from .evaluation import evaluate_record, state_prefix, window_capacity
from .history_state import HistoryWindow, Values, pack_values, unpack_values
from .quix_app import (
    MessageMeter,
    Poison,
    ServiceOptions,
    application,
    avro_topic,
    dead_letter,
    deadletter_topic,
    poison_tombstones,
    produced_now,
    qualified,
    run_service,
)
from .schema_registry import Codec
from .settings import StreamingSettings
from .topics import EVALUATIONS, METRICS, spec_for

SERVICE = "evaluator"
log = logging.getLogger("rdmt.streaming.evaluator")


def _load_window(state: State, record: dict[str, Any], capacity: int) -> HistoryWindow:
    prefix = state_prefix(record)

    def load(file_key: str) -> Values:
        blob = state.get_bytes(f"{prefix}|{file_key}")
        return {} if blob is None else unpack_values(blob)

    return HistoryWindow.from_index(capacity, state.get(f"{prefix}|index", []), load)


def _save(state: State, record: dict[str, Any], window: HistoryWindow, values: Values) -> None:
    prefix = state_prefix(record)
    for dropped in window.add(record["file_key"], record["file_time"], values):
        state.delete(f"{prefix}|{dropped}")
    state.set_bytes(f"{prefix}|{record['file_key']}", pack_values(values))
    state.set(f"{prefix}|index", window.index())


def process(config: RdmtConfig, value: dict[str, Any] | Poison, key: bytes | None, state: State) -> tuple[str, dict]:
    """``("evaluation", record)`` or ``("dead_letter", record)`` for one consumed message."""
    if isinstance(value, Poison):
        return "dead_letter", dead_letter(key, value.value, value.error, value.error_type, f"rdmt-{SERVICE}")
    try:
        window = _load_window(state, value, window_capacity(config, value["monitor"], value["detector"]))
        evaluation, values = evaluate_record(value, config, window)
    except (RdmtError, ValueError, KeyError, TypeError) as exc:
        error = f"metric_record {value.get('file_key')} (monitor {value.get('monitor')}): {exc}"
        original = avro.encode("metric_record", value)
        return "dead_letter", dead_letter(key, original, error, qualified(exc), f"rdmt-{SERVICE}")
    _save(state, value, window, values)
    log.info("%s %s %s: %s", value["detector"], value["monitor"], value["file_key"], evaluation["status"])
    return "evaluation", evaluation


def build(config: RdmtConfig, settings: StreamingSettings, options: ServiceOptions, meter: MessageMeter) -> Application:
    """The evaluator's quixstreams application (not started), its messages counted by ``meter``."""
    app = application(settings, options, SERVICE, meter)
    prefix = settings.topic_prefix
    metrics = spec_for(METRICS)
    evaluations = spec_for(EVALUATIONS)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rdmt-evaluator", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file: rdmt configuration with an optional streaming: section")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics, /healthz and /readyz on this port")
    args = parser.parse_args(argv)
    return run(args.config, args.metrics_port)


def run(config_file: str | None, metrics_port: int | None = None) -> int:
    """Run the service until SIGTERM or SIGINT; 2 for a configuration error."""
    return run_service("rdmt-evaluator", build, config_file, metrics_port)


if __name__ == "__main__":
    sys.exit(main())
