"""Every registered monitor, walked from the registry: defaults, docs, and a clean and an anomalous run.

A new monitor package is tested here without a test written for it: its ``defaults.yaml`` is in the
effective default configuration and validates against its options; its ``README.md`` is linked from
docs/index.md and the README's monitor table; it declares the anomaly its example data can carry; and
on that data (512 x 512) with the default configuration and no history, the clean input fails nothing
while the anomalous one fails the declared metric.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from rdmt_core.config import load_config, monitor_defaults
from rdmt_core.evaluators import History
from rdmt_core.monitors import ExpectedFailure, Monitor, registered_monitors
from rdmt_core.records import FileIdentity, FileResult, Status
from rdmt_core.results import file_result

REPO = Path(__file__).resolve().parents[2]
SIDE = 512  # as the monitors' own unit tests: every monitor measures at this size in seconds
SEED = 3
MONITORS = sorted(registered_monitors())


def _package_dir(monitor: type[Monitor]) -> Path:
    return Path(sys.modules[monitor.__module__].__file__).parent


def _page(monitor: type[Monitor]) -> str:
    """The monitor's README.md relative to the repository root."""
    return (_package_dir(monitor) / "README.md").relative_to(REPO).as_posix()


def _run(monitor: type[Monitor], anomaly: bool) -> FileResult:
    arrays = monitor.example_arrays(SIDE, SEED, anomaly=anomaly)
    if monitor.border:  # examples are full frames; a file's arrays are the science arrays inside the border
        b = monitor.border
        arrays = {name: array[b : SIDE - b, b : SIDE - b] for name, array in arrays.items()}
    kind = next(iter(sorted(monitor.reftypes | monitor.model_types)))
    identity = FileIdentity(f"/examples/{monitor.name}.asdf", kind, "WFI01", datetime(2027, 1, 1, tzinfo=UTC))
    context = monitor.example_context(SIDE, SEED, anomaly=anomaly)
    return file_result(monitor, arrays, identity, load_config(), History(), "registry", context)


def _failing(result: FileResult) -> dict[str, set[str]]:
    """Failing metrics, with the evaluators and scales at which they fail."""
    out: dict[str, set[str]] = {}
    for block in result.evaluations:
        if np.any(np.asarray(block.status, dtype=str) == Status.FAIL.value):
            out.setdefault(block.metric, set()).add(f"{block.evaluator}/{block.scale}")
    return out


def test_the_registry_has_the_built_in_monitors():
    assert {"dark", "astrometry", "background", "one_over_f", "psf_shape"} <= set(MONITORS)


@pytest.mark.parametrize("name", MONITORS)
def test_defaults_are_in_the_default_configuration_and_validate(name):
    monitor = registered_monitors()[name]
    defaults = monitor_defaults(monitor)
    assert defaults is not None, f"{_package_dir(monitor)} has no defaults.yaml"
    config = load_config()
    assert name in config.monitors
    assert config.monitors[name].options == defaults.get("options", {})
    monitor.options_model.model_validate(defaults.get("options", {}))
    limited = {
        metric
        for evaluator in ("mission", "soc")
        for key in ("limits", "lower_limits")
        for metric in defaults.get("evaluators", {}).get(evaluator, {}).get(key, {})
    }
    assert limited <= {spec.name for spec in monitor.metric_specs}, "limits of metrics the monitor does not have"


@pytest.mark.parametrize("name", MONITORS)
def test_the_page_is_in_the_package_and_linked_from_the_index_and_the_readme(name):
    monitor = registered_monitors()[name]
    page = _page(monitor)
    assert (REPO / page).is_file(), f"{page} is missing"
    assert f"(../{page}" in (REPO / "docs" / "index.md").read_text(encoding="utf-8"), "not linked from docs/index.md"
    table = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("| [")]
    assert any(f"[{name}]({page})" in line for line in table), "no row in the README's monitor table"


@pytest.mark.parametrize("name", MONITORS)
def test_an_expected_anomaly_is_declared(name):
    monitor = registered_monitors()[name]
    assert isinstance(monitor.anomaly, ExpectedFailure), f"{name} declares no anomaly"
    assert monitor.anomaly.metric in {spec.name for spec in monitor.metric_specs}
    assert monitor.anomaly.description


@pytest.mark.parametrize("name", MONITORS)
def test_clean_example_fails_nothing_and_the_anomaly_fails_the_expected_metric(name):
    monitor = registered_monitors()[name]
    clean = _run(monitor, anomaly=False)
    assert clean.evaluations, "nothing was evaluated"
    assert _failing(clean) == {}, f"the clean example fails: {_failing(clean)}; notes: {clean.notes}"
    anomalous = _run(monitor, anomaly=True)
    failing = _failing(anomalous)
    assert monitor.anomaly.metric in failing, (
        f"{monitor.anomaly.description}: {monitor.anomaly.metric} does not fail (failing: {failing}); "
        f"notes: {anomalous.notes}"
    )


# -- what is derived from the registry, or checked against it -------------------------------------------


def test_the_monitor_lists_of_the_readme_and_the_index_are_generated_from_the_registry():
    from rdmt_core.monitors import index_doc

    assert index_doc.main(["--check"]) == 0, "run python -m rdmt_core.monitors.index_doc"


@pytest.mark.parametrize("name", MONITORS)
def test_ingest_routes_the_monitors_files_to_it(name):
    """Routing comes from the registry: every reftype and exposure type a monitor names reaches it."""
    from rdmt_core.routing import RoutingRules, route_archive, route_crds

    monitor = registered_monitors()[name]
    rules, known, when = RoutingRules(), set(MONITORS), datetime(2027, 1, 1, tzinfo=UTC)
    assert monitor.reftypes or monitor.exposure_types, f"{name}: ingest routes nothing to it"
    for reftype in monitor.reftypes:
        delivery = {"delivery_id": "d", "files": [
            {"uri": "/f.asdf", "reftype": reftype.lower(), "detector": "WFI01", "useafter": when}]}  # fmt: skip
        routed = route_crds(delivery, rules, known, "live", when)
        assert name in {r["monitor"] for r in routed.requests} and not routed.unrouted, reftype
    for exposure_type in monitor.exposure_types:
        event = {"uri": "/i.asdf", "kind": "ImageModel", "detector": "WFI01", "exposure_type": exposure_type,
                 "exposure_start": when, "monitor": None, "release": None}  # fmt: skip
        routed = route_archive(event, rules, known, "live", when)
        assert name in {r["monitor"] for r in routed.requests} and not routed.unrouted, exposure_type


@pytest.mark.parametrize("name", MONITORS)
def test_the_monitor_has_its_request_topic_and_is_deployed_by_compose_and_helm(name):
    import yaml

    from rdmt_core.kafka.topics import requests_suffix, topic_specs

    assert requests_suffix(name) in {spec.suffix for spec in topic_specs()}
    assert f"`rdmt.{requests_suffix(name)}`" in (REPO / "docs" / "topics.md").read_text(encoding="utf-8")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    service = compose.get(f"monitor-{name.replace('_', '-')}")
    assert service is not None, f"docker-compose.yml has no monitor-{name.replace('_', '-')} service"
    assert service["command"][:4] == ["service", "monitor", "--monitor", name]
    values = yaml.safe_load((REPO / "deploy" / "helm" / "rdmt" / "values.yaml").read_text(encoding="utf-8"))
    assert name in [entry["name"] for entry in values["monitors"]], "not in the Helm chart's monitors"


@pytest.mark.parametrize("name", MONITORS)
def test_the_monitor_says_what_it_measures(name):
    monitor = registered_monitors()[name]
    assert monitor.title and monitor.summary, "title and summary appear in the README and the docs index"


@pytest.mark.parametrize("name", MONITORS)
def test_a_monitors_figures_never_share_a_file_name_with_its_maps(name, tmp_path):
    """Figures are <stem>_NAME.png and maps <stem>_METRIC.png: one written over the other loses a figure."""
    from rdmt_core.outputs import write_report
    from rdmt_core.outputs.monitor_figures import FIGURES

    monitor = registered_monitors()[name]
    assert set(monitor.figures) <= set(FIGURES), f"{name}: unknown figures"
    assert not set(monitor.figures) & {spec.name for spec in monitor.metric_specs}, f"{name}: a figure is a metric"
    report = write_report(_run(monitor, anomaly=True), tmp_path)
    names = [path.name for path in report.figures]
    assert len(names) == len(set(names)), f"{name}: figure files written twice: {sorted(names)}"
    assert all(path.is_file() for path in report.figures)


@pytest.mark.parametrize("name", MONITORS)
def test_metric_names_are_identifiers(name):
    """Figure names rely on it: ``<stem>_<metric>-vs-previous.png`` can never be a metric's own map."""
    monitor = registered_monitors()[name]
    assert all(spec.name.isidentifier() for spec in monitor.metric_specs), name


@pytest.mark.parametrize("name", MONITORS)
def test_a_reference_monitor_with_example_files_is_in_the_demo(name):
    """The demo delivers every reference type a monitor can write example files of, with its anomaly."""
    import importlib

    from rdmt_core.cli.demo import REFERENCE_DELIVERIES

    monitor = registered_monitors()[name]
    examples = importlib.import_module(f"{monitor.__module__.rpartition('.')[0]}.examples")
    if monitor.reftypes and hasattr(examples, "reference_arrays"):
        assert name in REFERENCE_DELIVERIES, f"{name}: add its delivery to rdmt_core.cli.demo.REFERENCE_DELIVERIES"
    assert set(REFERENCE_DELIVERIES) <= set(registered_monitors())
