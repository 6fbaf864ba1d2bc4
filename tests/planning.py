"""Builders for planner tests and a pure ``apply_plan`` that simulates a plan being carried out."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from autoscaler.actions import GrowPod, Plan, RemovePod, RevertResize, ScaleOut, ShrinkPod
from autoscaler.model import (
    CPU,
    MEMORY,
    NODE_GROUP_LABEL,
    Demand,
    GroupState,
    InFlightResize,
    LabelSelector,
    NodeState,
    PodState,
    QoSClass,
    RayNodeState,
    ResizeState,
    Resources,
    Snapshot,
    raylet_change,
)

GI = 2**30
MI = 2**20


def res(cpu: float = 0, mem_gi: float = 0, **other: float) -> Resources:
    """Resources from cores and GiB (others in whole units)."""
    values = {CPU: round(cpu * 1000), MEMORY: round(mem_gi * GI)}
    values.update({k: round(v * 1000) for k, v in other.items()})
    return Resources.of(values)


def group(
    name: str,
    cpu: float = 4,
    mem_gi: float = 16,
    replicas: int = 1,
    min_replicas: int = 0,
    max_replicas: int = 10,
    labels: Mapping[str, str] | None = None,
    gpu: float = 0,
    index: int = 0,
    **kw: object,
) -> GroupState:
    size = res(cpu, mem_gi, gpu=gpu) if gpu else res(cpu, mem_gi)
    return GroupState(
        name=name,
        index=index,
        labels={**(labels or {}), NODE_GROUP_LABEL: name},
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        num_of_hosts=int(kw.pop("num_of_hosts", 1)),  # type: ignore[call-overload]
        template_requests=size,
        template_limits=size,
        ray_resources=size,
        **kw,  # type: ignore[arg-type]
    )


def node(name: str, cpu: float = 16, mem_gi: float = 64, used: Resources | None = None, **kw: object) -> NodeState:
    return NodeState(name=name, allocatable=res(cpu, mem_gi), labels={}, used=used or Resources(), **kw)  # type: ignore[arg-type]


def pod(
    name: str,
    grp: GroupState,
    node_name: str | None = "n1",
    size: Resources | None = None,
    in_use: Resources | None = None,
    idle_s: float = 0.0,
    qos: QoSClass = QoSClass.GUARANTEED,
    limits: Resources | None = None,
    ray: bool = True,
    phase: str = "Running",
    **kw: object,
) -> PodState:
    size = size if size is not None else grp.template_requests
    used = in_use if in_use is not None else Resources()
    ray_state = (
        RayNodeState(
            node_id=f"id-{name}",
            instance_id=name,
            node_type=grp.name,
            total=size,
            available=size - used,
            labels=dict(grp.labels),
            idle_duration_s=idle_s,
            status="IDLE" if idle_s > 0 else "RUNNING",
        )
        if ray
        else None
    )
    lim = limits if limits is not None else size
    return PodState(
        name=name,
        namespace="ray",
        group=grp.name,
        node_name=node_name,
        phase=phase,
        qos=qos,
        container="ray-worker",
        requests=size,
        limits=lim,
        allocated=size,
        actual_requests=size,
        actual_limits=lim,
        created_at=0.0,
        started_at=0.0,
        ray=ray_state,
        **kw,  # type: ignore[arg-type]
    )


def demand(cpu: float = 1, mem_gi: float = 0, count: int = 1, selectors: tuple[Mapping[str, str], ...] = (),
           **other: float) -> Demand:
    return Demand(res(cpu, mem_gi, **other), count, tuple(LabelSelector.parse(s) for s in selectors))


def snapshot(pods: list[PodState], nodes: list[NodeState], groups: list[GroupState], **kw: object) -> Snapshot:
    """A snapshot whose node ``used`` includes every pod's accounted size (plus what the node says)."""
    fixed = []
    for n in nodes:
        extra = sum((p.accounted() for p in pods if p.node_name == n.name and not p.deleting), Resources())
        fixed.append(dataclasses.replace(n, used=n.used + extra))
    groups = [dataclasses.replace(g, index=i) for i, g in enumerate(groups)]
    kw.setdefault("taken_at", 0.0)
    return Snapshot(namespace="ray", cluster="rc", pods=tuple(pods), nodes=tuple(fixed),  # type: ignore[arg-type]
                    groups=tuple(groups), **kw)


# --------------------------------------------------------------------------------------------------
# apply_plan: the plan carried out, resizes completed, new pods created (Pending, not registered)
# --------------------------------------------------------------------------------------------------


def _resized(p: PodState, requests: Resources, limits: Resources, now: float, ray_memory: int | None) -> PodState:
    ray = p.ray
    if ray is not None:  # the raylet as the executor resizes it once the kubelet is done
        rec = InFlightResize(requests, limits, p.requests, p.limits, now, 0, "applied", ray_memory=ray_memory)
        delta = raylet_change(ray.total, rec)
        ray = dataclasses.replace(ray, total=ray.total + delta, available=ray.available + delta)
    return dataclasses.replace(
        p, requests=requests, limits=limits, allocated=requests, actual_requests=requests, actual_limits=limits,
        resize_state=ResizeState.NONE, in_flight=None, last_resized_at=now, ray=ray,
    )


def apply_plan(snap: Snapshot, plan: Plan, now: float) -> Snapshot:
    pods = {p.name: p for p in snap.pods}
    groups = {g.name: g for g in snap.groups}
    pressure = dict(snap.pressure)
    for action in plan.actions:
        if isinstance(action, GrowPod | ShrinkPod | RevertResize):
            ray_memory = action.ray_memory if isinstance(action, GrowPod | ShrinkPod) else None  # as the executor does
            pods[action.pod] = _resized(pods[action.pod], action.requests, action.limits, now, ray_memory)
            if action.pod in pressure:  # the detector starts a new baseline on a limit change
                pressure[action.pod] = dataclasses.replace(pressure[action.pod], consecutive_windows=0, oom_kills=0)
        elif isinstance(action, ScaleOut):
            g = groups[action.group]
            groups[g.name] = dataclasses.replace(g, replicas=action.replicas)
            for i in range(action.count):
                name = f"{g.name}-new-{int(now)}-{i}"
                pods[name] = pod(name, g, node_name=None, ray=False, phase="Pending")
        elif isinstance(action, RemovePod):
            pods.pop(action.pod, None)
            groups[action.group] = dataclasses.replace(groups[action.group], replicas=action.replicas)
    new_pods = list(pods.values())
    nodes = []
    for n in snap.nodes:
        before = sum((p.accounted() for p in snap.pods if p.node_name == n.name and not p.deleting), Resources())
        after = sum((p.accounted() for p in new_pods if p.node_name == n.name and not p.deleting), Resources())
        nodes.append(dataclasses.replace(n, used=n.used - before + after))
    return dataclasses.replace(
        snap, pods=tuple(new_pods), nodes=tuple(nodes), groups=tuple(groups[g.name] for g in snap.groups),
        pressure=pressure, taken_at=now,
    )


def run_plan(snap: Snapshot, policy: str | None = None, now: float = 10_000.0) -> Plan:
    """Plan with a policy given as YAML text (None: defaults)."""
    from autoscaler.plan import plan
    from autoscaler.policy import load_policy

    return plan(snap, load_policy(policy or ""), now)


def kinds(p: Plan) -> list[tuple[str, str, str]]:
    """(action kind, target, reason) for compact assertions."""
    out = []
    for a in p.actions:
        target = a.group if isinstance(a, ScaleOut) else a.pod
        out.append((type(a).__name__, target, a.reason.value))
    return out
