"""deploy/k8s, checked without a cluster: `kubectl kustomize` renders each overlay,
kubernetes-validate checks every object it renders against the Kubernetes API schemas, and
the tests assert the wiring on the rendered objects, the way tests/test_compose.py does on
compose.yaml: what each app exports to, what its probes hit, which Service reaches which
pod, what each collector and Jaeger config wires to what."""

from __future__ import annotations

import base64
import copy
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from fastapi.routing import APIRoute

from common.settings import ServiceSettings
from common.telemetry import setup_telemetry
from inventory_service.app import create_app as create_inventory
from inventory_service.settings import InventorySettings
from order_service.app import create_app as create_order
from order_service.settings import OrderSettings
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from shipping_service.app import create_app as create_shipping
from shipping_service.settings import ShippingSettings
from tests import ROOT
from tests.system_tools import system_tool
from tests.test_compose import pinned

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
#: The oldest Kubernetes the manifests are for, and the newest whose schemas are bundled.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
APPS: dict[str, tuple[type[ServiceSettings], Any]] = {
    "inventory": (InventorySettings, create_inventory),
    "payment": (PaymentSettings, create_payment),
    "shipping": (ShippingSettings, create_shipping),
    "order": (OrderSettings, create_order),
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
#: The SDK's default OTEL_BSP_SCHEDULE_DELAY (the specification's 5000 ms): how long a
#: finished span may wait in its service before it is exported.
BSP_SCHEDULE_DELAY = 5.0


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [system_tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [o for o in yaml.safe_load_all(result.stdout) if o]


@pytest.fixture(scope="module")
def renders() -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, renders: dict[str, list[dict[str, Any]]]) -> Manifests:
    return Manifests(renders[request.param], request.param)


class Manifests:
    """The objects one overlay renders, looked up by kind and name."""

    def __init__(self, objects: list[dict[str, Any]], overlay: str) -> None:
        self.objects = objects
        self.overlay = overlay

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.objects if o["kind"] == kind}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.of(kind)
        assert name in found, f"no {kind} {name} in {self.overlay}: {sorted(found)}"
        return found[name]

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in WORKLOADS]

    def generated(self, kind: str, name: str) -> dict[str, Any]:
        """A ConfigMap or Secret kustomize generated: its name ends in a content hash."""
        found = [o for n, o in self.of(kind).items() if re.fullmatch(rf"{name}-[a-z0-9]{{10}}", n)]
        assert len(found) == 1, f"{kind} {name} in {self.overlay}: {sorted(self.of(kind))}"
        return found[0]

    def selected_by(self, selector: dict[str, str]) -> list[dict[str, Any]]:
        return [w for w in self.workloads() if selects(selector, template_labels(w))]


def template_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def match_labels(owner: dict[str, Any]) -> dict[str, str]:
    selector = owner["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, owner["metadata"]["name"]
    labels: dict[str, str] = selector["matchLabels"]
    return labels


def container_port(workload: dict[str, Any], port: int | str) -> int:
    """The number a Service's targetPort or a probe's port (a name or a number) reaches in
    the workload's containers; fails if none exposes it."""
    ports = [p for c in pod(workload)["containers"] for p in c.get("ports", [])]
    for p in ports:
        if port in (p["containerPort"], p.get("name")):
            return int(p["containerPort"])
    raise AssertionError(f"{workload['metadata']['name']} exposes no port {port!r}: {ports}")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    return {name: e["value"] for name, e in env_of(container).items() if "value" in e}


def host_port(endpoint: str) -> tuple[str, int]:
    split = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    assert split.hostname is not None and split.port is not None, endpoint
    return split.hostname, split.port


def reached_through(m: Manifests, host: str, port: int) -> tuple[dict[str, Any], int]:
    """The workload behind a Service address (host = the Service's name, in-namespace), and
    the container port that the Service port leads to."""
    service = m.get("Service", host)
    [service_port] = [p for p in service["spec"]["ports"] if p["port"] == port]
    [workload] = m.selected_by(service["spec"]["selector"])
    target = container_port(workload, service_port.get("targetPort", port))
    if service["spec"].get("clusterIP") == "None":
        # Headless: clients connect to the pod's address on the Service port itself.
        assert target == port, f"headless {host}:{port} leads to container port {target}"
    return workload, target


def configmap_file(m: Manifests, workload: dict[str, Any], path: str) -> str:
    """The content of the file at ``path`` in the workload's container, from the ConfigMap
    volume mounted on its folder."""
    [container] = pod(workload)["containers"]
    folder, _, key = path.rpartition("/")
    [mount] = [v for v in container["volumeMounts"] if v["mountPath"] == folder]
    [volume] = [v for v in pod(workload)["volumes"] if v["name"] == mount["name"]]
    data: dict[str, str] = m.get("ConfigMap", volume["configMap"]["name"])["data"]
    assert key in data, f"{path}: the ConfigMap has {sorted(data)}"
    return data[key]


def config_arg(container: dict[str, Any]) -> str:
    [arg] = [a for a in container["args"] if a.startswith("--config=")]
    return arg.removeprefix("--config=")


def collector_config(m: Manifests, workload: dict[str, Any]) -> dict[str, Any]:
    [container] = pod(workload)["containers"]
    parsed: dict[str, Any] = yaml.safe_load(configmap_file(m, workload, config_arg(container)))
    return parsed


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


# --- rendering and the schemas ---------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: Manifests, version: str
) -> None:
    for obj in rendered.objects:
        # strict: a field the API does not know (a typo, a misplaced key) fails too.
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_catches_a_broken_manifest(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    [order] = [
        o for o in renders["dev"] if o["kind"] == "Deployment" and o["metadata"]["name"] == "order"
    ]
    misplaced = copy.deepcopy(order)
    misplaced["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    mistyped = copy.deepcopy(order)
    mistyped["spec"]["replicas"] = "two"
    for broken in (misplaced, mistyped):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def kustomization_files(folder: Path) -> Iterator[Path]:
    """The kustomization in ``folder``, every file it names, and those of the folders it
    includes."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    yield folder / "kustomization.yaml"
    named = [*kustomization.get("resources", [])]
    named += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    ):
        named += [f.rpartition("=")[2] for f in generator.get("files", [])]
        named += generator.get("envs", [])
    for name in named:
        path = (folder / name).resolve()
        assert path.exists(), f"{folder / 'kustomization.yaml'} names {name}, which is missing"
        if path.is_dir():
            yield from kustomization_files(path)
        else:
            yield path


def test_every_file_under_deploy_k8s_is_part_of_an_overlay() -> None:
    used = {p for overlay in OVERLAYS for p in kustomization_files(K8S / "overlays" / overlay)}
    on_disk = {p.resolve() for p in K8S.rglob("*") if p.is_file()}
    assert on_disk - used == set(), "files no overlay renders"


# --- the apps --------------------------------------------------------------------------


def app_container(m: Manifests, name: str) -> dict[str, Any]:
    [container] = pod(m.get("Deployment", name))["containers"]
    return container


def app_settings(
    container: dict[str, Any],
    settings_class: type[ServiceSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> ServiceSettings:
    """The service's settings as its process would read them from the container's env."""
    prefix = settings_class.model_config.get("env_prefix", "")
    for name, value in literal_env(container).items():
        if name.startswith(prefix):
            monkeypatch.setenv(name, value)
    return settings_class()


def test_every_app_exports_to_the_agent_on_its_node(rendered: Manifests) -> None:
    for name in APPS:
        env = env_of(app_container(rendered, name))
        assert env["OTEL_SERVICE_NAME"]["value"] == f"{name}-service"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"]
        assert not any(n.startswith("OTEL_EXPORTER_OTLP_TRACES_") for n in env), name
        agent, port = reached_through(rendered, *host_port(endpoint))
        assert agent["kind"] == "DaemonSet" and agent["metadata"]["name"] == "otel-agent"
        receivers = collector_config(rendered, agent)["receivers"]["otlp"]["protocols"]
        assert host_port(receivers["http"]["endpoint"])[1] == port  # OTLP/HTTP listens there
        # Every trace reaches the gateways, whose tail sampling decides (see the README).
        assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_always_on"
    agent_service = rendered.get("Service", "otel-agent")
    assert agent_service["spec"]["internalTrafficPolicy"] == "Local"


def test_every_app_resource_names_its_pod_and_environment(rendered: Manifests) -> None:
    environment = rendered.generated("ConfigMap", "ordersim-environment")["data"]["name"]
    assert environment == rendered.overlay
    for name in APPS:
        container = app_container(rendered, name)
        env = env_of(container)
        attributes = dict(
            pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(",")
        )
        assert attributes["deployment.environment.name"] == "$(DEPLOYMENT_ENVIRONMENT)"
        ref = env["DEPLOYMENT_ENVIRONMENT"]["valueFrom"]["configMapKeyRef"]
        assert rendered.get("ConfigMap", ref["name"])["data"][ref["key"]] == environment
        fields = {
            attributes[a].strip("$()"): f
            for a, f in (
                ("k8s.pod.name", "metadata.name"),
                ("k8s.namespace.name", "metadata.namespace"),
                ("k8s.node.name", "spec.nodeName"),
            )
        }
        for variable, field in fields.items():
            assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == field
        # service.instance.id stays each process's own (common/telemetry.py).
        assert "service.instance.id" not in attributes


def test_env_references_name_variables_defined_before_them(rendered: Manifests) -> None:
    """Kubernetes expands $(VAR) only from variables earlier in the list; anything else is
    left as the literal text."""
    for workload in rendered.workloads():
        for container in pod(workload)["containers"]:
            defined: set[str] = set()
            for e in container.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
                    assert ref in defined, f"{container['name']}: {e['name']} uses $({ref})"
                defined.add(e["name"])


def test_apps_run_their_service_on_the_port_their_service_settings_read(
    rendered: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, (settings_class, create_app) in APPS.items():
        container = app_container(rendered, name)
        assert container["command"] == ["python", "-m", f"{name}_service"]
        settings = app_settings(container, settings_class, monkeypatch)
        assert settings.host == "0.0.0.0"
        assert settings.port == container_port(rendered.get("Deployment", name), "http")
        # The Service of the same name reaches it there.
        workload, port = reached_through(rendered, name, settings.port)
        assert workload["metadata"]["name"] == name and port == settings.port
        # The probes ask the app for routes it serves, on the port it listens on.
        app = create_app(settings, setup_telemetry(settings.service_name, processors=[]))
        gets = {
            r.path for r in app.routes if isinstance(r, APIRoute) and "GET" in (r.methods or ())
        }
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] in gets, f"{name} {probe}: {get['path']} is not a GET route"
            assert container_port(rendered.get("Deployment", name), get["port"]) == settings.port


def test_the_order_service_calls_the_other_three_through_their_services(
    rendered: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app_settings(app_container(rendered, "order"), OrderSettings, monkeypatch)
    assert isinstance(settings, OrderSettings)
    for downstream, url in (
        ("inventory", settings.inventory_url),
        ("payment", settings.payment_url),
        ("shipping", settings.shipping_url),
    ):
        workload, port = reached_through(rendered, *host_port(url))
        assert workload["metadata"]["name"] == downstream
        assert env_of(app_container(rendered, downstream))[f"{downstream.upper()}_SERVICE_PORT"][
            "value"
        ] == str(port)


def test_every_app_has_replicas_a_disruption_budget_and_a_cpu_autoscaler(
    rendered: Manifests,
) -> None:
    budgets = rendered.of("PodDisruptionBudget")
    autoscalers = rendered.of("HorizontalPodAutoscaler")
    for name in APPS:
        deployment = rendered.get("Deployment", name)
        assert deployment["spec"]["replicas"] >= 2
        [budget] = [
            b for b in budgets.values() if rendered.selected_by(match_labels(b)) == [deployment]
        ]
        assert budget["spec"]["maxUnavailable"] == 1
        [hpa] = [h for h in autoscalers.values() if h["spec"]["scaleTargetRef"]["name"] == name]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        # Utilization is a share of the request: there must be one.
        [container] = pod(deployment)["containers"]
        assert "cpu" in container["resources"]["requests"]
    for hpa in autoscalers.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in rendered.of("Deployment")


def test_every_app_reads_its_database_url_from_the_secret(rendered: Manifests) -> None:
    for name in APPS:
        env = env_of(app_container(rendered, name))
        ref = env[f"{name.upper()}_SERVICE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == name
        if rendered.overlay == "prod":
            # Created outside the overlay (README): the name is the one to create.
            assert ref["name"] == "ordersim-database"
        else:
            assert (
                ref["name"] == rendered.generated("Secret", "ordersim-database")["metadata"]["name"]
            )


# --- selectors, Services and references ------------------------------------------------


def test_selectors_match_labels(rendered: Manifests) -> None:
    for workload in rendered.workloads():
        assert selects(match_labels(workload), template_labels(workload)), workload["metadata"]
    for owner in [*rendered.of("PodDisruptionBudget").values()]:
        assert len(rendered.selected_by(match_labels(owner))) == 1, owner["metadata"]["name"]
    for name, service in rendered.of("Service").items():
        [workload] = rendered.selected_by(service["spec"]["selector"])
        for port in service["spec"]["ports"]:
            reached_through(rendered, name, port["port"])
    for statefulset in rendered.of("StatefulSet").values():
        governing = rendered.get("Service", statefulset["spec"]["serviceName"])
        assert governing["spec"]["clusterIP"] == "None"
        assert rendered.selected_by(governing["spec"]["selector"]) == [statefulset]


def test_every_configmap_and_secret_a_pod_uses_is_rendered(rendered: Manifests) -> None:
    missing = set()
    for workload in rendered.workloads():
        refs = [
            ("ConfigMap", v["configMap"]["name"], None)
            for v in pod(workload).get("volumes", [])
            if "configMap" in v
        ]
        for container in pod(workload)["containers"]:
            for e in container.get("env", []):
                source = e.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    refs.append(
                        (
                            "ConfigMap",
                            source["configMapKeyRef"]["name"],
                            source["configMapKeyRef"]["key"],
                        )
                    )
                if "secretKeyRef" in source:
                    refs.append(
                        ("Secret", source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
                    )
        for kind, name, key in refs:
            found = rendered.of(kind).get(name)
            if found is None:
                missing.add((kind, name))
            elif key is not None:
                assert key in found["data"], f"{kind} {name} has no {key}"
    # Prod's database Secret is the operator's to create (its kustomization says how).
    assert missing == ({("Secret", "ordersim-database")} if rendered.overlay == "prod" else set())


def test_every_object_is_in_the_overlays_namespace_which_enforces_restricted(
    rendered: Manifests,
) -> None:
    [namespace] = rendered.of("Namespace").values()
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in rendered.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"], obj["metadata"]
            assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ordersim"


# --- pods: security, resources, images -------------------------------------------------

#: The volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "emptyDir",
    "persistentVolumeClaim",
    "secret",
    "projected",
    "downwardAPI",
}


def test_every_pod_runs_non_root_read_only_with_requests_and_limits(rendered: Manifests) -> None:
    for workload in rendered.workloads():
        spec = pod(workload)
        name = workload["metadata"]["name"]
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec), name
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, (name, volume)
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            assert all("hostPort" not in p for p in container.get("ports", [])), name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)
            assert container["livenessProbe"] and container["readinessProbe"], name


def compose_images() -> dict[str, str]:
    """Each compose service's image, the upstream one where compose adds a health check
    tool to it (deploy/healthcheck.Dockerfile)."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    images = {}
    for name, service in compose["services"].items():
        build = service.get("build")
        args = build.get("args", {}) if isinstance(build, dict) else {}
        images[name] = args.get("BASE", service["image"])
    return images


def test_images_are_pinned_and_the_ones_compose_runs(rendered: Manifests) -> None:
    images = {c["name"]: c["image"] for w in rendered.workloads() for c in pod(w)["containers"]}
    assert all(pinned(image) for image in images.values()), images
    compose = compose_images()
    for name in APPS:
        assert images[name] == compose[name]
    for collector in ("otel-agent", "otel-gateway"):
        assert images[collector] == compose["otel-collector"]
    assert images["jaeger"] == compose["jaeger"] and images["jaeger"].startswith(
        "jaegertracing/jaeger:2."
    )
    if rendered.overlay == "dev":
        assert images["postgres"] == compose["postgres"]


# --- the collector: agents, gateways, tail sampling ------------------------------------


def assert_pipelines_wired(config: dict[str, Any]) -> dict[str, Any]:
    """Every component a pipeline names is defined, and so is every extension in use;
    returns the traces pipeline."""
    pipelines = config["service"]["pipelines"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in (config.get(kind) or {}), f"{component} is not in {kind}"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]
    traces: dict[str, Any] = pipelines["traces"]
    return traces


def assert_health_probed(workload: dict[str, Any], endpoint: str, path: str) -> None:
    """The probes ask the health endpoint the config opens, on its port."""
    [container] = pod(workload)["containers"]
    host, port = host_port(endpoint)
    assert host == "0.0.0.0"  # the kubelet probes from outside the pod's loopback
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert container_port(workload, get["port"]) == port and get["path"] == path


def test_the_agent_routes_each_trace_to_one_gateway_by_trace_id(rendered: Manifests) -> None:
    agent = rendered.get("DaemonSet", "otel-agent")
    config = collector_config(rendered, agent)
    traces = assert_pipelines_wired(config)
    assert traces["receivers"] == ["otlp"]
    assert traces["processors"][0] == "memory_limiter"
    assert traces["exporters"] == ["loadbalancing"]
    assert_health_probed(agent, config["extensions"]["health_check"]["endpoint"], "/")
    for protocol, endpoint in config["receivers"]["otlp"]["protocols"].items():
        port = host_port(endpoint["endpoint"])[1]
        assert container_port(agent, port) == port, protocol
    balancer = config["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "traceID"
    assert "otlp" in balancer["protocol"]
    dns = balancer["resolver"]["dns"]
    # The resolver needs one address per gateway pod: a headless Service's.
    headless = rendered.get("Service", dns["hostname"])
    assert headless["spec"]["clusterIP"] == "None"
    gateway, port = reached_through(rendered, dns["hostname"], dns["port"])
    assert gateway["kind"] == "Deployment" and gateway["metadata"]["name"] == "otel-gateway"
    gateway_otlp = collector_config(rendered, gateway)["receivers"]["otlp"]["protocols"]
    assert host_port(gateway_otlp["grpc"]["endpoint"])[1] == port


def test_the_gateways_keep_errors_slow_traces_and_a_share_of_the_rest(
    rendered: Manifests,
) -> None:
    gateway = rendered.get("Deployment", "otel-gateway")
    config = collector_config(rendered, gateway)
    traces = assert_pipelines_wired(config)
    assert traces["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    assert_health_probed(gateway, config["extensions"]["health_check"]["endpoint"], "/")
    sampling = config["processors"]["tail_sampling"]
    policies = {p["type"]: p for p in sampling["policies"]}
    assert set(policies) == {"status_code", "latency", "probabilistic"}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    # The share comes from the container's env, set per overlay.
    share = policies["probabilistic"]["probabilistic"]["sampling_percentage"]
    variable = re.fullmatch(r"\$\{env:(\w+)\}", share).group(1)  # type: ignore[union-attr]
    [container] = pod(gateway)["containers"]
    percentage = float(literal_env(container)[variable])
    assert 0 < percentage <= 100
    assert percentage == (100 if rendered.overlay == "dev" else 10)
    # A trace is decided once its slowest order can have finished and exported its spans.
    assert seconds(sampling["decision_wait"]) > OrderSettings().order_deadline + BSP_SCHEDULE_DELAY
    # More than one gateway, and a budget that keeps one up through a drain.
    assert gateway["spec"]["replicas"] >= 2
    assert [rendered.get("Deployment", "otel-gateway")] == rendered.selected_by(
        match_labels(rendered.get("PodDisruptionBudget", "otel-gateway"))
    )
    # The gateways send what they keep to Jaeger's OTLP receiver.
    [exporter] = traces["exporters"]
    assert exporter.startswith("otlp")
    jaeger, port = reached_through(rendered, *host_port(config["exporters"][exporter]["endpoint"]))
    assert jaeger["metadata"]["name"] == "jaeger"
    jaeger_otlp = collector_config(rendered, jaeger)["receivers"]["otlp"]["protocols"]
    assert host_port(jaeger_otlp["grpc"]["endpoint"])[1] == port


# --- Jaeger and the database -----------------------------------------------------------


def test_jaeger_stores_traces_in_badger_on_its_persistent_volume(rendered: Manifests) -> None:
    jaeger = rendered.get("StatefulSet", "jaeger")
    config = collector_config(rendered, jaeger)
    traces = assert_pipelines_wired(config)
    assert {"jaeger_storage", "jaeger_query", "healthcheckv2"} <= set(
        config["service"]["extensions"]
    )
    health = config["extensions"]["healthcheckv2"]
    assert health["use_v2"] is True
    assert_health_probed(jaeger, health["http"]["endpoint"], "/status")
    backends = config["extensions"]["jaeger_storage"]["backends"]
    store = config["extensions"]["jaeger_query"]["storage"]["traces"]
    [exporter] = traces["exporters"]
    assert config["exporters"][exporter]["trace_storage"] == store
    badger = backends[store]["badger"]
    assert badger["ephemeral"] is False
    # Both directories are on the volume claimed for the pod.
    [container] = pod(jaeger)["containers"]
    claims = {t["metadata"]["name"] for t in jaeger["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for directory in badger["directories"].values():
        [claimed] = [p for p in mounts if directory.startswith(p + "/") and mounts[p] in claims]
        assert claimed
    # Badger is one process's: one replica, and no Deployment-style surge.
    assert jaeger["spec"]["replicas"] == 1
    assert pod(jaeger)["securityContext"]["fsGroup"] == pod(jaeger)["securityContext"]["runAsGroup"]
    ui = rendered.get("Service", "jaeger")
    assert 16686 in {p["port"] for p in ui["spec"]["ports"]}
    assert container_port(jaeger, 16686) == 16686


def created_databases() -> set[str]:
    sql = (ROOT / "deploy" / "postgres" / "create-databases.sql").read_text()
    return set(re.findall(r"CREATE DATABASE (\w+);", sql))


def test_dev_runs_postgres_with_the_databases_the_urls_name(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    dev = Manifests(renders["dev"], "dev")
    secret = {
        k: base64.b64decode(v).decode()
        for k, v in dev.generated("Secret", "ordersim-database")["data"].items()
    }
    postgres = dev.get("StatefulSet", "postgres")
    [container] = pod(postgres)["containers"]
    env = env_of(container)
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    databases = set()
    for name in APPS:
        url = urlsplit(secret[name])
        assert url.scheme == "postgresql+asyncpg"
        assert (url.username, url.password) == (env["POSTGRES_USER"]["value"], secret["password"])
        workload, port = reached_through(dev, url.hostname or "", url.port or 0)
        assert workload is postgres and port == 5432
        databases.add(url.path.lstrip("/"))
    assert databases == created_databases()
    # Created by the same script compose runs, on an empty volume.
    initdb = configmap_file(dev, postgres, "/docker-entrypoint-initdb.d/create-databases.sql")
    assert initdb == (ROOT / "deploy" / "postgres" / "create-databases.sql").read_text()
    data = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/postgresql/data"]
    assert [m["name"] for m in data] == [
        t["metadata"]["name"] for t in postgres["spec"]["volumeClaimTemplates"]
    ]
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")


def test_prod_brings_no_database_and_no_secret(renders: dict[str, list[dict[str, Any]]]) -> None:
    prod = Manifests(renders["prod"], "prod")
    assert prod.of("Secret") == {}
    assert "postgres" not in prod.of("StatefulSet") and "postgres" not in prod.of("Service")
    assert {w["metadata"]["name"] for w in prod.workloads()} == {
        *APPS,
        "otel-agent",
        "otel-gateway",
        "jaeger",
    }
