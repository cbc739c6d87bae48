"""The Kubernetes "restricted" Pod Security Standard as a function of a pod spec.

The admission controller that enforces it runs inside an API server, which the test suite does
not have; this is the same list of controls (baseline and restricted, as published for
Kubernetes 1.30 and later), checked on the pod templates we ship so that a regression fails a
test instead of a `kubectl apply` in someone's cluster. Each violation names the control and
where it was found.
"""

from collections.abc import Iterator
from typing import Any

_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
_SELINUX_TYPES = {
    None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t",
}  # fmt: skip
_APPARMOR = {None, "RuntimeDefault", "Localhost"}
# Restricted: only these volume types.
_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def pod_spec(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec a workload resource creates pods from, or None for other kinds."""
    kind = resource["kind"]
    spec: dict[str, Any] = resource.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        template: dict[str, Any] = spec["template"]["spec"]
        return template
    if kind == "CronJob":
        job: dict[str, Any] = spec["jobTemplate"]["spec"]["template"]["spec"]
        return job
    return None


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container of a pod spec (init and ephemeral included), with a name for messages."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield f"{field}[{c.get('name')}]", c


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every way `spec` (a pod spec) breaks the restricted Pod Security Standard; [] if none."""
    out: list[str] = []
    pod_sc: dict[str, Any] = spec.get("securityContext") or {}

    # -- baseline ---------------------------------------------------------------------------
    for ns in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(ns):
            out.append(f"host namespaces: {ns} is true")
    contexts = [("pod", pod_sc)] + [
        (n, c.get("securityContext") or {}) for n, c in containers(spec)
    ]
    for name, sc in contexts:
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"HostProcess: {name} sets windowsOptions.hostProcess")
        se = sc.get("seLinuxOptions") or {}
        if se.get("type") not in _SELINUX_TYPES or se.get("user") or se.get("role"):
            out.append(f"SELinux: {name} sets seLinuxOptions {se}")
        if (sc.get("appArmorProfile") or {}).get("type") not in _APPARMOR:
            out.append(f"AppArmor: {name} sets an unconfined profile")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            out.append(f"sysctls: {sysctl.get('name')} is not in the safe set")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            out.append(f"HostPath volumes: volume {volume['name']}")
        if not kinds <= _VOLUME_TYPES:
            out.append(f"volume types: volume {volume['name']} is {sorted(kinds - _VOLUME_TYPES)}")

    # -- restricted, pod level ----------------------------------------------------------------
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_sc.get("runAsUser") == 0:
        out.append("running as non-root user: pod runAsUser is 0")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_OK:
        out.append(f"seccomp: pod profile is {pod_seccomp}")

    # -- restricted and baseline, per container ---------------------------------------------
    for name, c in containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"privileged containers: {name}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"host ports: {name} uses hostPort {port['hostPort']}")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"/proc mount type: {name} sets {sc['procMount']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"privilege escalation: {name} does not set allowPrivilegeEscalation false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            out.append(f"running as non-root: {name} may run as root (runAsNonRoot not true)")
        if sc.get("runAsUser") == 0:
            out.append(f"running as non-root user: {name} runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in _SECCOMP_OK:
            out.append(f"seccomp: {name} profile is {seccomp}")
        if seccomp is None and pod_seccomp is None:
            out.append(f"seccomp: {name} has no RuntimeDefault or Localhost profile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"capabilities: {name} does not drop ALL")
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                out.append(f"capabilities: {name} adds {cap}")
    return out
