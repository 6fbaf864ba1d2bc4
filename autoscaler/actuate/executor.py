"""Carry out a plan for one cluster: the only place that orders writes across Kubernetes and Ray.

* Grow: ``pods/resize`` now; the raylet grows when the kubelet reports the resize applied
  (:meth:`PlanExecutor.complete_resizes`, every loop).
* Shrink: the raylet first; the pod is resized by what Ray actually released (Ray clamps a shrink
  so ``available`` never goes below zero), so a pod never ends up smaller than its raylet's usage.
* Revert: spec back to the allocation; a raylet already shrunk for a downsize grows back.
* Scale out / remove: one JSON patch per group with ``replicas`` and ``workersToDelete`` together;
  a raylet is drained through the GCS before its pod is listed for deletion, and a busy node
  (drain refused "no longer idle") is kept.
Every write checks ``may_act`` first (the leader fence), so a replica that lost the lease stops at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.actions import GrowPod, Plan, Reason, RemovePod, RevertResize, ScaleOut, ShrinkPod
from autoscaler.actuate.events import EventRecorder
from autoscaler.actuate.raylet import DrainResult
from autoscaler.actuate.replicas import ReplicaWriter
from autoscaler.actuate.resize import PodResizer, is_complete
from autoscaler.kubeclient import api_status
from autoscaler.metrics import Metrics
from autoscaler.model import CPU, MEMORY, GroupState, PodState, Resources, Snapshot, ray_capacity, raylet_change

log = logging.getLogger(__name__)


class Raylets(Protocol):
    """What the executor needs from :class:`autoscaler.actuate.raylet.RayletActuator`."""

    async def resize(self, node_id: str, target: Resources) -> Resources: ...
    async def drain_idle(self, node_id: str, reason: str, deadline_ms: int = 0) -> DrainResult: ...


@dataclass
class ExecutionReport:
    """What one execution did (for logs, ``/debug/plan`` and tests)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class PlanExecutor:
    def __init__(
        self,
        *,
        cluster: str,
        namespace: str,
        resizer: PodResizer,
        replicas: ReplicaWriter,
        raylets: Raylets | None,
        events: EventRecorder,
        metrics: Metrics,
        may_act: Callable[[], bool],
        max_concurrent_writes: int = 4,
        on_written: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.label = f"{namespace}/{cluster}"
        self.resizer = resizer
        self.replicas = replicas
        self.raylets = raylets
        self.events = events
        self.metrics = metrics
        self.may_act = may_act
        self._on_written = on_written or (lambda resource, obj: None)
        self._sem = asyncio.Semaphore(max_concurrent_writes)

    # ------------------------------------------------------------------------------------------
    async def complete_resizes(self, snap: Snapshot, now: float) -> ExecutionReport:
        """Finish resizes the kubelet has applied: sync the raylet on growth, then drop the record."""
        report = ExecutionReport()
        for pod in snap.pods:
            if pod.in_flight is None or not is_complete(pod) or not self.may_act():
                continue
            rec = pod.in_flight
            before = ray_capacity(rec.previous_requests, rec.previous_limits)
            after = ray_capacity(rec.target_requests, rec.target_limits)
            grew = any(after.get(r) > before.get(r) for r in (CPU, MEMORY))
            try:
                if grew and not rec.raylet_done and pod.ray is not None and self.raylets is not None:
                    # the memory Ray gains is the plan's (reserve and pressure growth stay out of Ray)
                    target = pod.ray.total.only(CPU, MEMORY) + raylet_change(pod.ray.total, rec)
                    await self.raylets.resize(pod.ray.node_id, target.maximum(Resources()))
                self._on_written("pods", await self.resizer.finish(pod, now))
            except (ApiException, Exception) as e:  # retried next loop: the record is still there
                report.failed.append(f"complete {pod.name}: {e}")
                log.warning("could not complete resize of %s: %s", pod.name, e)
                continue
            direction = "up" if grew else "down"
            self.metrics.resize_outcomes.labels(self.label, "completed").inc()
            self.metrics.resize_duration.labels(self.label, direction).observe(max(0.0, now - rec.started_at))
            await self.events.emit(
                self.namespace, "Pod", pod.name, "ResizeCompleted",
                f"in-place resize applied: requests {dict(rec.target_requests)} limits {dict(rec.target_limits)}"
                + (" (raylet resized)" if grew else ""), now)
            report.done.append(f"completed {pod.name}")
        return report

    # ------------------------------------------------------------------------------------------
    async def execute(self, snap: Snapshot, plan: Plan, now: float) -> ExecutionReport:
        report = ExecutionReport()
        pods = {p.name: p for p in snap.pods}
        groups = {g.name: g for g in snap.groups}
        per_pod = [a for a in plan.actions if isinstance(a, GrowPod | ShrinkPod | RevertResize)]
        await asyncio.gather(*(self._guarded(self._pod_action, a, pods.get(a.pod), now, report) for a in per_pod))
        removals: dict[str, list[RemovePod]] = {}
        for a in plan.actions:
            if isinstance(a, RemovePod):
                removals.setdefault(a.group, []).append(a)
        for group_name, acts in removals.items():
            group = groups.get(group_name)
            if group is not None:
                await self._guarded(self._remove, group, acts, pods, now, report)
        for a in plan.actions:
            if isinstance(a, ScaleOut) and a.group in groups:
                await self._guarded(self._scale_out, groups[a.group], a, now, report)
        return report

    async def _guarded(self, fn: Callable[..., object], *args: object) -> None:
        report: ExecutionReport = args[-1]  # type: ignore[assignment]
        if not self.may_act():
            report.skipped.append(f"{fn.__name__}: not leader")
            return
        async with self._sem:
            try:
                await fn(*args)  # type: ignore[misc]
            except ApiException as e:
                status = api_status(e)
                kind = fn.__name__.strip("_")
                self.metrics.actions_failed.labels(self.label, kind, str(e.status)).inc()
                report.failed.append(f"{kind}: HTTP {e.status} {status.get('message', '')}")
                log.warning("%s %s failed: HTTP %s %s", self.label, kind, e.status, status.get("message", ""))

    # ------------------------------------------------------------------------------------------
    async def _pod_action(
        self, action: GrowPod | ShrinkPod | RevertResize, pod: PodState | None, now: float, report: ExecutionReport
    ) -> None:
        if pod is None:
            report.skipped.append(f"{action.pod}: gone")
            return
        kind = type(action).__name__
        if isinstance(action, GrowPod):
            try:
                self._on_written(
                    "pods", await self.resizer.resize(pod, action.requests, action.limits, action.reason.value, now,
                                                      ray_memory=action.ray_memory))
            except ApiException as e:
                if e.status in (403, 422):  # in place impossible: the planner falls back next loop
                    self.metrics.resize_outcomes.labels(self.label, "rejected").inc()
                    await self.events.emit(self.namespace, "Pod", pod.name, "ResizeRejected",
                                           f"{action.why}: API refused the resize: {api_status(e).get('message')}",
                                           now, warning=True)
                raise
        elif isinstance(action, ShrinkPod):
            requests, limits = action.requests, action.limits
            ray_memory = action.ray_memory
            if pod.ray is not None and self.raylets is not None:
                new_req, new_lim, ray_memory = await self._shrink_raylet_first(pod, action)
                if new_req is None or new_lim is None:
                    report.skipped.append(f"{pod.name}: raylet could not release anything")
                    return
                requests, limits = new_req, new_lim
            self._on_written("pods", await self.resizer.resize(
                pod, requests, limits, action.reason.value, now, raylet_done=True, ray_memory=ray_memory))
        else:
            await self._revert(action, pod, now)
        self.metrics.actions.labels(self.label, kind, action.reason.value).inc()
        await self.events.emit(self.namespace, "Pod", pod.name, kind, f"[{action.reason.value}] {action.why}", now,
                               warning=isinstance(action, RevertResize))
        await self.events.emit(self.namespace, "RayCluster", self.cluster, kind,
                               f"{pod.name}: [{action.reason.value}] {action.why}", now)
        report.done.append(f"{kind} {pod.name}")

    async def _shrink_raylet_first(
        self, pod: PodState, action: ShrinkPod
    ) -> tuple[Resources | None, Resources | None, int | None]:
        """Shrink the raylet by what the plan says (for memory: ``action.ray_memory``, which can be less
        than the limit's drop), then size the pod by what Ray actually let go: (requests, limits, the
        raylet's memory change) — (None, None, None) when the pod cannot shrink at all."""
        assert pod.ray is not None and self.raylets is not None
        current = ray_capacity(pod.requests, pod.limits)
        wanted = ray_capacity(action.requests, action.limits)
        ray_total = pod.ray.total.only(CPU, MEMORY)
        target = ray_total + (wanted - current)
        if action.ray_memory is not None:
            target = Resources.of({CPU: target.get(CPU), MEMORY: ray_total.get(MEMORY) + action.ray_memory})
        applied = (await self.raylets.resize(pod.ray.node_id, target.maximum(Resources()))).only(CPU, MEMORY)
        # Ray clamps a shrink at what it has in use: the pod never gets smaller than what the raylet
        # now counts (the shortfall), each limit−request gap kept.
        shortfall = (applied - wanted).maximum(Resources()).minimum(current - wanted)
        requests = action.requests + shortfall
        if all(requests.get(r) >= pod.requests.get(r) for r in (CPU, MEMORY)):
            return None, None, None
        limits = action.limits + shortfall.only(*[r for r in (CPU, MEMORY) if r in action.limits])
        return requests, limits, applied.get(MEMORY) - ray_total.get(MEMORY)

    async def _revert(self, action: RevertResize, pod: PodState, now: float) -> None:
        self._on_written("pods", await self.resizer.revert(pod, action.requests, action.limits, now))
        outcome = {
            Reason.RESIZE_INFEASIBLE: "infeasible", Reason.RESIZE_DEFERRED_TIMEOUT: "deferred_timeout",
            Reason.RESIZE_ERROR: "error", Reason.RESIZE_IN_PROGRESS_TIMEOUT: "in_progress_timeout",
        }.get(action.reason, "reverted")
        self.metrics.resize_outcomes.labels(self.label, outcome).inc()
        rec = pod.in_flight
        if rec is not None and rec.raylet_done and pod.ray is not None and self.raylets is not None:
            # A downsize shrank the raylet before the pod; the pod stays big, so give Ray its capacity back.
            # (what the raylet released, as the record says: raylet_change is ≤ 0 for a downsize)
            grown = pod.ray.total.only(CPU, MEMORY) - raylet_change(pod.ray.total, rec)
            await self.raylets.resize(pod.ray.node_id, grown.maximum(Resources()))

    # ------------------------------------------------------------------------------------------
    async def _remove(
        self, group: GroupState, actions: Sequence[RemovePod], pods: dict[str, PodState], now: float,
        report: ExecutionReport,
    ) -> None:
        victims: list[RemovePod] = []
        for a in actions:
            pod = pods.get(a.pod)
            if pod is None or pod.name in group.workers_to_delete:
                continue
            if a.drain and pod.ray is not None and self.raylets is not None:
                result = await self.raylets.drain_idle(pod.ray.node_id, f"rva: {a.why}")
                if not result.accepted:
                    report.skipped.append(f"{pod.name}: drain refused ({result.message})")
                    await self.events.emit(self.namespace, "Pod", pod.name, "RemovalSkipped",
                                           f"kept: Ray refused to drain the node: {result.message}", now)
                    continue
            victims.append(a)
        if not victims:
            return
        replicas = max(group.min_replicas, group.replicas - len(victims))
        to_delete = [*group.workers_to_delete, *(a.pod for a in victims)]
        self._on_written("rayclusters", await self.replicas.set_replicas(
            self.namespace, self.cluster, group.index, group.name, replicas, to_delete))
        for a in victims:
            self.metrics.actions.labels(self.label, "RemovePod", a.reason.value).inc()
            self.metrics.removals.labels(self.label, group.name, a.reason.value).inc()
            await self.events.emit(self.namespace, "RayCluster", self.cluster, "RemovePod",
                                   f"{a.pod}: [{a.reason.value}] {a.why}", now)
            report.done.append(f"RemovePod {a.pod}")

    async def _scale_out(self, group: GroupState, action: ScaleOut, now: float, report: ExecutionReport) -> None:
        self._on_written("rayclusters", await self.replicas.set_replicas(
            self.namespace, self.cluster, group.index, group.name, action.replicas, group.workers_to_delete
        ))
        fallback = "true" if action.reason is Reason.FALLBACK_GROUP else "false"
        self.metrics.actions.labels(self.label, "ScaleOut", action.reason.value).inc()
        self.metrics.scale_outs.labels(self.label, group.name, fallback).inc(action.count)
        message = f"{group.name} +{action.count} → {action.replicas}: [{action.reason.value}] {action.why}"
        await self.events.emit(self.namespace, "RayCluster", self.cluster, "ScaleOut", message, now)
        report.done.append(f"ScaleOut {group.name} +{action.count}")
