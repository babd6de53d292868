"""The container image, the docker-compose file and the Kubernetes manifests, checked
offline: no container engine or cluster is needed.

Every Kubernetes object is validated against the Kubernetes JSON schemas that the
``kubernetes-validate`` package ships (strict: unknown fields are errors), the kustomize
base is rendered here the way ``kubectl apply -k`` would for the fields it uses, and the
wiring is checked against the code itself: the console command, the configuration's
variable names, the services and their ports.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import attrs
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from setuptools import find_packages

from orchestrator.tools.cli import parser as cli_parser
from services.auth.passwords import MAX_PARALLEL_HASHES
from services.common.config import DEFAULT_PORTS, INTERNAL_SERVICES, PREFIX, SCALARS, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
SECRETS_TEMPLATE = ROOT / "deploy" / "k8s" / "secrets.example.yaml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
INIT_SQL = ROOT / "deploy" / "postgres" / "init.sql"

# The oldest and the newest Kubernetes versions whose schemas the package ships.
K8S_VERSIONS = (all_versions()[0], kubernetes_validate.latest_version())
# Kinds that belong to no namespace, so kustomize's ``namespace`` leaves them alone.
CLUSTER_KINDS = frozenset({"Namespace"})
# The kustomization fields render_base() understands; any other would be ignored here.
KUSTOMIZE_FIELDS = frozenset({"apiVersion", "kind", "namespace", "resources", "images"})
# Who calls whom, as the app factories build their clients (checked below).
CALLS = {
    "gateway": set(INTERNAL_SERVICES),
    "auth": {"profiles", "billing"},
    "profiles": set(),
    "orders": set(),
    "billing": set(),
    "notifications": {"profiles"},
}
APP_MODULES = {
    "gateway": ROOT / "orchestrator" / "app.py",
    **{name: ROOT / "services" / name / "app.py" for name in INTERNAL_SERVICES},
}
TWO_REPLICAS = {"gateway", "orders", "billing"}


# --- loading and rendering ---------------------------------------------------------


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


def render_base() -> list[dict[str, Any]]:
    """What ``kubectl kustomize deploy/k8s/base`` gives for the fields the base uses:
    the resources in order, each namespaced object put in the namespace, images renamed."""
    spec = kustomization()
    images = {entry["name"]: entry for entry in spec.get("images", [])}
    rendered = []
    for resource in spec["resources"]:
        for doc in yaml_documents(BASE / resource):
            if doc["kind"] not in CLUSTER_KINDS and "namespace" in spec:
                doc["metadata"]["namespace"] = spec["namespace"]
            for container in containers_of(doc):
                name, _, tag = container["image"].partition(":")
                if name in images:
                    entry = images[name]
                    container["image"] = f"{entry.get('newName', name)}:{entry.get('newTag', tag)}"
            rendered.append(doc)
    return rendered


def containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] != "Deployment":
        return []
    return doc["spec"]["template"]["spec"]["containers"]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in render_base() if doc["kind"] == kind}


def the_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = containers_of(deployment)
    return container


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    for entry in container["ports"]:
        if port in (entry["containerPort"], entry.get("name")):
            return entry["containerPort"]
    raise AssertionError(f"{container['name']} has no port {port!r}")


def serve_args(argv: list[str]) -> tuple[str, int | None]:
    """The service and port a ``syncorders`` command line serves, parsed by the real CLI."""
    args = cli_parser().parse_args(argv)
    assert args.command == "serve", argv
    return args.service, args.port


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (the binary suffixes the manifests use) in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def valid_variable_names() -> set[str]:
    """Every environment variable Settings.from_env reads."""
    names = {PREFIX + field.name.upper() for field in attrs.fields(Settings) if field.type in SCALARS}
    for service in SERVICES:
        names |= {f"{PREFIX}{service.upper()}_{suffix}" for suffix in ("PORT", "URL", "DATABASE", "THREADS")}
    return names


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:[?-])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        found = env.get(match["name"], "")
        if match["op"] == ":?" and not found:
            raise KeyError(match["name"])
        if match["op"] == ":-" and not found:
            return match["arg"]
        return found

    return INTERPOLATION.sub(one, value)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def dockerfile(instruction: str) -> list[str]:
    return [rest for word, rest in dockerfile_instructions() if word == instruction]


def setup_call() -> ast.Call:
    tree = ast.parse((ROOT / "setup.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"]
    (call,) = calls
    return call


def setup_keyword(name: str) -> ast.expr:
    (value,) = [kw.value for kw in setup_call().keywords if kw.arg == name]
    return value


def all_kubernetes_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in render_base():
        yield f"{doc['kind']}/{doc['metadata']['name']}", doc
    for doc in yaml_documents(SECRETS_TEMPLATE):
        yield f"template {doc['kind']}/{doc['metadata']['name']}", doc


# --- Kubernetes: schemas and the kustomize base ------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_kubernetes_object_validates_against_the_schemas(version: str) -> None:
    checked = []
    for label, doc in all_kubernetes_documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{label} is not a valid Kubernetes {version} object: {path}: {exc.message}")
        checked.append(label)
    # A rendering that silently found nothing would pass the loop above.
    assert len(checked) >= len(SERVICES) * 2 + 3


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = objects("Deployment")["orders"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest_in_its_folder_and_nothing_else() -> None:
    spec = kustomization()
    assert set(spec) <= KUSTOMIZE_FIELDS, "render_base() would ignore these fields"
    listed = spec["resources"]
    assert len(listed) == len(set(listed))
    for resource in listed:
        assert (BASE / resource).is_file(), resource
    on_disk = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    assert SECRETS_TEMPLATE.parent != BASE, "the secrets template must not be applied with the base"


def test_rendering_puts_every_namespaced_object_in_the_namespace_and_names_the_image() -> None:
    spec = kustomization()
    namespaces = objects("Namespace")
    assert set(namespaces) == {spec["namespace"]}
    for doc in render_base():
        if doc["kind"] not in CLUSTER_KINDS:
            assert doc["metadata"]["namespace"] == spec["namespace"]
    image = {the_container(d)["image"] for d in objects("Deployment").values()}
    assert image == {f"syncorders:{spec['images'][0]['newTag']}"}


def test_each_service_has_one_deployment_and_one_service() -> None:
    assert set(objects("Deployment")) == set(SERVICES)
    assert set(objects("Service")) == set(SERVICES)


def test_each_deployment_serves_its_own_service_on_its_container_port() -> None:
    for name, deployment in objects("Deployment").items():
        container = the_container(deployment)
        assert "command" not in container, "the image's entrypoint is the syncorders command"
        service, port = serve_args(container["args"])
        assert service == name
        assert port == DEFAULT_PORTS[name] == container_port(container, "http")


def test_every_deployment_has_readiness_on_ready_and_liveness_on_health() -> None:
    for name, deployment in objects("Deployment").items():
        container = the_container(deployment)
        ready = container["readinessProbe"]["httpGet"]
        alive = container["livenessProbe"]["httpGet"]
        assert ready["path"] == "/ready", name
        assert alive["path"] == "/health", name
        assert container_port(container, ready["port"]) == DEFAULT_PORTS[name]
        assert container_port(container, alive["port"]) == DEFAULT_PORTS[name]


def test_services_select_their_pods_and_forward_to_the_container_port() -> None:
    deployments = objects("Deployment")
    for name, service in objects("Service").items():
        deployment = deployments[name]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", f"{name} must not be exposed by itself"
        (port,) = service["spec"]["ports"]
        container = the_container(deployment)
        assert container_port(container, port["targetPort"]) == port["port"] == DEFAULT_PORTS[name]


def test_the_ingress_exposes_the_gateway_alone() -> None:
    ingresses = objects("Ingress")
    assert list(ingresses) == ["gateway"]
    backends = [
        path["backend"]["service"] for rule in ingresses["gateway"]["spec"]["rules"] for path in rule["http"]["paths"]
    ]
    assert backends and {backend["name"] for backend in backends} == {"gateway"}
    gateway = objects("Service")["gateway"]
    for backend in backends:
        assert backend["port"].get("name", backend["port"].get("number")) in (
            gateway["spec"]["ports"][0]["name"],
            gateway["spec"]["ports"][0]["port"],
        )


def test_the_network_policy_closes_the_internal_services_and_not_the_gateway() -> None:
    (policy,) = objects("NetworkPolicy").values()
    selector = policy["spec"]["podSelector"]["matchLabels"]
    selected = {
        name
        for name, deployment in objects("Deployment").items()
        if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    }
    assert selected == set(INTERNAL_SERVICES)
    (allowed,) = policy["spec"]["ingress"][0]["from"]
    gateway_labels = objects("Deployment")["gateway"]["spec"]["template"]["metadata"]["labels"]
    assert allowed["podSelector"]["matchLabels"].items() <= gateway_labels.items()


def test_replicas_are_two_for_the_stateless_hot_path_and_kept_through_drains() -> None:
    deployments = objects("Deployment")
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == (2 if name in TWO_REPLICAS else 1), name
    budgets = objects("PodDisruptionBudget")
    assert set(budgets) == TWO_REPLICAS
    for name, budget in budgets.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert budget["spec"]["minAvailable"] < deployments[name]["spec"]["replicas"]


def test_pods_drain_before_endpoints_refuse_them_and_get_the_time_to_finish() -> None:
    config = objects("ConfigMap")["syncorders-config"]["data"]
    for name, deployment in objects("Deployment").items():
        container = the_container(deployment)
        literal = {entry["name"]: entry["value"] for entry in container["env"] if "value" in entry}
        settings = Settings.from_env({**config, **literal})
        # Endpoints and the Ingress take a few seconds to drop a terminating pod.
        assert settings.shutdown_delay >= 3, name
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > settings.shutdown_delay + settings.shutdown_timeout, name
        # The wait is the service's own (it answers /ready 503 meanwhile); a preStop hook
        # would spend the grace period before SIGTERM even arrives.
        assert "lifecycle" not in container, name


def test_pods_run_as_non_root_on_a_read_only_root_with_bounded_resources() -> None:
    data_dir = objects("ConfigMap")["syncorders-config"]["data"]["SYNCORDERS_DATA_DIR"]
    for name, deployment in objects("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        container = the_container(deployment)
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, name
        assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"])
        # The only writable places are emptyDirs: /tmp and the (unused with PostgreSQL) data folder.
        empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        mounted = {mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] in empty_dirs}
        assert {"/tmp", data_dir} <= mounted, name


def test_auth_has_memory_for_every_password_hash_it_runs_at_once() -> None:
    settings = Settings.from_env(objects("ConfigMap")["syncorders-config"]["data"])
    hash_mib = settings.password_hash_memory / 1024  # Argon2id's memory, in KiB
    limits = the_container(objects("Deployment")["auth"])["resources"]["limits"]
    idle_mib = 64  # measured: about 60 MB with no request in flight
    at_once = min(settings.thread_count("auth"), MAX_PARALLEL_HASHES)
    assert mebibytes(limits["memory"]) >= idle_mib + at_once * hash_mib


def test_the_configmap_urls_reach_each_service_through_its_service_port() -> None:
    data = objects("ConfigMap")["syncorders-config"]["data"]
    services = objects("Service")
    for name in SERVICES:
        url = urlparse(data[f"{PREFIX}{name.upper()}_URL"])
        assert url.scheme == "http" and url.hostname == name
        assert url.port == services[name]["spec"]["ports"][0]["port"]
    for name, deployment in objects("Deployment").items():
        refs = [ref["configMapRef"]["name"] for ref in the_container(deployment)["envFrom"]]
        assert refs == ["syncorders-config"], name


def test_every_variable_the_manifests_pass_is_one_the_configuration_reads() -> None:
    valid = valid_variable_names()
    config = objects("ConfigMap")["syncorders-config"]["data"]
    assert set(config) <= valid, set(config) - valid
    for name, deployment in objects("Deployment").items():
        passed = {entry["name"] for entry in the_container(deployment)["env"]}
        assert passed <= valid, (name, passed - valid)


def test_the_configmap_values_parse_as_the_configuration_expects() -> None:
    data = objects("ConfigMap")["syncorders-config"]["data"]
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values must be strings"
    settings = Settings.from_env(data)
    assert settings.bind_host == "0.0.0.0"
    assert settings.url("billing") == data["SYNCORDERS_BILLING_URL"]


def test_secrets_reach_the_pods_only_through_secret_references_the_template_defines() -> None:
    template = {doc["metadata"]["name"]: set(doc["stringData"]) for doc in yaml_documents(SECRETS_TEMPLATE)}
    config = objects("ConfigMap")["syncorders-config"]["data"]
    assert "SYNCORDERS_SERVICE_SECRET" not in config
    assert not [key for key in config if key.endswith("_DATABASE")]
    for name, deployment in objects("Deployment").items():
        container = the_container(deployment)
        env = {entry["name"]: entry for entry in container["env"]}
        secret_refs = {key: entry["valueFrom"]["secretKeyRef"] for key, entry in env.items() if "valueFrom" in entry}
        for key in env:
            if key == "SYNCORDERS_SERVICE_SECRET" or key.endswith("_DATABASE"):
                assert key in secret_refs, f"{name}: {key} must come from a Secret"
        for ref in secret_refs.values():
            assert ref["key"] in template.get(ref["name"], set()), (name, ref)
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] in template


def test_each_service_gets_the_secret_and_its_own_database_only() -> None:
    for name, deployment in objects("Deployment").items():
        env = {entry["name"]: entry for entry in the_container(deployment)["env"]}
        assert "SYNCORDERS_SERVICE_SECRET" in env, name
        databases = {key for key in env if key.endswith("_DATABASE")}
        assert databases == (set() if name == "gateway" else {f"{PREFIX}{name.upper()}_DATABASE"})
        for key in databases:
            assert env[key]["valueFrom"]["secretKeyRef"]["key"] == name


def test_auth_alone_reads_the_signing_key_from_a_mounted_secret_file() -> None:
    for name, deployment in objects("Deployment").items():
        container = the_container(deployment)
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        if name != "auth":
            assert "SYNCORDERS_SIGNING_KEY_FILE" not in env
            continue
        key_file = Path(env["SYNCORDERS_SIGNING_KEY_FILE"])
        (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == key_file.parent]
        assert mount.get("readOnly") is True
        (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
        templates = {doc["metadata"]["name"]: doc for doc in yaml_documents(SECRETS_TEMPLATE)}
        assert key_file.name in templates[volume["secret"]["secretName"]]["stringData"]
        # Readable by the pod's group (fsGroup), by nobody else.
        assert volume["secret"]["defaultMode"] == 0o440


def test_the_call_graph_matches_the_app_factories() -> None:
    client = re.compile(r'make_client\(\s*\w+,\s*SERVICE,\s*"(\w+)"')
    for name, module in APP_MODULES.items():
        if name == "gateway":
            assert "for name in INTERNAL_SERVICES" in module.read_text()
            continue
        assert set(client.findall(module.read_text())) == CALLS[name], name


# --- the image ---------------------------------------------------------------------


def test_the_image_entrypoint_is_the_console_script_setup_declares() -> None:
    entry_points = ast.literal_eval(setup_keyword("entry_points"))
    scripts = dict(line.split("=", 1) for line in entry_points["console_scripts"])
    (entrypoint,) = dockerfile("ENTRYPOINT")
    assert json.loads(entrypoint) == ["syncorders"]
    assert scripts["syncorders"].strip() == "orchestrator.tools.cli:main"


def test_the_image_stops_its_process_with_sigterm() -> None:
    # Exec form (JSON), so syncorders itself is PID 1 and receives the signal.
    (entrypoint,) = dockerfile("ENTRYPOINT")
    assert isinstance(json.loads(entrypoint), list)
    assert dockerfile("STOPSIGNAL") == ["SIGTERM"]


def test_the_image_serves_the_gateway_unless_told_otherwise() -> None:
    (cmd,) = dockerfile("CMD")
    assert serve_args(json.loads(cmd)) == ("gateway", None)


def test_the_image_is_python_311_slim_with_the_postgres_extra_and_a_non_root_user() -> None:
    assert dockerfile("FROM") == ["python:3.11-slim"]
    installs = [run for run in dockerfile("RUN") if "pip install" in run]
    assert any(".[postgres]" in run for run in installs)
    (user,) = dockerfile("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root user, so runAsNonRoot can check it"
    pod_users = {d["spec"]["template"]["spec"]["securityContext"]["runAsUser"] for d in objects("Deployment").values()}
    assert pod_users == {int(uid)}


def test_the_image_listens_beyond_loopback_on_every_service_port() -> None:
    env: dict[str, str] = {}
    for line in dockerfile("ENV"):
        env.update(dict(part.split("=", 1) for part in shlex.split(line)))
    assert env["SYNCORDERS_BIND_HOST"] == "0.0.0.0"
    assert {key for key in env if key.startswith(PREFIX)} <= valid_variable_names()
    (exposed,) = dockerfile("EXPOSE")
    low, _, high = exposed.partition("-")
    assert set(DEFAULT_PORTS.values()) <= set(range(int(low), int(high or low) + 1))


def test_the_image_copies_every_package_setup_installs_and_the_build_context_keeps_them() -> None:
    packages_call = setup_keyword("packages")
    assert isinstance(packages_call, ast.Call)
    (include,) = [ast.literal_eval(kw.value) for kw in packages_call.keywords if kw.arg == "include"]
    packages = {name.split(".")[0] for name in find_packages(str(ROOT), include=include)}
    copied = set()
    for line in dockerfile("COPY"):
        copied |= {Path(source).name for source in line.split()[:-1]}
    # setup.py reads README.md, so both must be in the image's build.
    assert packages | {"setup.py", "README.md"} <= copied
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    for source in copied:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f".dockerignore drops {source}"


# --- docker compose ----------------------------------------------------------------


def compose_env(name: str) -> dict[str, str]:
    values = {"SYNCORDERS_SERVICE_SECRET": "s" * 64, "POSTGRES_PASSWORD": "p" * 32}
    return {key: interpolate(str(value), values) for key, value in compose()["services"][name]["environment"].items()}


def test_compose_runs_postgres_and_the_six_services_from_the_one_image() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", *SERVICES}
    for name in SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == services["gateway"]["image"]
        service, port = serve_args(services[name]["command"])
        assert service == name and port == DEFAULT_PORTS[name]
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health" in health
        for dependency in services[name].get("depends_on", {}):
            assert dependency in services


def test_compose_publishes_the_gateway_port_alone() -> None:
    services = compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway"}
    assert services["gateway"]["ports"] == [f"{DEFAULT_PORTS['gateway']}:{DEFAULT_PORTS['gateway']}"]


def test_compose_gives_each_service_its_own_database_and_the_urls_it_calls() -> None:
    created = set(re.findall(r"CREATE DATABASE (\w+);", INIT_SQL.read_text()))
    assert created == set(INTERNAL_SERVICES)
    mounts = compose()["services"]["postgres"]["volumes"]
    assert any(m.startswith("./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/") for m in mounts)
    for name in SERVICES:
        env = compose_env(name)
        databases = {key: value for key, value in env.items() if key.endswith("_DATABASE")}
        if name == "gateway":
            assert databases == {}
        else:
            url = urlparse(databases.pop(f"{PREFIX}{name.upper()}_DATABASE"))
            assert databases == {}, f"{name} gets another service's database"
            assert (url.scheme, url.hostname, url.path) == ("postgresql", "postgres", f"/{name}")
            assert url.password == "p" * 32
        urls = {key[len(PREFIX) : -len("_URL")].lower(): value for key, value in env.items() if key.endswith("_URL")}
        assert set(urls) == CALLS[name], name
        for target, value in urls.items():
            assert value == f"http://{target}:{DEFAULT_PORTS[target]}"


def test_compose_takes_the_secrets_from_the_environment_never_in_clear() -> None:
    services = compose()["services"]
    for name in SERVICES:
        raw = services[name]["environment"]["SYNCORDERS_SERVICE_SECRET"]
        assert raw.startswith("${SYNCORDERS_SERVICE_SECRET:?"), "compose must refuse to start without it"
        for key, value in services[name]["environment"].items():
            if key.endswith("_DATABASE"):
                assert "${POSTGRES_PASSWORD}" in value
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    example = (ROOT / "deploy" / "env.example").read_text()
    assert re.search(r"^SYNCORDERS_SERVICE_SECRET=$", example, re.M)
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.M)
    with pytest.raises(KeyError):
        interpolate(services["gateway"]["environment"]["SYNCORDERS_SERVICE_SECRET"], {})


def seconds(duration: str) -> float:
    """A compose duration such as ``30s`` or ``1m30s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_stops_each_service_with_sigterm_and_waits_out_its_drain() -> None:
    services = compose()["services"]
    for name in SERVICES:
        settings = Settings.from_env(compose_env(name))
        assert services[name]["stop_signal"] == "SIGTERM"
        # docker compose's own default, 10 s, is shorter than the drain may take.
        grace = seconds(services[name]["stop_grace_period"])
        assert grace > settings.shutdown_delay + settings.shutdown_timeout, name
        assert isinstance(services[name]["command"], list), "exec form: the service is PID 1"


def test_every_variable_compose_passes_is_one_the_configuration_reads_and_parses() -> None:
    valid = valid_variable_names()
    for name in SERVICES:
        env = compose_env(name)
        assert set(env) <= valid, (name, set(env) - valid)
        settings = Settings.from_env(env)
        assert settings.secret() == "s" * 64
        for target in CALLS[name]:
            assert settings.url(target) == f"http://{target}:{DEFAULT_PORTS[target]}"
