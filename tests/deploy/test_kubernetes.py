"""The Kubernetes manifests: valid for the API versions we support, and the operational
properties that issue 10 asked for, each checked so that undoing it fails a test.

Schema validation is kubernetes-validate in strict mode (unknown fields are errors); the Pod
Security Standard is `tests.deploy.pss`, itself tested against hostile variations of our own
pod spec.
"""

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.pss import containers, pod_spec, restricted_violations

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# The oldest Kubernetes the manifests target (preStop `sleep` is on by default from 1.30), and
# the newest the installed kubernetes-validate knows.
KUBE_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
WS_PORT, OPS_PORT = 8765, 8766
# A generous bound on the daemon's shutdown after SIGTERM: its tabs' close handshakes (each
# bounded by the server's close_timeout, a few seconds) and closing its store and clients.
SHUTDOWN_SECONDS = 10

Resource = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def load(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


RESOURCES = [r for p in manifest_files() for r in load(p)]


def one(kind: str, name: str) -> Resource:
    found = [r for r in RESOURCES if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def rid(r: Resource) -> str:
    return f"{r['kind']}/{r['metadata']['name']}"


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


WORKLOADS = [r for r in RESOURCES if pod_spec(r) is not None]
DAEMON = one("Deployment", "switchboard")
DAEMON_LABELS: dict[str, str] = DAEMON["spec"]["template"]["metadata"]["labels"]
DAEMON_POD: dict[str, Any] = DAEMON["spec"]["template"]["spec"]
[DAEMON_CONTAINER] = DAEMON_POD["containers"]


def test_the_manifests_are_found() -> None:
    assert {p.name for p in manifest_files()} == {
        "namespace.yaml",
        "switchboard.yaml",
        "redis.yaml",
    }
    assert {r["kind"] for r in RESOURCES} >= {
        "Namespace", "Deployment", "Service", "PodDisruptionBudget", "StatefulSet", "NetworkPolicy",
    }  # fmt: skip


def test_kustomization_applies_every_manifest_with_the_pinned_image() -> None:
    k = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert sorted(k["resources"]) == [p.name for p in manifest_files()]
    [image] = [i for i in k["images"] if i["name"] == "switchboard"]
    assert image["newTag"] == VERSION
    [namespace] = [r for r in RESOURCES if r["kind"] == "Namespace"]
    assert k["namespace"] == namespace["metadata"]["name"]
    # Namespaced resources take the kustomization's namespace; none names another.
    assert not [rid(r) for r in RESOURCES if "namespace" in r["metadata"]]


def test_the_cluster_enforces_the_restricted_standard_in_the_namespace() -> None:
    [namespace] = [r for r in RESOURCES if r["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("resource", RESOURCES, ids=rid)
def test_every_resource_validates_strictly(resource: Resource, version: str) -> None:
    # Raises on an unknown kind or apiVersion (SchemaNotFoundError) as well as a bad field.
    kubernetes_validate.validate(resource, version, strict=True)


def test_schema_validation_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(DAEMON)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[0], strict=True)


def test_there_are_workloads_to_check() -> None:
    assert {rid(w) for w in WORKLOADS} == {"Deployment/switchboard", "StatefulSet/redis"}


@pytest.mark.parametrize("workload", WORKLOADS, ids=rid)
def test_every_pod_meets_the_restricted_pod_security_standard(workload: Resource) -> None:
    spec = pod_spec(workload)
    assert spec is not None
    assert restricted_violations(spec) == []


@pytest.mark.parametrize("workload", WORKLOADS, ids=rid)
def test_every_container_is_locked_down_and_sized(workload: Resource) -> None:
    """Beyond the standard: a read-only root filesystem, and requests and limits that let the
    scheduler place the pod and the kubelet stop a runaway one."""
    spec = pod_spec(workload)
    assert spec is not None
    assert spec.get("automountServiceAccountToken") is False
    assert spec.get("enableServiceLinks") is False
    for name, c in containers(spec):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert sc["runAsNonRoot"] is True, name
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name


def test_the_daemon_writes_only_to_an_empty_dir_at_tmp() -> None:
    volumes = {v["name"]: v for v in DAEMON_POD["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in DAEMON_CONTAINER["volumeMounts"]}
    assert set(mounts) == {"/tmp"}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def _drop_security_context_field(spec: dict[str, Any], field: str) -> None:
    spec["securityContext"].pop(field, None)
    for _, c in containers(spec):
        c["securityContext"].pop(field, None)


def _set_container(spec: dict[str, Any], path: str, value: Any) -> None:
    target = spec["containers"][0]
    *parents, leaf = path.split(".")
    for p in parents:
        target = target.setdefault(p, {})
    target[leaf] = value


Mutation = Callable[[dict[str, Any]], None]
REGRESSIONS: dict[str, tuple[Mutation, str]] = {
    "host network": (lambda s: s.update(hostNetwork=True), "host namespaces"),
    "host PID": (lambda s: s.update(hostPID=True), "host namespaces"),
    "privileged": (
        lambda s: _set_container(s, "securityContext.privileged", True),
        "privileged containers",
    ),
    "capabilities kept": (
        lambda s: _set_container(s, "securityContext.capabilities", {}),
        "does not drop ALL",
    ),
    "capability added": (
        lambda s: _set_container(s, "securityContext.capabilities.add", ["NET_ADMIN"]),
        "adds NET_ADMIN",
    ),
    "privilege escalation": (
        lambda s: _set_container(s, "securityContext.allowPrivilegeEscalation", True),
        "privilege escalation",
    ),
    "may run as root": (
        lambda s: _drop_security_context_field(s, "runAsNonRoot"),
        "may run as root",
    ),
    "root user": (
        lambda s: _set_container(s, "securityContext.runAsUser", 0),
        "runAsUser is 0",
    ),
    "no seccomp": (
        lambda s: _drop_security_context_field(s, "seccompProfile"),
        "no RuntimeDefault or Localhost profile",
    ),
    "unconfined seccomp": (
        lambda s: _set_container(s, "securityContext.seccompProfile", {"type": "Unconfined"}),
        "profile is Unconfined",
    ),
    "host path": (
        lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "HostPath volumes",
    ),
    "host port": (
        lambda s: s["containers"][0]["ports"].append({"containerPort": 80, "hostPort": 80}),
        "host ports",
    ),
    "unsafe sysctl": (
        lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "sysctls",
    ),
    "unmasked /proc": (
        lambda s: _set_container(s, "securityContext.procMount", "Unmasked"),
        "/proc mount type",
    ),
    "SELinux type": (
        lambda s: _set_container(s, "securityContext.seLinuxOptions", {"type": "spc_t"}),
        "SELinux",
    ),
    "AppArmor off": (
        lambda s: _set_container(s, "securityContext.appArmorProfile", {"type": "Unconfined"}),
        "AppArmor",
    ),
    "bare init container": (
        lambda s: s.update(initContainers=[{"name": "init", "image": "busybox:1.36"}]),
        "initContainers[init] does not drop ALL",
    ),
}


@pytest.mark.parametrize("regression", REGRESSIONS)
def test_the_pod_security_check_catches_each_regression(regression: str) -> None:
    mutate, expected = REGRESSIONS[regression]
    spec = copy.deepcopy(DAEMON_POD)
    mutate(spec)
    violations = restricted_violations(spec)
    assert any(expected in v for v in violations), violations


def test_the_daemon_image_is_pinned_to_the_package_version() -> None:
    assert DAEMON_CONTAINER["image"] == f"switchboard:{VERSION}"


@pytest.mark.parametrize("workload", WORKLOADS, ids=rid)
def test_no_image_floats(workload: Resource) -> None:
    spec = pod_spec(workload)
    assert spec is not None
    for name, c in containers(spec):
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", c["image"]), (name, c["image"])


def test_probes_readiness_on_readyz_liveness_on_healthz_via_the_ops_port() -> None:
    ports = {p["name"]: p["containerPort"] for p in DAEMON_CONTAINER["ports"]}
    assert ports == {"ws": WS_PORT, "ops": OPS_PORT}
    ready = DAEMON_CONTAINER["readinessProbe"]["httpGet"]
    live = DAEMON_CONTAINER["livenessProbe"]["httpGet"]
    assert (ready["path"], ready["port"]) == ("/readyz", "ops")
    assert (live["path"], live["port"]) == ("/healthz", "ops")


def test_the_daemon_listens_where_the_probes_and_services_look() -> None:
    env = {e["name"]: e for e in DAEMON_CONTAINER["env"]}
    assert env["SWITCHBOARD_HOST"]["value"] == "0.0.0.0"
    assert env["SWITCHBOARD_WS_PORT"]["value"] == str(WS_PORT)
    assert env["SWITCHBOARD_HTTP_PORT"]["value"] == str(OPS_PORT)
    assert env["SWITCHBOARD_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_a_stopping_pod_drains_before_sigterm_and_has_time_to_close_its_tabs() -> None:
    sleep = DAEMON_CONTAINER["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= 5
    assert DAEMON_POD["terminationGracePeriodSeconds"] >= sleep + SHUTDOWN_SECONDS + 5


def _services_of(labels: dict[str, str]) -> list[Resource]:
    return [
        r
        for r in RESOURCES
        if r["kind"] == "Service" and selects(r["spec"].get("selector", {}), labels)
    ]


def test_the_ops_port_has_its_own_cluster_internal_service() -> None:
    services = _services_of(DAEMON_LABELS)
    with_ops = [s for s in services if any(p["targetPort"] == "ops" for p in s["spec"]["ports"])]
    with_ws = [s for s in services if any(p["targetPort"] == "ws" for p in s["spec"]["ports"])]
    assert [s["metadata"]["name"] for s in with_ops] == ["switchboard-ops"]
    assert [s["metadata"]["name"] for s in with_ws] == ["switchboard-ws"]
    [ops] = with_ops
    assert ops["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert [p["port"] for p in ops["spec"]["ports"]] == [OPS_PORT]
    [ws] = with_ws
    assert [p["targetPort"] for p in ws["spec"]["ports"]] == ["ws"]


def test_voluntary_disruptions_leave_most_nodes_serving() -> None:
    [pdb] = [r for r in RESOURCES if r["kind"] == "PodDisruptionBudget"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], DAEMON_LABELS)
    assert pdb["spec"].get("maxUnavailable") == 1
    assert DAEMON["spec"]["replicas"] >= 3
    assert DAEMON["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_pods_spread_across_nodes_and_zones() -> None:
    constraints = {c["topologyKey"]: c for c in DAEMON_POD["topologySpreadConstraints"]}
    assert set(constraints) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    # Two pods on one node is refused; an unbalanced zone spread is tolerated (one-zone clusters).
    assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    for c in constraints.values():
        assert c["maxSkew"] == 1
        assert selects(c["labelSelector"]["matchLabels"], DAEMON_LABELS)


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_redis_keeps_an_append_only_file_on_a_persistent_volume_and_never_evicts() -> None:
    redis = one("StatefulSet", "redis")
    [c] = redis["spec"]["template"]["spec"]["containers"]
    args = c["args"]
    assert args[0] == "redis-server"
    assert _flag(args, "--appendonly") == "yes"
    assert _flag(args, "--maxmemory-policy") == "noeviction"
    assert _flag(args, "--requirepass") == "$(REDIS_PASSWORD)"
    [claim] = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    assert redis["spec"]["serviceName"] == "redis"


def test_only_the_daemon_may_reach_redis() -> None:
    redis_labels = one("StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    policy = one("NetworkPolicy", "redis")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], redis_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert peer["podSelector"]["matchLabels"] == DAEMON_LABELS


def test_the_ops_port_refuses_traffic_from_outside_the_cluster() -> None:
    policy = one("NetworkPolicy", "switchboard")
    assert policy["spec"]["podSelector"]["matchLabels"] == DAEMON_LABELS
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {tuple(p["port"] for p in rule["ports"]): rule for rule in policy["spec"]["ingress"]}
    assert set(rules) == {("ws",), ("ops",)}
    assert "from" not in rules[("ws",)]  # tabs: from anywhere, through the Ingress
    assert rules[("ops",)]["from"] == [{"namespaceSelector": {}}]  # pods of this cluster only


def _secret_refs() -> set[str]:
    """Every Secret name the workloads read, by envFrom or by key."""
    names: set[str] = set()
    for w in WORKLOADS:
        spec = pod_spec(w)
        assert spec is not None
        for _, c in containers(spec):
            names |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names


def test_no_secret_lives_in_the_repository_and_the_readme_creates_each_one() -> None:
    assert not [r for r in RESOURCES if r["kind"] == "Secret"]
    readme = (ROOT / "deploy" / "README.md").read_text()
    namespace = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["namespace"]
    created = set(re.findall(rf"kubectl -n {namespace} create secret generic ([\w-]+)", readme))
    assert _secret_refs() == created == {"switchboard", "switchboard-redis"}
    assert "--from-literal=password=" in readme  # the key switchboard-redis is read by


def test_the_redis_url_carries_the_password_from_the_secret() -> None:
    env = [e["name"] for e in DAEMON_CONTAINER["env"]]
    # $(VAR) expands only variables defined earlier in the list.
    assert env.index("REDIS_PASSWORD") < env.index("SWITCHBOARD_REDIS_URL")
    url = DAEMON_CONTAINER["env"][env.index("SWITCHBOARD_REDIS_URL")]["value"]
    assert url == "redis://:$(REDIS_PASSWORD)@redis:6379/0"
