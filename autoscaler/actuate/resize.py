"""In-place pod resizes through ``pods/resize``, with the in-flight record kept on the pod.

Order of writes for one resize:
  1. ``PATCH pods/<name>/resize`` — strategic merge keyed by container name, cpu/memory requests and
     limits only (never a JSON merge patch: it would replace the whole containers list);
  2. ``PATCH pods/<name>`` annotation ``rva.ray.io/resize`` with the target and the generation the
     resize PATCH returned, so a restarted daemon or a new leader resumes tracking.
A crash between 1 and 2 leaves a resize without a record; the kubelet's conditions still drive the
planner's in-flight pass (revert on Infeasible/Error/Deferred timeout), so nothing is lost.

Completion = no ``PodResizePending``/``PodResizeInProgress``, ``status.observedGeneration`` ≥ the
recorded generation and the container's actual cpu/memory equal to the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from autoscaler import annotations as ann
from autoscaler.kubeclient import read_json
from autoscaler.model import CPU, MEMORY, InFlightResize, PodState, ResizeState, Resources
from autoscaler.quantity import format_bytes, format_millicores

SMP = "application/strategic-merge-patch+json"
#: The kubelet treats CPU values at or below these minima as equal (MinShares / MinMilliCPULimit).
CPU_TOLERANCE_MILLI = 10


class CoreApi(Protocol):
    async def patch_namespaced_pod_resize(self, name: str, namespace: str, body: Any, **kw: Any) -> Any: ...
    async def patch_namespaced_pod(self, name: str, namespace: str, body: Any, **kw: Any) -> Any: ...


def _quantities(r: Resources, keys: Mapping[str, Any]) -> dict[str, str]:
    """cpu/memory of ``r`` for exactly the keys the container already has (never add or remove keys)."""
    out: dict[str, str] = {}
    if CPU in keys:
        out[CPU] = format_millicores(r.get(CPU))
    if MEMORY in keys:
        out[MEMORY] = format_bytes(r.get(MEMORY))
    return out


def resize_body(pod: PodState, requests: Resources, limits: Resources) -> dict[str, Any]:
    """Strategic-merge body for ``pods/resize``: container 0's cpu/memory, keyed by container name."""
    resources: dict[str, Any] = {}
    req = _quantities(requests, pod.requests)
    lim = _quantities(limits, pod.limits)
    if req:
        resources["requests"] = req
    if lim:
        resources["limits"] = lim
    return {"spec": {"containers": [{"name": pod.container, "resources": resources}]}}


def is_complete(pod: PodState) -> bool:
    """The kubelet applied the recorded resize."""
    rec = pod.in_flight
    if rec is None or pod.resize_state is not ResizeState.NONE:
        return False
    if pod.observed_generation and pod.observed_generation < rec.generation:
        return False
    actual_req, actual_lim = pod.actual_requests, pod.actual_limits
    if abs(actual_req.get(CPU) - rec.target_requests.get(CPU)) > CPU_TOLERANCE_MILLI:
        return False
    if CPU in rec.target_limits and abs(actual_lim.get(CPU) - rec.target_limits.get(CPU)) > CPU_TOLERANCE_MILLI:
        return False
    return MEMORY not in rec.target_limits or actual_lim.get(MEMORY) == rec.target_limits.get(MEMORY)


class PodResizer:
    """Writes resizes and their records. Knows nothing about why; the plan said so."""

    def __init__(self, core: CoreApi) -> None:
        self.core = core

    async def resize(
        self, pod: PodState, requests: Resources, limits: Resources, reason: str, now: float,
        raylet_done: bool = False, ray_memory: int | None = None,
    ) -> dict[str, Any]:
        resp = await self.core.patch_namespaced_pod_resize(
            pod.name, pod.namespace, resize_body(pod, requests, limits), _content_type=SMP,
            _preload_content=False,
        )
        updated: dict[str, Any] = await read_json(resp)
        record = InFlightResize(
            target_requests=requests.only(CPU, MEMORY),
            target_limits=limits.only(CPU, MEMORY),
            previous_requests=pod.allocated.only(CPU, MEMORY),
            previous_limits=(pod.actual_limits or pod.limits).only(CPU, MEMORY),
            started_at=now,
            generation=int(updated.get("metadata", {}).get("generation") or pod.generation),
            reason=reason,
            raylet_done=raylet_done,
            ray_memory=ray_memory,
        )
        return await self._annotate(pod, {ann.IN_FLIGHT: ann.encode_in_flight(record)})

    async def revert(self, pod: PodState, requests: Resources, limits: Resources, now: float) -> dict[str, Any]:
        """Spec back to the allocation (so a stale resize is never applied later); drop the record.
        The revert counts as a resize for the cooldown, so the pod is not grown straight back into the
        same refusal while its demand falls back to scale-out."""
        await self.core.patch_namespaced_pod_resize(
            pod.name, pod.namespace, resize_body(pod, requests, limits), _content_type=SMP,
            _preload_content=False,
        )
        return await self._annotate(pod, {ann.IN_FLIGHT: None, ann.LAST_RESIZE: f"{now:.3f}"})

    async def finish(self, pod: PodState, now: float) -> dict[str, Any]:
        """Drop the record and remember when (cooldown survives restarts)."""
        return await self._annotate(pod, {ann.IN_FLIGHT: None, ann.LAST_RESIZE: f"{now:.3f}"})

    async def _annotate(self, pod: PodState, values: Mapping[str, str | None]) -> dict[str, Any]:
        resp = await self.core.patch_namespaced_pod(
            pod.name, pod.namespace, {"metadata": {"annotations": dict(values)}}, _content_type=SMP,
            _preload_content=False,
        )
        body: dict[str, Any] = await read_json(resp)
        return body

