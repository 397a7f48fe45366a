"""compose.yaml and the collector config, checked without a Docker engine: Debian's
`docker-compose config` parses and validates the file, and the tests assert on the result."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests import ROOT
from tests.system_tools import system_tool

APPS = {"inventory": 8001, "payment": 8002, "shipping": 8003, "order": 8000}
BACKENDS = ("otel-collector", "jaeger", "prometheus", "loki", "grafana")
DEPLOY = ROOT / "deploy"


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    binary = system_tool("docker-compose")
    full_env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"} | env
    return subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), "config"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = compose_config(POSTGRES_PASSWORD="s3cret")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(
        (ROOT / "deploy" / "otel-collector" / "config.yaml").read_text()
    )
    return parsed


def test_a_missing_password_fails_loudly() -> None:
    result = compose_config()
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_every_app_exports_to_the_collector_and_waits_for_its_dependencies(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {*APPS, *BACKENDS, "postgres"}
    for name, port in APPS.items():
        service = services[name]
        env = service["environment"]
        prefix = f"{name.upper()}_SERVICE_"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        # Logs and metrics as well: the default exporters (otlp), not turned off; metrics
        # more often than the SDK's minute.
        assert env.get("OTEL_LOGS_EXPORTER", "otlp") == "otlp"
        assert env.get("OTEL_METRICS_EXPORTER", "otlp") == "otlp"
        assert int(env["OTEL_METRIC_EXPORT_INTERVAL"]) <= 15_000
        assert env["OTEL_SERVICE_NAME"] == f"{name}-service"
        assert env[f"{prefix}HOST"] == "0.0.0.0" and int(env[f"{prefix}PORT"]) == port
        assert env[f"{prefix}DATABASE_URL"].startswith(
            "postgresql+asyncpg://ordersim:s3cret@postgres:5432/"
        )
        assert service["command"] == ["python", "-m", f"{name}_service"]
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
        for dependency in ("otel-collector", "postgres"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
    order = services["order"]
    for downstream in ("inventory", "payment", "shipping"):
        url = order["environment"][f"ORDER_SERVICE_{downstream.upper()}_URL"]
        assert url == f"http://{downstream}:{APPS[downstream]}"
        assert order["depends_on"][downstream]["condition"] == "service_healthy"
    for backend in ("jaeger", "prometheus", "loki"):
        condition = services["otel-collector"]["depends_on"][backend]["condition"]
        assert condition == "service_healthy"
        assert services["grafana"]["depends_on"][backend]["condition"] == "service_healthy"


def test_health_checks_and_published_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    published = {
        (name, *published_port(p))
        for name, service in services.items()
        for p in service.get("ports", [])
    }
    assert published == {
        ("order", 8000, "127.0.0.1"),
        ("jaeger", 16686, "127.0.0.1"),
        ("otel-collector", 4317, "127.0.0.1"),
        ("otel-collector", 4318, "127.0.0.1"),
        ("grafana", 3000, "127.0.0.1"),
        ("prometheus", 9090, "127.0.0.1"),
    }
    assert "13133/status" in " ".join(services["jaeger"]["healthcheck"]["test"])
    assert "13133" in " ".join(services["otel-collector"]["healthcheck"]["test"])
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def published_port(entry: str | dict[str, Any]) -> tuple[int, str | None]:
    """(container port, host ip) from either compose syntax: "127.0.0.1:8000:8000/tcp" or
    the long form {target, host_ip, ...} (compose v1 prints the one, v2 the other)."""
    if isinstance(entry, dict):
        return int(entry["target"]), entry.get("host_ip")
    parts = entry.split("/")[0].split(":")
    return int(parts[-1]), parts[0] if len(parts) == 3 else None


def mounts(service: dict[str, Any]) -> list[str]:
    return [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in service.get("volumes", [])
    ]


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return (
        bool(name) and "/" not in tag and tag not in ("", "latest") and bool(re.search(r"\d", tag))
    )


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    images = []
    for service in compose["services"].values():
        images.append(service["image"])
        if "build" in service and "BASE" in service["build"].get("args", {}):
            images.append(service["build"]["args"]["BASE"])
    dockerfiles = [ROOT / "Dockerfile", ROOT / "deploy" / "healthcheck.Dockerfile"]
    for dockerfile in dockerfiles:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM ") and "${" not in line:
                images.append(line.split()[1])
    assert all(pinned(image) for image in images), [i for i in images if not pinned(i)]
    assert "jaegertracing/jaeger:2." in " ".join(images)  # Jaeger v2


def test_the_app_image_runs_as_non_root() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_collector_pipelines_reference_what_is_defined(
    collector: dict[str, Any], compose: dict[str, Any]
) -> None:
    pipelines = collector["service"]["pipelines"]
    assert "traces" in pipelines
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in collector[kind], f"{component} is not defined in {kind}"
    traces = pipelines["traces"]
    assert traces["receivers"] == ["otlp"]
    assert traces["processors"][0] == "memory_limiter" and "batch" in traces["processors"]
    assert "debug" in traces["exporters"] and "debug" in collector["exporters"]
    jaeger = next(collector["exporters"][e] for e in traces["exporters"] if e.startswith("otlp"))
    assert jaeger["endpoint"] == "jaeger:4317"
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    assert collector["service"]["extensions"] == ["health_check"]
    assert collector["extensions"]["health_check"]["endpoint"].endswith(":13133")
    volumes = " ".join(
        compose["services"]["otel-collector"]["volumes"][0].values()
        if isinstance(compose["services"]["otel-collector"]["volumes"][0], dict)
        else compose["services"]["otel-collector"]["volumes"]
    )
    assert "otel-collector/config.yaml" in volumes


def test_logs_go_to_loki_and_metrics_to_prometheus_through_the_collector(
    collector: dict[str, Any], compose: dict[str, Any]
) -> None:
    pipelines = collector["service"]["pipelines"]
    exporters = collector["exporters"]
    for signal, backend, path in (
        ("metrics", "prometheus", "http://prometheus:9090/api/v1/otlp"),
        ("logs", "loki", "http://loki:3100/otlp"),
    ):
        pipeline = pipelines[signal]
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"][0] == "memory_limiter" and "batch" in pipeline["processors"]
        (exporter,) = [e for e in pipeline["exporters"] if e != "debug"]
        # otlphttp appends /v1/<signal>: Prometheus's receiver and Loki's OTLP endpoint.
        assert exporter.startswith("otlphttp/") and exporters[exporter]["endpoint"] == path
        assert backend in compose["services"]
    prometheus = compose["services"]["prometheus"]
    assert "--web.enable-otlp-receiver" in prometheus["command"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert "-/ready" in " ".join(prometheus["healthcheck"]["test"])
    assert "3100/ready" in " ".join(compose["services"]["loki"]["healthcheck"]["test"])
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["storage"]["exemplars"]["max_exemplars"] > 0
    loki = yaml.safe_load((DEPLOY / "loki" / "config.yaml").read_text())
    # OTLP attributes (trace_id, span_id) are structured metadata: Loki must allow it.
    assert loki["limits_config"]["allow_structured_metadata"] is True
    assert loki["schema_config"]["configs"][-1]["schema"] == "v13"


def test_every_mounted_config_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mount in mounts(service):
            source = mount.split(":")[0]
            if source.startswith(("/", ".")):
                path = ROOT / source.removeprefix(str(ROOT) + "/").removeprefix("./")
                assert path.exists(), (name, source)


def datasources() -> dict[str, dict[str, Any]]:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    return {source["uid"]: source for source in provisioned["datasources"]}


def test_grafana_has_the_three_backends_linked_to_one_another(compose: dict[str, Any]) -> None:
    sources = datasources()
    assert {uid: s["type"] for uid, s in sources.items()} == {
        "prometheus": "prometheus",
        "jaeger": "jaeger",
        "loki": "loki",
    }
    services = compose["services"]
    for uid, source in sources.items():
        host = source["url"].removeprefix("http://").split(":")[0]
        assert host in services, uid
    # A metric's exemplar opens its trace in Jaeger (Prometheus stores the OTLP exemplar's
    # trace id under the label trace_id).
    (destination,) = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {"name": "trace_id", "datasourceUid": "jaeger"}
    # A span lists its logs; a log line (trace_id: structured metadata in Loki) opens its trace.
    assert sources["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    assert (derived["matcherRegex"], derived["datasourceUid"]) == ("trace_id", "jaeger")
    assert derived["url"] == "$${__value.raw}"  # $$: a literal $ after Grafana's env expansion
    mounted = " ".join(mounts(services["grafana"]))
    assert "deploy/grafana/provisioning:/etc/grafana/provisioning" in mounted
    assert "deploy/grafana/dashboards:/var/lib/grafana/dashboards" in mounted


def prometheus_name(name: str, unit: str) -> str:
    """An OTLP histogram's name in Prometheus (the OTLP-to-Prometheus translation: dots to
    underscores, the unit as a suffix)."""
    units = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
    return f"{name.replace('.', '_')}_{units[unit]}"


def test_the_red_dashboard_reads_what_the_services_export() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "red.json").read_text())
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = datasources()
    histogram = prometheus_name("http.server.request.duration", "s")
    targets = [(panel, target) for panel in dashboard["panels"] for target in panel["targets"]]
    for panel, target in targets:
        assert target["datasource"]["uid"] in sources, panel["title"]
        assert panel["datasource"]["uid"] == target["datasource"]["uid"]
    promql = [t["expr"] for p, t in targets if t["datasource"]["uid"] == "prometheus"]
    assert all(histogram in expr for expr in promql)
    # Rate, errors (5xx) and the three quantiles, the p99 with its exemplars.
    assert any("rate(" in e and "_count" in e and "5.." not in e for e in promql)
    assert any('http_response_status_code=~"5.."' in e for e in promql)
    quantiles = {
        e.split("histogram_quantile(")[1].split(",")[0]: t
        for p, t in targets
        if "histogram_quantile(" in (e := t["expr"])
    }
    assert set(quantiles) == {"0.5", "0.95", "0.99"}
    assert quantiles["0.99"]["exemplar"] is True
    assert any(t["datasource"]["uid"] == "loki" for _, t in targets)  # the logs panel
    (variable,) = dashboard["templating"]["list"]
    assert variable["query"]["query"] == f"label_values({histogram}_count, job)"
