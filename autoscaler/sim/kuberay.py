"""A simulated KubeRay operator reconciling ``ray.io/v1`` RayClusters into pods.

Follows ``kubernetes-resize-vpa-kuberay.md`` §3 and KubeRay's ``raycluster_controller.go``:
validation first (an invalid spec gets a Warning ``InvalidRayClusterSpec`` event and no reconcile), one
head pod, then per worker group: ``workersToDelete`` always deleted (then cleared), missing pods created,
and surplus pods deleted at random (seeded) only when in-tree autoscaling is off. Pods carry KubeRay's
labels, ``generateName`` and env; ``RAY_CLOUD_INSTANCE_ID``/``RAY_NODE_TYPE_NAME`` use the downward API
(``fieldRef``) exactly as KubeRay writes them; ``resolve_env`` gives their concrete values.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from autoscaler.quantity import to_bytes, to_milli
from autoscaler.sim.clock import Clock
from autoscaler.sim.events import EventRecorder, Store

INT32_MAX = 2147483647
HEAD_GROUP = "headgroup"
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

Key = tuple[str, str]


# -- pure rules -----------------------------------------------------------------------------------
def apply_crd_defaults(rc: dict[str, Any]) -> dict[str, Any]:
    """A copy of the RayCluster with the CRD's defaults filled in (what the API server stores)."""
    out = json.loads(json.dumps(rc))
    for group in (out.get("spec") or {}).get("workerGroupSpecs") or []:
        group.setdefault("replicas", 0)
        group.setdefault("minReplicas", 0)
        group.setdefault("maxReplicas", INT32_MAX)
        group.setdefault("numOfHosts", 1)
    return out


def desired_worker_pods(group: Mapping[str, Any]) -> int:
    """``utils.GetWorkerGroupDesiredReplicas``: replicas clamped to [min, max], × numOfHosts."""
    if group.get("suspend"):
        return 0
    lo = int(group.get("minReplicas") or 0)
    hi = int(group["maxReplicas"]) if group.get("maxReplicas") is not None else INT32_MAX
    replicas = group.get("replicas")
    if lo > hi:
        n = hi
    elif replicas is None or int(replicas) < lo:
        n = lo
    elif int(replicas) > hi:
        n = hi
    else:
        n = int(replicas)
    hosts = int(group.get("numOfHosts") or 1)
    return n * max(1, hosts)


def pod_generate_name(prefix: str, node_type: str) -> str:
    """``utils.PodGenerateName``: prefix cut to 50 characters, then ``-head-``/``-worker-``."""
    return (prefix[:50] + "-" + node_type + "-").lower()


def render_labels(labels: Mapping[str, str]) -> str:
    """``updateRayStartParamsLabels``: ``k1=v1,k2=v2`` with keys sorted."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _validate_labels(group: str, params: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    if "labels" in params:
        return (
            f"rayStartParams['labels'] is not supported for {group} group; "
            "please use the top-level Labels field instead"
        )
    errs = []
    for key, val in labels.items():
        name = key.rsplit("/", 1)[-1]
        prefix = key.rsplit("/", 1)[0] if "/" in key else ""
        if (
            not name
            or len(name) > 63
            or not _QUALIFIED_NAME.match(name)
            or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
        ):
            errs.append(
                f"invalid label key for {group} group: '{key}', error: name part must consist of "
                "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                "character"
            )
        if len(str(val)) > 63 or not _LABEL_VALUE.match(str(val)):
            errs.append(
                f"invalid label value for key '{key}' in {group} group: '{val}', error: a valid label "
                "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character"
            )
    return "; ".join(errs)


def _validate_resources(group: str, params: Mapping[str, Any], resources: Mapping[str, Any] | None) -> str:
    if resources and any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
        return (
            f"resource fields should not be set in both rayStartParams and Resources for {group} group; "
            "please use only one"
        )
    return ""


def validate_spec(spec: Mapping[str, Any]) -> str:
    """The subset of ``ValidateRayClusterSpec`` the simulator enforces; '' when valid."""
    head = spec.get("headGroupSpec") or {}
    if not ((head.get("template") or {}).get("spec") or {}).get("containers"):
        return "headGroupSpec should have at least one container"
    params = head.get("rayStartParams") or {}
    err = _validate_resources("Head", params, head.get("resources")) or _validate_labels(
        "Head", params, head.get("labels") or {}
    )
    if err:
        return err
    for g in spec.get("workerGroupSpecs") or []:
        name = g.get("groupName", "")
        if not ((g.get("template") or {}).get("spec") or {}).get("containers"):
            return "workerGroupSpec should have at least one container"
        lo, hi = g.get("minReplicas"), g.get("maxReplicas")
        if lo is not None and int(lo) < 0:
            return f"worker group {name} has negative minReplicas {lo}"
        if hi is not None and int(hi) < 0:
            return f"worker group {name} has negative maxReplicas {hi}"
        if lo is not None and hi is not None and int(lo) > int(hi):
            return f"worker group {name} has minReplicas {lo} greater than maxReplicas {hi}"
        params = g.get("rayStartParams") or {}
        err = _validate_resources(name, params, g.get("resources")) or _validate_labels(
            name, params, g.get("labels") or {}
        )
        if err:
            return err
    return ""


def ray_start_params(group: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
    """Effective ``ray start`` flags: rayStartParams, the group ``resources``/``labels`` (1.5+), and
    ``num-cpus``/``memory``/``num-gpus`` from the container's limits (requests as fallback) when absent."""
    params = {k: str(v) for k, v in (group.get("rayStartParams") or {}).items()}
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    custom = dict(group.get("resources") or {})
    if custom:
        if "CPU" in custom:
            params["num-cpus"] = str(custom.pop("CPU"))
        if "memory" in custom:
            params["memory"] = str(to_bytes(custom.pop("memory")))
        if "GPU" in custom:
            params["num-gpus"] = str(custom.pop("GPU"))
        if custom:
            params["resources"] = json.dumps({k: float(v) for k, v in sorted(custom.items())}, separators=(",", ":"))
    cpu = limits.get("cpu", requests.get("cpu"))
    if "num-cpus" not in params and cpu is not None:
        milli = to_milli(cpu)
        params["num-cpus"] = str(milli // 1000) if milli % 1000 == 0 else str(milli / 1000)
    mem = limits.get("memory", requests.get("memory"))
    if "memory" not in params and mem is not None:
        params["memory"] = str(to_bytes(mem))
    gpu = limits.get("nvidia.com/gpu", requests.get("nvidia.com/gpu"))
    if "num-gpus" not in params and gpu is not None:
        params["num-gpus"] = str(to_bytes(gpu))
    if group.get("labels"):
        params["labels"] = render_labels(group["labels"])
    return params


def ray_start_command(params: Mapping[str, str], head: bool, address: str) -> str:
    flags = ["ray start", "--head" if head else f"--address={address}", "--block"]
    flags += [f"--{k}={shlex.quote(params[k])}" for k in sorted(params)]
    return " ".join(flags)


def parse_ray_start_command(cmd: str) -> dict[str, str]:
    """Flags of a generated ``ray start`` command (used by the Ray runtime adapter)."""
    return dict(_parse_ray_start_command(cmd))


@lru_cache(maxsize=1024)
def _parse_ray_start_command(cmd: str) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for tok in shlex.split(cmd):
        if tok.startswith("--"):
            k, _, v = tok[2:].partition("=")
            out[k] = v
    return tuple(out.items())


def resolve_env(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
    """Concrete env of a container: values, plus downward-API fieldRefs resolved against the pod."""
    meta = pod.get("metadata") or {}
    out: dict[str, str] = {}
    for e in container.get("env") or []:
        if "value" in e:
            out[e["name"]] = str(e["value"])
            continue
        path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
        if path == "metadata.name":
            out[e["name"]] = meta.get("name", "")
        elif path == "metadata.namespace":
            out[e["name"]] = meta.get("namespace", "")
        elif path == "metadata.uid":
            out[e["name"]] = meta.get("uid", "")
        elif m:
            out[e["name"]] = (meta.get(m.group(1)) or {}).get(m.group(2), "")
    return out


# -- operator -------------------------------------------------------------------------------------
class KubeRayOperator:
    """Reconciles every RayCluster in the store (``managedBy`` other than KubeRay is skipped)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        seed: int = 0,
        record_events: bool = True,
        enable_random_pod_delete: bool = False,  # env ENABLE_RANDOM_POD_DELETE
        reconcile_delay: float = 0.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rng = random.Random(seed)
        self.recorder = EventRecorder(store, clock, "raycluster-controller")
        self.recorder.enabled = record_events
        self.enable_random_pod_delete = enable_random_pod_delete
        self.reconcile_delay = reconcile_delay
        self._pods: dict[Key, dict[str, _PodView]] = {}  # (ns, cluster) → pod name → what reconcile needs
        self._dirty: dict[Key, None] = {}
        self._scheduled = False
        self._invalid_seen: dict[Key, tuple[int, str]] = {}
        self._templates: dict[tuple[str, Any, str | None], dict[str, Any]] = {}
        self._started = False
        self.reconciles = 0

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.store.add_listener(self._on_event)
        for pod in self.store.list("pods", copy=False)[0]:
            self._on_event("ADDED", "pods", pod)
        for rc in self.store.list("rayclusters", copy=False)[0]:
            self._mark((rc["metadata"].get("namespace") or "default", rc["metadata"]["name"]))

    def _on_event(self, event_type: str, resource: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        if resource == "rayclusters":
            self._mark((ns, meta["name"]))
        elif resource == "pods":
            cluster = (meta.get("labels") or {}).get("ray.io/cluster")
            if not cluster:
                return
            pods = self._pods.setdefault((ns, cluster), {})
            if event_type == "DELETED":
                pods.pop(meta["name"], None)
            else:
                pods[meta["name"]] = _PodView.of(obj)
            self._mark((ns, cluster))

    def _mark(self, key: Key) -> None:
        self._dirty[key] = None
        if not self._scheduled:
            self._scheduled = True
            self.clock.call_later(self.reconcile_delay, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._dirty:
            key = next(iter(self._dirty))
            del self._dirty[key]
            self.reconcile(*key)

    # -- reconcile --------------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> None:
        self.reconciles += 1
        try:
            rc = apply_crd_defaults(self.store.get("rayclusters", namespace, name, copy=False))
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
            for pod_name in sorted(self._live(namespace, name)):  # ownerReference garbage collection
                self._delete_pod(namespace, pod_name)
            return
        spec = rc.get("spec") or {}
        if spec.get("managedBy") not in (None, "", "ray.io/kuberay-operator"):
            return
        err = validate_spec(spec)
        if err:
            gen = int(rc["metadata"].get("generation") or 1)
            if self._invalid_seen.get((namespace, name)) != (gen, err):
                self._invalid_seen[(namespace, name)] = (gen, err)
                self.recorder.record(
                    rc, "Warning", "InvalidRayClusterSpec", f"The RayCluster spec is invalid {namespace}/{name}: {err}"
                )
            return
        self._invalid_seen.pop((namespace, name), None)
        if spec.get("suspend"):
            for pod_name in sorted(self._live(namespace, name)):
                self._delete_pod(namespace, pod_name)
            self._write_status(rc)
            return
        heads, by_group = self._partition(namespace, name)
        if not heads:
            self._create_pod(rc, None)
        cleared = False
        in_tree = bool(spec.get("enableInTreeAutoscaling"))
        terminal = self._terminal(namespace, name)
        for group in spec.get("workerGroupSpecs") or []:
            gname = group["groupName"]
            mine = dict(by_group.get(gname, {}))
            # shouldDeletePod: a worker in a terminal phase is deleted, and the group gets no new pods
            # in this reconcile (the deletion event brings the next one).
            unhealthy = [v for v in terminal if v.node_type == "worker" and v.group == gname]
            for v in unhealthy:
                self._delete_pod(
                    namespace, v.name, rc,
                    f"Deleted worker Pod {namespace}/{v.name}; Pod status: {v.terminal}; Pod restart policy: Always",
                )  # fmt: skip
            if unhealthy:
                continue
            to_delete = list((group.get("scaleStrategy") or {}).get("workersToDelete") or [])
            for pod_name in to_delete:
                if pod_name in mine:
                    self._delete_pod(namespace, pod_name, rc, f"Deleted pod {namespace}/{pod_name}")
                    mine.pop(pod_name)
            cleared = cleared or bool(to_delete)
            diff = desired_worker_pods(group) - len(mine)
            for _ in range(diff):
                self._create_pod(rc, group)
            if diff < 0 and (not in_tree or self.enable_random_pod_delete):
                for pod_name in self.rng.sample(sorted(mine), -diff):
                    self._delete_pod(namespace, pod_name, rc, f"Deleted Pod {namespace}/{pod_name}")
        if cleared:
            self._clear_workers_to_delete(namespace, name)
        self._write_status(rc)

    def _live(self, namespace: str, cluster: str) -> dict[str, _PodView]:
        """Pods of the cluster that are not being deleted (terminating ones are already accounted for)."""
        return {n: v for n, v in self._pods.get((namespace, cluster), {}).items() if v.live}

    def _terminal(self, namespace: str, cluster: str) -> list[_PodView]:
        return [v for v in self._pods.get((namespace, cluster), {}).values() if v.terminal]

    def _partition(self, namespace: str, cluster: str) -> tuple[list[_PodView], dict[str, dict[str, _PodView]]]:
        """Live head pods, and live worker pods by group name, in one pass."""
        heads: list[_PodView] = []
        groups: dict[str, dict[str, _PodView]] = {}
        for n, v in self._pods.get((namespace, cluster), {}).items():
            if not v.live:
                continue
            if v.node_type == "head":
                heads.append(v)
            elif v.node_type == "worker":
                groups.setdefault(v.group, {})[n] = v
        return heads, groups

    def _delete_pod(self, namespace: str, pod_name: str, rc: dict[str, Any] | None = None, msg: str = "") -> None:
        try:
            self.store.delete("pods", namespace, pod_name)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
            return
        if rc is not None:
            self.recorder.record(rc, "Normal", "DeletedWorkerPod", msg)

    def _clear_workers_to_delete(self, namespace: str, name: str) -> None:
        for _ in range(3):
            rc = self.store.get("rayclusters", namespace, name)
            for group in rc["spec"].get("workerGroupSpecs") or []:
                if (group.get("scaleStrategy") or {}).get("workersToDelete"):
                    group["scaleStrategy"]["workersToDelete"] = []
            try:
                self.store.update("rayclusters", rc)
                return
            except Exception as exc:
                if getattr(exc, "code", None) != 409:
                    raise

    def _create_pod(self, rc: dict[str, Any], group: dict[str, Any] | None) -> None:
        meta = rc["metadata"]
        key = (meta.get("uid", ""), meta.get("generation"), None if group is None else group["groupName"])
        pod = self._templates.get(key)
        if pod is None:  # the store copies what it is given, so one built pod serves every replica
            pod = self._templates[key] = build_pod(rc, group)
        created = self.store.create("pods", pod)
        kind = "head" if group is None else "worker"
        self.recorder.record(
            rc,
            "Normal",
            f"Created{kind.capitalize()}Pod",
            f"Created {kind} Pod {created['metadata']['namespace']}/{created['metadata']['name']}",
        )

    def _write_status(self, rc: dict[str, Any]) -> None:
        meta = rc["metadata"]
        ns, name = meta.get("namespace") or "default", meta["name"]
        spec = rc.get("spec") or {}
        heads, by_group = self._partition(ns, name)
        workers = [p for pods in by_group.values() for p in pods.values()]
        groups = spec.get("workerGroupSpecs") or []
        running = [v for v in workers if v.running]
        ready = [v for v in running if v.ready]
        desired_cpu = desired_mem = desired_gpu = 0
        for g in groups:
            n = desired_worker_pods(g)
            c0 = (((g.get("template") or {}).get("spec") or {}).get("containers") or [{}])[0]
            res = c0.get("resources") or {}
            lim, req = res.get("limits") or {}, res.get("requests") or {}
            desired_cpu += n * to_milli(req.get("cpu", lim.get("cpu", 0)))
            desired_mem += n * to_bytes(req.get("memory", lim.get("memory", 0)))
            desired_gpu += n * to_bytes(lim.get("nvidia.com/gpu", 0))
        head_ready = bool(heads) and heads[0].ready
        status: dict[str, Any] = dict(rc.get("status") or {})
        status.update(
            desiredWorkerReplicas=sum(desired_worker_pods(g) for g in groups),
            minWorkerReplicas=sum(int(g.get("minReplicas") or 0) * int(g.get("numOfHosts") or 1) for g in groups),
            maxWorkerReplicas=min(
                INT32_MAX, sum(int(g.get("maxReplicas") or 0) * int(g.get("numOfHosts") or 1) for g in groups)
            ),
            availableWorkerReplicas=len(running),
            readyWorkerReplicas=len(ready),
            desiredCPU=_fmt_cpu(desired_cpu),
            desiredMemory=str(desired_mem),
            desiredGPU=str(desired_gpu),
            desiredTPU="0",
            observedGeneration=int(meta.get("generation") or 1),
        )
        if head_ready and len(ready) >= status["desiredWorkerReplicas"]:
            status["state"] = "ready"  # deprecated field, still read by tools
        else:
            status.pop("state", None)
        if heads:
            status["head"] = {"podName": heads[0].name, "podIP": heads[0].pod_ip}
        current = self.store.get("rayclusters", ns, name, copy=False)
        if current.get("status") == status:
            return
        try:
            self.store.update("rayclusters", dict(current, status=status), subresource="status")
        except Exception as exc:
            if getattr(exc, "code", None) == 409:
                self._mark((ns, name))
            elif getattr(exc, "code", None) != 404:
                raise


def build_pod(rc: dict[str, Any], group: dict[str, Any] | None) -> dict[str, Any]:
    """The pod KubeRay creates for the head (``group=None``) or one worker of ``group``."""
    meta = rc["metadata"]
    cluster, ns = meta["name"], meta.get("namespace") or "default"
    spec = rc.get("spec") or {}
    head = group is None
    gspec = (spec.get("headGroupSpec") or {}) if head else (group or {})
    template = json.loads(json.dumps(gspec.get("template") or {}))
    node_type = "head" if head else "worker"
    gname = HEAD_GROUP if head else gspec["groupName"]
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/identifier": f"{cluster}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    labels.update((template.get("metadata") or {}).get("labels") or {})
    labels.update(gspec.get("labels") or {})
    labels.update({"ray.io/cluster": cluster, "ray.io/node-type": node_type, "ray.io/group": gname})
    annotations = dict((template.get("metadata") or {}).get("annotations") or {})
    annotations.setdefault("ray.io/ft-enabled", "false")
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or []
    c0 = containers[0]
    params = ray_start_params(gspec, c0)
    address = f"{cluster}-head-svc.{ns}.svc.cluster.local:6379"
    command = ray_start_command(params, head, address)
    env = [e for e in c0.get("env") or [] if e.get("name") not in _KUBERAY_ENV]
    env += [
        {"name": "RAY_CLOUD_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "RAY_NODE_TYPE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['ray.io/group']"}}},
        {"name": "RAY_CLUSTER_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}}},
        {"name": "RAY_CLUSTER_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "KUBERAY_GEN_RAY_START_CMD", "value": command},
        {"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"},
    ]
    if not head:
        env.append({"name": "RAY_ADDRESS", "value": address})
    c0 = dict(c0, env=env, command=["/bin/bash", "-c", "--"], args=[f"ulimit -n 65536; {command}"])
    pod_spec = dict(pod_spec, containers=[c0, *containers[1:]])
    pod_spec.setdefault("restartPolicy", "Always")
    prefix = cluster if head else f"{cluster}-{gname}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": pod_generate_name(prefix, node_type),
            "namespace": ns,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "ray.io/v1",
                    "kind": "RayCluster",
                    "name": cluster,
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }


_KUBERAY_ENV = {
    "RAY_CLOUD_INSTANCE_ID",
    "RAY_NODE_TYPE_NAME",
    "RAY_CLUSTER_NAME",
    "RAY_CLUSTER_NAMESPACE",
    "KUBERAY_GEN_RAY_START_CMD",
    "RAY_USAGE_STATS_KUBERAY_IN_USE",
    "RAY_ADDRESS",
}


class _PodView(NamedTuple):
    name: str
    node_type: str
    group: str
    live: bool  # not being deleted and not terminal
    terminal: str  # "Failed" / "Succeeded" while not yet being deleted, else ""
    running: bool
    ready: bool
    pod_ip: str

    @staticmethod
    def of(pod: Mapping[str, Any]) -> _PodView:
        meta, status = pod["metadata"], pod.get("status") or {}
        labels = meta.get("labels") or {}
        phase = status.get("phase")
        return _PodView(
            name=meta["name"],
            node_type=labels.get("ray.io/node-type", ""),
            group=labels.get("ray.io/group", ""),
            live=not meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"),
            terminal=phase if phase in ("Failed", "Succeeded") and not meta.get("deletionTimestamp") else "",
            running=phase == "Running",
            ready=_pod_ready(pod),
            pod_ip=status.get("podIP", ""),
        )


def _labels(pod: Mapping[str, Any]) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def _fmt_cpu(milli: int) -> str:
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
