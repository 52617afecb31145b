"""Configuration: package defaults, a user YAML file on top, validated by pydantic.

The defaults ship as ``defaults.yaml`` in the package (store, outputs, notify,
release) and one ``defaults.yaml`` in each monitor's package (``monitors.<name>``:
its options and the limits of its evaluators). A user file overrides any
part of them, key by key (mappings are merged recursively; lists and scalars
replace). Per-detector overrides sit under ``monitors.<name>.detectors.WFInn``
and have the same shape as the monitor's ``options`` and ``evaluators``.

Errors name the file, the dotted key and the bad value. Secrets (webhook URLs,
SMTP passwords) are never in the file: the file names the environment variable
that holds them.
"""

from __future__ import annotations

import collections.abc
import copy
import difflib
import functools
import re
import sys
import types
import typing
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .monitors import Monitor, get_monitor, registered_monitors

DETECTOR_PATTERN = re.compile(r"^WFI(0[1-9]|1[0-8])$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScaleLimit(_Strict):
    """A limit given per scale; a missing scale is derived from ``detector`` as for a plain number."""

    detector: float | None = None
    amplifier: float | None = None
    superpixel: float | None = None


Limit = float | ScaleLimit


class AbsoluteEvaluatorConfig(_Strict):
    """``mission`` and ``soc``: a metric fails above its limit."""

    enabled: bool = Field(True, description="Run this evaluator.")
    caution_fraction: float = Field(
        0.9, gt=0, le=1, description="Caution when the value exceeds this fraction of the limit."
    )
    limits: dict[str, Limit] = Field(
        default_factory=dict,
        description="Upper limit per metric; a number applies at the detector scale and is scaled by pixel "
        "count to amplifiers and super-pixels for count metrics.",
    )
    lower_limits: dict[str, Limit] = Field(
        default_factory=dict,
        description="Lower limit per metric (fail below it; caution below limit + (1 - caution_fraction) * "
        "|limit|); with an upper limit it gives an expected range.",
    )


class ChangeEvaluatorConfig(_Strict):
    """``change``: relative change from the previous delivery."""

    enabled: bool = True
    tolerance: float = Field(0.11, gt=0, description="Largest allowed |new - previous| / |previous|.")
    caution_fraction: float = Field(
        0.8, gt=0, le=1, description="Caution above this fraction of the tolerance."
    )
    min_abs_change: dict[str, float] = Field(
        default_factory=dict,
        description="Per metric, an absolute change at or below which the change passes whatever its ratio.",
    )


class TrendEvaluatorConfig(_Strict):
    """``trend``: robust z-score against the rolling history."""

    enabled: bool = True
    window: int = Field(10, ge=2, description="Number of previous deliveries in the rolling history.")
    min_history: int = Field(5, ge=2, description="Deliveries needed before the evaluator gives a verdict.")
    caution_z: float = Field(3.0, gt=0, description="Caution when |z| exceeds this.")
    fail_z: float = Field(5.0, gt=0, description="Fail when |z| exceeds this.")
    min_sigma_fraction: float = Field(
        0.01,
        ge=0,
        description="Floor of the robust sigma as a fraction of |median| (a flat history is not noise-free).",
    )
    min_abs_change: dict[str, float] = Field(
        default_factory=dict, description="Per metric, a deviation at or below which the trend passes."
    )


class EvaluatorsConfig(_Strict):
    mission: AbsoluteEvaluatorConfig = AbsoluteEvaluatorConfig()
    soc: AbsoluteEvaluatorConfig = AbsoluteEvaluatorConfig()
    change: ChangeEvaluatorConfig = ChangeEvaluatorConfig()
    trend: TrendEvaluatorConfig = TrendEvaluatorConfig()


class DetectorOverride(_Strict):
    options: dict[str, Any] = Field(default_factory=dict)
    evaluators: dict[str, Any] = Field(default_factory=dict)


class MonitorConfig(_Strict):
    enabled: bool = Field(True, description="Run this monitor on the files it accepts.")
    options: dict[str, Any] = Field(default_factory=dict, description="The monitor's own options.")
    evaluators: EvaluatorsConfig = EvaluatorsConfig()
    detectors: dict[str, DetectorOverride] = Field(default_factory=dict)

    @field_validator("detectors")
    @classmethod
    def _detector_names(cls, value: dict[str, DetectorOverride]) -> dict[str, DetectorOverride]:
        for name in value:
            if not DETECTOR_PATTERN.match(name):
                raise ValueError(f"detector {name!r} is not one of WFI01..WFI18")
        return value


class OutputsConfig(_Strict):
    store: bool = Field(True, description="Write metrics and evaluations to the store.")
    ecsv: bool = Field(True, description="Write one ECSV file per file and monitor.")
    report: bool = Field(True, description="Write Markdown/HTML reports and super-pixel maps.")
    notify: bool = Field(True, description="Send the grouped notification after a delivery.")


class SmtpConfig(_Strict):
    host: str
    port: int = 25
    sender: str
    recipients: list[str]
    username: str | None = None
    password_env: str = Field(
        "RDMT_SMTP_PASSWORD", description="Environment variable holding the SMTP password."
    )
    starttls: bool = False
    timeout_s: float = 10.0


class NotifyConfig(_Strict):
    slack_webhook_env: str = Field(
        "RDMT_SLACK_WEBHOOK_URL",
        description="Environment variable holding a Slack-compatible incoming-webhook URL.",
    )
    smtp: SmtpConfig | None = None
    report_base_url: str | None = Field(
        None,
        description="Public URL of the output directory; links in notifications use it instead of paths.",
    )
    timeout_s: float = 10.0


class InputsConfig(_Strict):
    """Where the monitors may read files from: everything else is refused before it is opened."""

    roots: list[Path] = Field(
        default_factory=list,
        description="Local directories files may be read from (symlinks and '..' resolved first); empty: any "
        "local path for rdmt run, none for the services unless allow_any_local_path.",
    )
    uri_prefixes: list[str] = Field(
        default_factory=list,
        description="Remote URIs allowed, by scheme and bucket prefix, e.g. s3://roman-crds/references/.",
    )
    allow_any_local_path: bool = Field(
        False,
        description="Let a service with no roots read any local path (rdmt run always may when roots is empty).",
    )
    read_timeout_s: float = Field(
        300.0, gt=0, description="Opening one file and reading its arrays takes at most this long, in seconds."
    )

    @field_validator("uri_prefixes")
    @classmethod
    def _remote_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            scheme, sep, rest = prefix.partition("://")
            bucket = rest.split("/", 1)[0]
            if scheme.lower() == "file":
                raise ValueError(f"uri prefix {prefix!r}: file:// URIs are local paths, allowed by inputs.roots")
            if not sep or not scheme or not bucket or bucket in (".", ".."):
                raise ValueError(f"uri prefix {prefix!r} must name a scheme and a bucket, e.g. s3://bucket/path/")
        return value


class RdmtConfig(_Strict):
    store_url: str = Field(
        "chdb://rdmt-output/store", description="chdb:///path or clickhouse://user:pw@host:8123/db"
    )
    output_dir: Path = Field(Path("rdmt-output"), description="Where ECSV files and reports go.")
    release: str = Field("live", description="Release name stored with every result.")
    outputs: OutputsConfig = OutputsConfig()
    notify: NotifyConfig = NotifyConfig()
    inputs: InputsConfig = InputsConfig()
    monitors: dict[str, MonitorConfig] = Field(default_factory=dict)

    @field_validator("monitors")
    @classmethod
    def _known_monitors(cls, value: dict[str, MonitorConfig]) -> dict[str, MonitorConfig]:
        for name, monitor in value.items():
            options_model = get_monitor(name).options_model  # ConfigError for unknown names
            try:
                options_model.model_validate(monitor.options)
            except ValidationError as exc:
                raise ValueError(f"{name}.options: {describe_validation_error(exc, options_model)}") from None
            for detector, override in monitor.detectors.items():
                try:
                    options_model.model_validate(deep_merge(monitor.options, override.options))
                    EvaluatorsConfig.model_validate(
                        deep_merge(monitor.evaluators.model_dump(), override.evaluators)
                    )
                except ValidationError as exc:
                    raise ValueError(f"{name}.detectors.{detector}: {describe_validation_error(exc)}") from None
        return value

    def monitor(self, name: str) -> MonitorConfig:
        return self.monitors.get(name) or MonitorConfig()

    def options_for(self, monitor: str, detector: str) -> BaseModel:
        """The monitor's validated options for one detector."""
        return _options_for(self, monitor, detector)

    def evaluators_for(self, monitor: str, detector: str) -> EvaluatorsConfig:
        """Evaluator settings for one monitor and detector, overrides applied."""
        return _evaluators_for(self, monitor, detector)

    def __hash__(self) -> int:  # frozen and used as a cache key
        return id(self)


@functools.lru_cache(maxsize=256)
def _options_for(config: RdmtConfig, monitor: str, detector: str) -> BaseModel:
    settings = config.monitor(monitor)
    override = settings.detectors.get(detector, DetectorOverride())
    return get_monitor(monitor).options_model.model_validate(deep_merge(settings.options, override.options))


@functools.lru_cache(maxsize=256)
def _evaluators_for(config: RdmtConfig, monitor: str, detector: str) -> EvaluatorsConfig:
    settings = config.monitor(monitor)
    override = settings.detectors.get(detector)
    if override is None or not override.evaluators:
        return settings.evaluators
    return EvaluatorsConfig.model_validate(deep_merge(settings.evaluators.model_dump(), override.evaluators))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in: mappings recursively, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def monitor_defaults(monitor: type[Monitor]) -> dict[str, Any] | None:
    """The ``defaults.yaml`` of the monitor's package (its ``monitors.<name>`` settings), or None without one."""
    package = sys.modules[monitor.__module__].__package__ or monitor.__module__
    file = resources.files(package).joinpath("defaults.yaml")
    if not file.is_file():
        return None
    settings = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{package}/defaults.yaml: the top level must be a mapping, got {type(settings).__name__}")
    return settings


def default_config_dict() -> dict[str, Any]:
    """The built-in configuration: the core ``defaults.yaml`` and each registered monitor's under ``monitors``."""
    data = yaml.safe_load(resources.files("rdmt_core").joinpath("defaults.yaml").read_text(encoding="utf-8"))
    monitors = {}
    for name, monitor in registered_monitors().items():
        settings = monitor_defaults(monitor)
        if settings is not None:
            monitors[name] = settings
    return {**data, "monitors": monitors}


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to a mistyped ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field_names_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The keys a model accepts at ``loc`` (its path without the last key); [] where that is not a model."""
    annotation: Any = model
    for key in loc:
        if isinstance(key, int):
            return []
        origin = typing.get_origin(annotation)
        if origin in (dict, collections.abc.Mapping):  # dict[str, X]: any key, then X
            annotation = typing.get_args(annotation)[1]
            continue
        if origin in (typing.Union, types.UnionType):  # X | None
            models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else None
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if not is_model or key not in annotation.model_fields:
            return []
        annotation = annotation.model_fields[key].annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        annotation = models[0] if models else None
    return list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """The errors of ``exc`` as one line: each dotted key, what is wrong and the value given.

    With the validated ``model``, a key it does not accept gets the closest key it does ("did you mean").
    """
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        if error["type"] == "value_error":  # our own validators name the key and value themselves
            parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
            continue
        got = repr(error.get("input"))
        hint = ""
        if error["type"] == "extra_forbidden" and error["loc"]:
            hint = did_you_mean(str(error["loc"][-1]), _field_names_at(model, tuple(error["loc"][:-1])))
        parts.append(f"{where}: {error['msg']}{hint} (got {got if len(got) <= 80 else got[:77] + '...'})")
    return "; ".join(parts)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in the YAML file at ``path`` (empty for an empty file).

    Raises
    ------
    ConfigError
        Naming the file when it cannot be read, is not valid YAML or is not a mapping.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read ({exc.strerror or exc})") from exc
    try:
        user = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(user, dict):
        raise ConfigError(f"config {path}: the top level must be a mapping, got {type(user).__name__}")
    return user


def load_config(path: str | Path | None = None, **overrides: Any) -> RdmtConfig:
    """Defaults, then the YAML file at ``path``, then keyword ``overrides`` (CLI flags).

    Raises
    ------
    ConfigError
        Naming the file, the key and the value when anything is invalid.
    """
    data = default_config_dict()
    label = "default configuration"
    if path is not None:
        label = str(path)
        data = deep_merge(data, read_config_file(path))
    data = deep_merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        return RdmtConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {label}: {describe_validation_error(exc, RdmtConfig)}") from None
    except ConfigError as exc:
        raise ConfigError(f"config {label}: {exc}") from None
