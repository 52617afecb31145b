"""Settings of the streaming services: Kafka connection, schema registry, topic prefix, routing, retries, state.

They come from the ``streaming:`` section of the service's YAML file (``rdmt service ... --config``),
then from the environment, which wins (what a deployment sets). Secrets come only from the
environment (``RDMT_KAFKA_SASL_PASSWORD``, ``RDMT_SCHEMA_REGISTRY_AUTH``) and are ``SecretStr``:
:meth:`KafkaSettings.describe` is what may be logged. This module builds confluent-kafka configuration
dictionaries; it opens no connection.

Environment variables:

=================================  ==============================================================
``RDMT_KAFKA_BOOTSTRAP``           bootstrap servers, ``host:port[,host:port]``
``RDMT_KAFKA_SECURITY_PROTOCOL``   ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
``RDMT_KAFKA_SASL_MECHANISM``      e.g. ``SCRAM-SHA-512``, ``PLAIN``
``RDMT_KAFKA_SASL_USERNAME``       SASL user name
``RDMT_KAFKA_SASL_PASSWORD``       SASL password (secret: environment only)
``RDMT_KAFKA_SSL_CA_LOCATION``     CA bundle to verify the brokers (passed through)
``RDMT_KAFKA_GROUP_PROTOCOL``      ``consumer`` (KIP-848, default) or ``classic``
``RDMT_KAFKA_GROUP_INSTANCE_ID``   static group membership id (e.g. the pod name)
``RDMT_TOPIC_PREFIX``              prefix of every topic name (default ``rdmt``)
``RDMT_SCHEMA_REGISTRY_URL``       Confluent-compatible schema registry: messages are produced in
                                   the Confluent wire format with a schema id (default: none,
                                   Avro single-object encoding)
``RDMT_SCHEMA_REGISTRY_AUTH``      ``user:password`` for the registry's basic authentication
                                   (secret: environment only)
``RDMT_STATE_DIR``                 evaluator, notifier: quixstreams state directory (RocksDB),
                                   default ``rdmt-state``
``RDMT_PROCESSING_GUARANTEE``      evaluator, notifier: ``exactly-once`` (default) or
                                   ``at-least-once``
``RDMT_COMMIT_INTERVAL_S``         evaluator, notifier: seconds between checkpoints, default 1
``RDMT_ALERT_TIMEOUT_S``           notifier: seconds after a delivery's first result before it
                                   alerts with what it has, default 900 (ticks every quarter of it)
``RDMT_NOTIFY_REPLAYS``            notifier: also send alerts of releases other than ``live``
``RDMT_NOTIFY_MAX_AGE_S``          notifier: alerts older than this are not sent again, default 86400
``RDMT_NOTIFY_MAX_PER_HOUR``       notifier: notifications per rolling hour at most, default 30
``RDMT_MAX_PROCESSING_S``          a service holding one message longer than this is not live
                                   (``/healthz`` 503), default 900
``RDMT_METRICS_HOST``              address of ``/metrics``, ``/healthz``, ``/readyz``, default 0.0.0.0
``RDMT_LOG_LEVEL``                 DEBUG, INFO (default), WARNING or ERROR
``RDMT_STORE_URL``                 the store (``store_url`` of the configuration): the sink writes there
=================================  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..config import RdmtConfig, describe_validation_error, load_config, read_config_file
from ..errors import ConfigError
from ..routing import RoutingRules

SECTION = "streaming"
ENV = {
    "RDMT_KAFKA_BOOTSTRAP": ("kafka", "bootstrap_servers"),
    "RDMT_KAFKA_SECURITY_PROTOCOL": ("kafka", "security_protocol"),
    "RDMT_KAFKA_SASL_MECHANISM": ("kafka", "sasl_mechanism"),
    "RDMT_KAFKA_SASL_USERNAME": ("kafka", "sasl_username"),
    "RDMT_KAFKA_SASL_PASSWORD": ("kafka", "sasl_password"),
    "RDMT_KAFKA_SSL_CA_LOCATION": ("kafka", "ssl_ca_location"),
    "RDMT_KAFKA_GROUP_PROTOCOL": ("kafka", "group_protocol"),
    "RDMT_KAFKA_GROUP_INSTANCE_ID": ("kafka", "group_instance_id"),
    "RDMT_TOPIC_PREFIX": ("topic_prefix",),
    "RDMT_SCHEMA_REGISTRY_URL": ("schema_registry", "url"),
    "RDMT_SCHEMA_REGISTRY_AUTH": ("schema_registry", "basic_auth_user_info"),
    "RDMT_STATE_DIR": ("service", "state_dir"),
    "RDMT_PROCESSING_GUARANTEE": ("service", "processing_guarantee"),
    "RDMT_COMMIT_INTERVAL_S": ("service", "commit_interval_s"),
    "RDMT_ALERT_TIMEOUT_S": ("service", "alert_timeout_s"),
    "RDMT_NOTIFY_REPLAYS": ("service", "notify_replays"),
    "RDMT_NOTIFY_MAX_AGE_S": ("service", "notify_max_age_s"),
    "RDMT_NOTIFY_MAX_PER_HOUR": ("service", "notify_max_per_hour"),
    "RDMT_MAX_PROCESSING_S": ("service", "max_processing_s"),
    "RDMT_METRICS_HOST": ("observability", "metrics_host"),
    "RDMT_LOG_LEVEL": ("observability", "log_level"),
}
# Settings of the monitors' configuration (rdmt run's file) that a deployment sets in the environment; they win
# over the file, as the streaming settings do.
CONFIG_ENV = {
    "RDMT_STORE_URL": "store_url",
}
SECRETS = {  # settings that must not be in a file: (section, key) -> environment variable
    ("kafka", "sasl_password"): "RDMT_KAFKA_SASL_PASSWORD",
    ("schema_registry", "basic_auth_user_info"): "RDMT_SCHEMA_REGISTRY_AUTH",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Frozen):
    """How to reach the brokers."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Bootstrap servers, host:port[,host:port].")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol."
    )
    sasl_mechanism: str | None = Field(None, description="librdkafka sasl.mechanism, e.g. SCRAM-SHA-512.")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password; from RDMT_KAFKA_SASL_PASSWORD only.")
    ssl_ca_location: str | None = Field(None, description="CA certificates to verify the brokers (ssl.ca.location).")
    group_protocol: Literal["consumer", "classic"] = Field(
        "consumer", description="Consumer group protocol: consumer (KIP-848, fast joins) or classic."
    )
    group_instance_id: str | None = Field(
        None,
        description="Static membership id (e.g. the pod name): with the classic protocol a member restarted after "
        "a crash takes its partitions back at once; with the consumer protocol it must wait out the session.",
    )
    session_timeout_ms: int = Field(10_000, ge=1000, description="Classic protocol: member declared dead after this.")
    max_poll_interval_ms: int = Field(
        1_800_000,
        ge=10_000,
        description="Longest time between two polls before the member leaves the group: longer than the slowest "
        "file times the retries, so a long file does not cost the membership.",
    )

    def common(self) -> dict[str, Any]:
        """The librdkafka settings every client shares (with the secret, for the client only)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        return conf

    def describe(self) -> dict[str, Any]:
        """What may be logged: the settings with the password masked."""
        shown = {k: v for k, v in self.common().items() if k != "sasl.password"}
        if self.sasl_password is not None:
            shown["sasl.password"] = "**********"
        return shown | {"group.protocol": self.group_protocol}

    def producer(self, client_id: str) -> dict[str, Any]:
        """An idempotent producer: no duplicates or reordering from the producer's own retries.

        Keys are hashed with murmur2, as the Java clients and quixstreams (the evaluator and notifier) do,
        so one detector's key lands on the same partition number in every topic of the same size.
        """
        return self.common() | {
            "client.id": client_id,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "zstd",
        }

    def consumer(self, group_id: str, client_id: str, *, from_beginning: bool = True) -> dict[str, Any]:
        """An at-least-once group member: offsets are stored by the application after the work is done."""
        conf = self.common() | {
            "group.id": group_id,
            "client.id": client_id,
            "group.protocol": self.group_protocol,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "fetch.wait.max.ms": 100,
        }
        if self.group_protocol == "classic":
            conf["session.timeout.ms"] = self.session_timeout_ms
            conf["partition.assignment.strategy"] = "cooperative-sticky"
        if self.group_instance_id:
            conf["group.instance.id"] = self.group_instance_id
        return conf

    def admin(self) -> dict[str, Any]:
        return self.common()


class RetrySettings(_Frozen):
    """How a service retries a message whose processing failed for a transient reason."""

    max_attempts: int = Field(4, ge=1, description="Attempts before the message goes to the dead-letter topic.")
    backoff_initial_s: float = Field(0.5, ge=0, description="Wait before the second attempt (seconds).")
    backoff_max_s: float = Field(30.0, ge=0, description="Longest wait between two attempts (seconds).")


class SchemaRegistrySettings(_Frozen):
    """Where the schema registry is, if there is one (see :mod:`.schema_registry`)."""

    url: str | None = Field(
        None,
        description="Base URL of a Confluent-compatible schema registry API, e.g. http://registry:8081 or "
        "http://apicurio:8080/apis/ccompat/v7. Unset: no registry, Avro single-object encoding.",
    )
    basic_auth_user_info: SecretStr | None = Field(
        None, description="user:password for basic authentication; from RDMT_SCHEMA_REGISTRY_AUTH only."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http:// or https:// URL with a host (and no query)")
        return url.rstrip("/")

    def client_config(self) -> dict[str, Any]:
        """Configuration of ``confluent_kafka.schema_registry.SchemaRegistryClient`` (with the secret)."""
        conf: dict[str, Any] = {"url": self.url}
        if self.basic_auth_user_info is not None:
            conf["basic.auth.user.info"] = self.basic_auth_user_info.get_secret_value()
        return conf


class ServiceOptions(_Frozen):
    """Settings of the stateful services (evaluator, notifier)."""

    state_dir: Path = Field(Path("rdmt-state"), description="quixstreams state directory (RocksDB stores).")
    processing_guarantee: Literal["exactly-once", "at-least-once"] = Field(
        "exactly-once", description="Kafka transactions for output, state changelog and offsets together."
    )
    commit_interval_s: float = Field(1.0, gt=0, description="Seconds between checkpoints.")
    alert_timeout_s: float = Field(900.0, gt=0, description="Seconds to wait for a delivery's missing results.")
    notify_replays: bool = Field(False, description="Notify alerts of reprocessing releases too.")
    notify_max_age_s: float = Field(86400.0, gt=0, description="Alerts older than this are not notified.")
    notify_max_per_hour: int = Field(
        30, ge=1, description="Notifications sent per rolling hour at most; more alerts are held back and logged."
    )
    max_processing_s: float = Field(
        900.0, gt=0, description="A service that holds one message longer than this is not live (/healthz 503)."
    )


class ObservabilitySettings(_Frozen):
    """Where a service shows itself: the metrics and probe server's address, the log level."""

    metrics_host: str = Field("0.0.0.0", description="Address of /metrics, /healthz and /readyz.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class StreamingSettings(_Frozen):
    """Everything a streaming service needs besides the monitors' configuration."""

    kafka: KafkaSettings = KafkaSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    topic_prefix: str = Field("rdmt", pattern=r"^[A-Za-z0-9._-]+$", description="Prefix of every topic name.")
    routing: RoutingRules = RoutingRules()
    retry: RetrySettings = RetrySettings()
    service: ServiceOptions = ServiceOptions()
    observability: ObservabilitySettings = ObservabilitySettings()

    def describe(self) -> dict[str, Any]:
        """The effective settings as JSON-able data, secrets masked: what ``--print-settings`` shows."""
        shown = self.model_dump(mode="json", exclude={"kafka"})
        shown["kafka"] = self.kafka.describe()
        if self.schema_registry.basic_auth_user_info is not None:
            shown["schema_registry"]["basic_auth_user_info"] = "**********"
        return shown


def streaming_settings(section: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                       label: str = "streaming settings") -> StreamingSettings:
    """Settings from a ``streaming:`` mapping with the environment on top.

    Raises
    ------
    ConfigError
        Naming the key and value, or a password given in a file.
    """
    data: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (section or {}).items()}
    for (group, key), variable in SECRETS.items():
        if isinstance(data.get(group), dict) and key in data[group]:
            raise ConfigError(f"{label}: {group}.{key} must not be in a file; set {variable}")
    environ = os.environ if environ is None else environ
    for variable, path in ENV.items():
        value = environ.get(variable)
        if value:
            target = data
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
    try:
        return StreamingSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe_validation_error(exc, StreamingSettings)}") from None


def load_service_config(path: str | Path | None) -> tuple[RdmtConfig, StreamingSettings]:
    """The monitors' configuration and the streaming settings from one YAML file (both optional).

    The file is an ``rdmt run`` configuration file with an optional ``streaming:`` section; the variables of
    :data:`CONFIG_ENV` (``RDMT_STORE_URL``) override its keys, as a deployment sets them.
    """
    user = read_config_file(path) if path is not None else {}
    section = user.pop(SECTION, None) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config {path}: '{SECTION}' must be a mapping")
    label = f"config {path}" if path is not None else "default configuration"
    settings = streaming_settings(section, label=f"{label}: {SECTION}")
    from_environment = {key: os.environ[var] for var, key in CONFIG_ENV.items() if os.environ.get(var)}
    try:
        config = load_config(None, **(user | from_environment))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config default configuration", label, 1)) from None
    return config, settings
