"""Resizes already in flight: leave them alone, unless the kubelet said no.

``Infeasible`` → revert and fall back now; ``Deferred`` past its timeout → revert and fall back;
``InProgress`` with reason ``Error`` → revert; ``InProgress`` past its timeout → revert. Any other
pod with a resize in flight is not re-planned (its accepted growth already counts as capacity on
its way). Reverting puts the spec back to what the kubelet allocated, so a stale resize is never
applied later; a reverted pod is not grown again in the same plan, so its demand falls back.
"""

from __future__ import annotations

from autoscaler.actions import Reason, RevertResize
from autoscaler.model import CPU, MEMORY, PodState, QoSClass, ResizeState, Resources
from autoscaler.plan.guards import LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE
from autoscaler.plan.rows import in_flight_growth
from autoscaler.plan.workspace import Workspace


def _revert_target(pod: PodState, server_minor: int) -> tuple[Resources, Resources]:
    f = pod.in_flight
    req = dict(pod.requests._items)
    lim = dict(pod.limits._items)
    for k in (CPU, MEMORY):
        if k in req:
            fallback = f.previous_requests.get(k, req[k]) if f else req[k]
            req[k] = pod.allocated.get(k, fallback) if k in pod.allocated else fallback
        if k in lim:
            fallback = f.previous_limits.get(k, lim[k]) if f else lim[k]
            lim[k] = pod.actual_limits.get(k, fallback) if k in pod.actual_limits else fallback
    if server_minor <= LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE and MEMORY in lim:
        # 1.33 rejects lowering a memory limit: keep it (and, to stay Guaranteed, the request too)
        lim[MEMORY] = max(lim[MEMORY], pod.limits[MEMORY])
        if pod.qos is QoSClass.GUARANTEED and MEMORY in req:
            req[MEMORY] = lim[MEMORY]
    return Resources.of(req), Resources.of(lim)


def _verdict(pod: PodState, ws: Workspace) -> tuple[Reason, str] | None:
    f = pod.in_flight
    assert f is not None
    g = ws.snapshot.group(pod.group)
    timeouts = ws.policy.resolve(g.name if g else pod.group).vertical.resize_timeouts
    since = pod.resize_since if pod.resize_since is not None else f.started_at
    waited = ws.now - since
    state = pod.resize_state
    detail = f" ({pod.resize_message})" if pod.resize_message else ""
    if state is ResizeState.INFEASIBLE:
        return Reason.RESIZE_INFEASIBLE, f"the kubelet found the resize infeasible{detail}; reverting and falling back"
    if state is ResizeState.DEFERRED and waited >= timeouts.deferred:
        return Reason.RESIZE_DEFERRED_TIMEOUT, (
            f"the resize was deferred for {waited:.0f}s (limit {timeouts.deferred:.0f}s){detail}; "
            "reverting and falling back"
        )
    if state is ResizeState.ERROR:
        return Reason.RESIZE_ERROR, f"the kubelet failed to actuate the resize{detail}; reverting"
    if state is ResizeState.IN_PROGRESS and waited >= timeouts.in_progress:
        return Reason.RESIZE_IN_PROGRESS_TIMEOUT, (
            f"the resize has been in progress for {waited:.0f}s (limit {timeouts.in_progress:.0f}s); reverting"
        )
    return None


def handle_in_flight(ws: Workspace) -> None:
    for r, pod in enumerate(ws.snapshot.pods):
        if pod.in_flight is None or pod.deleting or r in ws.frozen:
            continue
        verdict = _verdict(pod, ws)
        if verdict is None:
            continue  # still running: not re-planned
        requests, limits = _revert_target(pod, ws.snapshot.server_minor)
        ws.actions.append(RevertResize(pod.name, requests, limits, verdict[0], verdict[1]))
        ws.reverted.add(r)
        ws.forbid_growth(r)
        # the growth counted as "on its way" will not come
        coming = ws.vector(in_flight_growth(pod))
        ws.free[r] = [max(a - b, 0) for a, b in zip(ws.free[r], coming, strict=True)]
        ws.forget_bounds()
