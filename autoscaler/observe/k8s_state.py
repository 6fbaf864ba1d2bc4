"""Kubernetes objects (plain dicts) → rva's model. Pure functions, no I/O.

The accounting rule is the scheduler's (KEP-1287 §Scheduler and API Server Interaction): a pod
counts ``max(desired requests unless the resize is Infeasible, allocated, actual)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from autoscaler import annotations as ann
from autoscaler.model import (
    CPU,
    GPU,
    MEMORY,
    NODE_GROUP_LABEL,
    ZERO,
    GroupState,
    NodeState,
    PodState,
    QoSClass,
    ResizeState,
    Resources,
)
from autoscaler.quantity import to_bytes, to_milli

Obj = Mapping[str, Any]
MAX_REPLICAS_DEFAULT = 2147483647


def parse_time(ts: str | None) -> float | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _condition(pod: Obj, ctype: str) -> Obj | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c  # type: ignore[no-any-return]
    return None


def resize_state(pod: Obj) -> tuple[ResizeState, str, float | None]:
    """The kubelet's verdict on the pod's resize, from ``PodResizePending`` / ``PodResizeInProgress``."""
    pending = _condition(pod, "PodResizePending")
    if pending is not None and pending.get("status") == "True":
        reason = pending.get("reason")
        state = ResizeState.INFEASIBLE if reason == "Infeasible" else ResizeState.DEFERRED
        return state, pending.get("message", ""), parse_time(pending.get("lastTransitionTime"))
    progress = _condition(pod, "PodResizeInProgress")
    if progress is not None and progress.get("status") == "True":
        state = ResizeState.ERROR if progress.get("reason") == "Error" else ResizeState.IN_PROGRESS
        return state, progress.get("message", ""), parse_time(progress.get("lastTransitionTime"))
    return ResizeState.NONE, "", None


def _container_status(pod: Obj, name: str) -> Obj:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") == name:
            return cs  # type: ignore[no-any-return]
    return {}


def _qos(pod: Obj) -> QoSClass:
    q = pod.get("status", {}).get("qosClass")
    if q:
        return QoSClass(q)
    return compute_qos(pod.get("spec", {}).get("containers") or [])


def compute_qos(containers: Iterable[Obj]) -> QoSClass:
    """Kubernetes' QoS rule; only cpu and memory count."""
    guaranteed, any_set = True, False
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for r in (CPU, MEMORY):
            if r in req or r in lim:
                any_set = True
            req_v = req.get(r, lim.get(r))
            if r not in lim or req_v is None or to_milli(req_v) != to_milli(lim[r]):
                guaranteed = False
    if not any_set:
        return QoSClass.BEST_EFFORT
    return QoSClass.GUARANTEED if guaranteed else QoSClass.BURSTABLE


def _resizable(container: Obj) -> bool:
    return all(
        p.get("restartPolicy", "NotRequired") == "NotRequired"
        for p in container.get("resizePolicy") or []
        if p.get("resourceName") in (CPU, MEMORY)
    )


def pod_state(pod: Obj) -> PodState:
    """A KubeRay worker pod → PodState. The Ray container is container 0 (KubeRay's convention)."""
    md = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    c0 = (spec.get("containers") or [{}])[0]
    res = c0.get("resources") or {}
    cs = _container_status(pod, c0.get("name", ""))
    actual = cs.get("resources") or {}
    requests = Resources.from_k8s(res.get("requests"))
    state, message, since = resize_state(pod)
    scheduled = _condition(pod, "PodScheduled")
    unschedulable_since = (
        parse_time(scheduled.get("lastTransitionTime"))
        if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
        else None
    )
    ready = _condition(pod, "Ready")
    started = parse_time(ready.get("lastTransitionTime")) if ready and ready.get("status") == "True" else None
    annotations = md.get("annotations") or {}
    last = annotations.get(ann.LAST_RESIZE)
    return PodState(
        name=md["name"],
        namespace=md.get("namespace", ""),
        group=(md.get("labels") or {}).get("ray.io/group", ""),
        node_name=spec.get("nodeName"),
        phase=status.get("phase", "Pending"),
        qos=_qos(pod),
        container=c0.get("name", ""),
        requests=requests,
        limits=Resources.from_k8s(res.get("limits")),
        # Before the kubelet reports, "allocated" and "actual" are what the spec asked for at creation.
        allocated=Resources.from_k8s(cs["allocatedResources"]) if "allocatedResources" in cs else requests,
        actual_requests=Resources.from_k8s(actual.get("requests")) if actual else ZERO,
        actual_limits=Resources.from_k8s(actual.get("limits")) if actual else ZERO,
        generation=int(md.get("generation") or 1),
        observed_generation=int(status.get("observedGeneration") or 0),
        resize_state=state,
        resize_message=message,
        resize_since=since,
        resizable=_resizable(c0),
        created_at=parse_time(md.get("creationTimestamp")) or 0.0,
        started_at=started,
        restart_count=int(cs.get("restartCount") or 0),
        deleting=bool(md.get("deletionTimestamp")),
        unschedulable_since=unschedulable_since,
        in_flight=ann.decode_in_flight(annotations.get(ann.IN_FLIGHT)),
        last_resized_at=float(last) if last else None,
    )


def pod_accounted_requests(pod: Obj) -> Resources:
    """What the scheduler counts for a pod (all containers, init-container max rule)."""
    spec = pod.get("spec", {})
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return ZERO
    infeasible = resize_state(pod)[0] is ResizeState.INFEASIBLE
    total = ZERO
    for c in spec.get("containers") or []:
        cs = _container_status(pod, c.get("name", ""))
        desired = ZERO if infeasible else Resources.from_k8s((c.get("resources") or {}).get("requests"))
        allocated = Resources.from_k8s(cs.get("allocatedResources"))
        actual = Resources.from_k8s((cs.get("resources") or {}).get("requests"))
        total = total + desired.maximum(allocated).maximum(actual)
    init_max = ZERO
    for c in spec.get("initContainers") or []:
        req = Resources.from_k8s((c.get("resources") or {}).get("requests"))
        if c.get("restartPolicy") == "Always":  # sidecars run beside the app containers
            total = total + req
        else:
            init_max = init_max.maximum(req)
    return total.maximum(init_max)


def node_state(node: Obj, pods_on_node: Iterable[Obj]) -> NodeState:
    md = node.get("metadata", {})
    status = node.get("status", {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    used = ZERO
    for p in pods_on_node:
        used = used + pod_accounted_requests(p)
    return NodeState(
        name=md["name"],
        allocatable=Resources.from_k8s(status.get("allocatable") or status.get("capacity")),
        labels=dict(md.get("labels") or {}),
        used=used,
        ready=ready or not status.get("conditions"),
        unschedulable=bool(node.get("spec", {}).get("unschedulable")),
    )


def desired_replicas(group: Obj, suspended: bool = False) -> int:
    """KubeRay's ``GetWorkerGroupDesiredReplicas`` divided by numOfHosts (replica count, not pods)."""
    if suspended or group.get("suspend"):
        return 0
    lo = int(group.get("minReplicas") or 0)
    hi = int(group.get("maxReplicas", MAX_REPLICAS_DEFAULT))
    if lo > hi:
        return hi
    r = group.get("replicas")
    if r is None or int(r) < lo:
        return lo
    return min(int(r), hi)


def _ray_resources(group: Obj, c0: Obj) -> Resources:
    """The logical Ray resources of a new pod of the group, as KubeRay renders ``ray start``."""
    explicit: dict[str, Any] = dict(group.get("resources") or {})  # KubeRay ≥ 1.5
    params = group.get("rayStartParams") or {}
    res = c0.get("resources") or {}
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    out: dict[str, int] = {}
    cpu = explicit.get("CPU", params.get("num-cpus"))
    if cpu is not None:
        out[CPU] = to_milli(cpu)
    elif CPU in limits or CPU in requests:
        # KubeRay passes --num-cpus from the limit (else the request); Ray sees whole cores.
        out[CPU] = math.ceil(to_milli(limits[CPU] if CPU in limits else requests[CPU]) / 1000) * 1000
    mem = explicit.get("memory", params.get("memory"))
    if mem is not None:
        out[MEMORY] = to_bytes(mem)
    elif MEMORY in limits or MEMORY in requests:
        out[MEMORY] = to_bytes(limits[MEMORY] if MEMORY in limits else requests[MEMORY])
    gpu = explicit.get("GPU", params.get("num-gpus"))
    if gpu is not None:
        out[GPU] = to_milli(gpu)
    else:
        for name in ("nvidia.com/gpu", "amd.com/gpu"):
            if name in limits:
                out[GPU] = to_milli(limits[name])
    for k, v in explicit.items():
        if k not in ("CPU", "memory", "GPU"):
            out[k] = to_milli(v)
    return Resources.of(out)


def group_states(raycluster: Obj, stocked_out_until: Mapping[str, float] | None = None) -> list[GroupState]:
    spec = raycluster.get("spec", {})
    suspended = bool(spec.get("suspend"))
    out = []
    for i, g in enumerate(spec.get("workerGroupSpecs") or []):
        c0 = ((g.get("template") or {}).get("spec", {}).get("containers") or [{}])[0]
        res = c0.get("resources") or {}
        name = g["groupName"]
        labels = dict(g.get("labels") or {})
        labels.setdefault(NODE_GROUP_LABEL, name)
        out.append(
            GroupState(
                name=name,
                index=i,
                labels=labels,
                replicas=desired_replicas(g, suspended),
                min_replicas=int(g.get("minReplicas") or 0),
                max_replicas=int(g.get("maxReplicas", MAX_REPLICAS_DEFAULT)),
                num_of_hosts=int(g.get("numOfHosts") or 1),
                template_requests=Resources.from_k8s(res.get("requests") or res.get("limits")),
                template_limits=Resources.from_k8s(res.get("limits")),
                ray_resources=_ray_resources(g, c0),
                priority=int(g.get("priority") or 0),
                workers_to_delete=tuple((g.get("scaleStrategy") or {}).get("workersToDelete") or ()),
                stocked_out_until=(stocked_out_until or {}).get(name),
            )
        )
    return out
