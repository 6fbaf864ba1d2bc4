"""The snapshot as it will look once a plan is carried out: resizes done, new replicas on their
way (not created yet: the planner counts them as capacity arriving), removed pods gone.

The planner plans once more on this projection when it grew or added pods: packing demand again
with the new capacity present can place it differently, and whatever the second look still needs
is added now rather than by the next loop. The planner itself derives that round's rows from the
first round's (:meth:`autoscaler.plan.rows.Base.derived`); this module is the reference the
tests hold it to.
"""

from __future__ import annotations

import dataclasses

from autoscaler.actions import GrowPod, Plan, RemovePod, RevertResize, ScaleOut, ShrinkPod
from autoscaler.model import CPU, MEMORY, InFlightResize, PodState, ResizeState, Resources, Snapshot


def _plus(a: Resources, b: Resources, sign: int = 1) -> Resources:
    """``a + b`` (or ``a − b``): what :class:`Resources` arithmetic gives, without its generic
    per-key lambda (this runs for every resized pod)."""
    out = dict(a._items)
    for k, v in b._items:
        out[k] = out.get(k, 0) + sign * v
    return Resources.of(out)


def _accounted(p: PodState) -> Resources:
    """:meth:`PodState.accounted` (max of desired, allocated, actual requests), faster."""
    desired = p.requests if p.resize_state is not ResizeState.INFEASIBLE else Resources()
    vectors = (dict(desired._items), dict(p.allocated._items), dict(p.actual_requests._items))
    keys = {k for v in vectors for k in v}
    return Resources.of({k: max(v.get(k, 0) for v in vectors) for k in keys})  # missing keys count as 0


def _resized(
    p: PodState, requests: Resources, limits: Resources, now: float, ray_memory: int | None = None
) -> PodState:
    """``ray_memory``: what the resize changes the raylet's memory by (None: the request's change)."""
    delta = _plus(requests, p.requests, -1).only(CPU, MEMORY)
    ray = p.ray
    if ray is not None:
        if ray_memory is not None:
            delta = Resources.of({CPU: delta.get(CPU), MEMORY: ray_memory})
        ray = dataclasses.replace(ray, total=_plus(ray.total, delta), available=_plus(ray.available, delta))
    # still "in flight" for the concurrency caps, with the raylet already counted at the new size
    flight = InFlightResize(requests, limits, p.requests, p.limits, now, p.generation + 1, "projected",
                            raylet_done=True)
    return dataclasses.replace(
        p, requests=requests, limits=limits, allocated=requests, actual_requests=requests,
        actual_limits=limits, resize_state=ResizeState.NONE, in_flight=flight, last_resized_at=now, ray=ray,
    )


def project(snapshot: Snapshot, plan: Plan, now: float) -> Snapshot:
    pods = {p.name: p for p in snapshot.pods}
    groups = {g.name: g for g in snapshot.groups}
    pressure = dict(snapshot.pressure)
    for a in plan.actions:
        if isinstance(a, GrowPod | ShrinkPod | RevertResize) and a.pod in pods:
            ray_memory = a.ray_memory if isinstance(a, GrowPod | ShrinkPod) else None
            pods[a.pod] = _resized(pods[a.pod], a.requests, a.limits, now, ray_memory)
            if a.pod in pressure:  # a new limit starts a new pressure baseline
                pressure[a.pod] = dataclasses.replace(pressure[a.pod], consecutive_windows=0, oom_kills=0)
        elif isinstance(a, ScaleOut) and a.group in groups:
            groups[a.group] = dataclasses.replace(groups[a.group], replicas=a.replicas)
        elif isinstance(a, RemovePod) and a.pod in pods:
            pods[a.pod] = dataclasses.replace(pods[a.pod], deleting=True)
            if a.group in groups:
                groups[a.group] = dataclasses.replace(groups[a.group], replicas=a.replicas)
    used = {n.name: n.used for n in snapshot.nodes}
    for before in snapshot.pods:
        after = pods[before.name]
        if before.node_name in used and after is not before:
            now_counted = _accounted(after) if not after.deleting else Resources()
            used[before.node_name] = _plus(_plus(used[before.node_name], _accounted(before), -1), now_counted)
    return dataclasses.replace(
        snapshot,
        pods=tuple(pods[p.name] for p in snapshot.pods),
        groups=tuple(groups[g.name] for g in snapshot.groups),
        nodes=tuple(dataclasses.replace(n, used=used[n.name]) for n in snapshot.nodes),
        pressure=pressure,
    )
