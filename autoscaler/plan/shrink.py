"""Give back what is not used: shrink idle or over-sized pods, remove pods Ray reports idle.

* Removal: a pod whose raylet has been idle (nothing in use) past the group's idle timeout is
  drained and removed, never below min replicas and never a busy node (nor one under memory
  pressure or just resized); a pod stuck Unschedulable
  past the stockout time is removed without a drain (its raylet never registered).
* Shrink: an idle pod (Ray idle past ``idleWindow``), or a pod grown more than ``idleWindow`` ago,
  shrinks toward its template size — never below what Ray has in use, the policy minimum, or peak
  memory usage × (1 + margin); memory is left alone when no usage was observed. Downsizes smaller
  than the hysteresis fraction are skipped. Ray's memory shrinks to at most the new limit less
  ``vertical.memoryReserve`` and never by more than that asks (``ShrinkPod.ray_memory``): memory
  grown for pressure was never Ray's, so shrinking it away leaves Ray's share as it was.
Groups this plan placed demand on or scaled out are left alone (no churn against pending work).
Multi-host groups (``numOfHosts > 1``) are never shrunk by removal of single hosts.
"""

from __future__ import annotations

import math

from autoscaler.actions import Reason, RemovePod, ShrinkPod
from autoscaler.model import CPU, MEMORY, PodState, QoSClass, ResizeState, ray_capacity, ray_memory_after_shrink
from autoscaler.plan.guards import (
    LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE,
    in_cooldown,
    limits_for,
    resize_problem,
    resized_requests,
    worth_shrinking,
)
from autoscaler.plan.text import fmt_bytes, fmt_cpu
from autoscaler.plan.workspace import RowKind, Workspace


def _round_up(value: int, quantum: int) -> int:
    return value if quantum <= 0 else -(-value // quantum) * quantum


def _under_pressure(ws: Workspace, pod: PodState) -> bool:
    p = ws.snapshot.pressure.get(pod.name)
    return p is not None and (p.consecutive_windows > 0 or p.oom_kills > 0)


def _idle_for_removal(ws: Workspace, r: int, pod: PodState) -> bool:
    ray = pod.ray
    g = ws.row_group[r]
    return (
        ray is not None
        and ws.row_kind[r] == RowKind.LIVE
        and not ws.placed[r]
        and r not in ws.growth
        and r not in ws.reverted
        and pod.in_flight is None
        and not in_cooldown(pod, ws.group_policy[g], ws.now)  # just resized for a reason: not idle
        and not _under_pressure(ws, pod)
        and ray.idle_duration_s >= ws.group_policy[g].horizontal.idle_timeout
        and ray.total.fits_in(ray.available)  # nothing in use: never remove a busy node
    )


def remove_idle(ws: Workspace) -> None:
    groups = ws.snapshot.groups
    replicas = [g.replicas for g in groups]
    pods = ws.snapshot.pods
    to_delete = {name for g in groups for name in g.workers_to_delete}
    idle_timeout = [gp.horizontal.idle_timeout for gp in ws.group_policy]
    stockout_time = [gp.horizontal.stockout_time for gp in ws.group_policy]
    now = ws.now
    order: list[tuple[float, str, int]] = []  # longest idle first, then name: deterministic
    for r in range(ws.n_pods):  # only pods that can be removed at all (idle long enough, or stuck)
        p = pods[r]
        g = ws.row_group[r]
        if g < 0:
            continue
        ray = p.ray
        if ray is not None:
            if ray.idle_duration_s >= idle_timeout[g]:
                order.append((-ray.idle_duration_s, p.name, r))
        elif p.unschedulable_since is not None and now - p.unschedulable_since >= stockout_time[g]:
            order.append((-0.0, p.name, r))
    order.sort()
    for _, _, r in order:
        pod = pods[r]
        g = ws.row_group[r]
        if g < 0 or g in ws.group_busy or pod.deleting or pod.name in to_delete or r in ws.frozen:
            continue
        gp = ws.group_policy[g]
        group = groups[g]
        if not gp.horizontal.enabled or group.num_of_hosts > 1 or replicas[g] - 1 < ws.min_replicas(g):
            continue
        if _idle_for_removal(ws, r, pod):
            assert pod.ray is not None
            reason, drain = Reason.IDLE_TIMEOUT, True
            why = (
                f"Ray reports the node idle for {pod.ray.idle_duration_s:.0f}s "
                f"(idle timeout {gp.horizontal.idle_timeout:.0f}s); {group.name} {replicas[g]} → {replicas[g] - 1}"
            )
        elif (
            pod.ray is None
            and pod.unschedulable_since is not None
            and ws.now - pod.unschedulable_since >= gp.horizontal.stockout_time
        ):
            reason, drain = Reason.STOCKOUT_CLEANUP, False
            why = (
                f"Unschedulable for {ws.now - pod.unschedulable_since:.0f}s "
                f"(stockout time {gp.horizontal.stockout_time:.0f}s); {group.name} {replicas[g]} → {replicas[g] - 1}"
            )
        else:
            continue
        replicas[g] -= 1
        ws.removed.add(r)
        ws.actions.append(RemovePod(pod.name, group.name, replicas[g], reason, why, drain=drain))


def _shrinkable(ws: Workspace, r: int, pod: PodState) -> bool:
    g = ws.row_group[r]
    if g < 0 or g in ws.group_busy or r in ws.frozen:
        return False
    gp = ws.group_policy[g]
    return (
        gp.shrink.enabled
        and gp.vertical.enabled
        and pod.ray is not None
        and ws.row_kind[r] == RowKind.LIVE
        and r not in ws.removed
        and r not in ws.reverted
        and r not in ws.growth
        and not ws.placed[r]
        and pod.in_flight is None
        and pod.resize_state is ResizeState.NONE
        and pod.resizable
        and pod.qos is not QoSClass.BEST_EFFORT
        and ws.row_node[r] >= 0
        and not in_cooldown(pod, gp, ws.now)
    )


def shrink_idle(ws: Workspace) -> None:
    for r in range(ws.n_pods):
        pod = ws.snapshot.pods[r]
        if not _shrinkable(ws, r, pod):
            continue
        assert pod.ray is not None
        g = ws.row_group[r]
        gp = ws.group_policy[g]
        window = gp.shrink.idle_window
        idle = pod.ray.idle_duration_s >= window
        settled = pod.last_resized_at is not None and ws.now - pod.last_resized_at >= window
        if not (idle or settled):
            continue
        template = ws.group(g).template_requests
        in_use = pod.ray.total - pod.ray.available
        quanta = gp.vertical.sizing.quanta
        peak = ws.snapshot.pressure.get(pod.name)
        cur_c, cur_m = pod.requests.get(CPU), pod.requests.get(MEMORY)
        tgt_c, tgt_m = cur_c, cur_m
        if gp.can_resize(CPU) and CPU in pod.requests:
            used_c = _round_up(max(0, in_use.get(CPU)), quanta.cpu)
            floor_c = max(template.get(CPU), gp.vertical.min_pod.cpu or 0, used_c)
            tgt_c = min(cur_c, floor_c)
        if (
            gp.can_resize(MEMORY)
            and MEMORY in pod.requests
            and peak is not None
            and ws.snapshot.server_minor > LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE
        ):
            floor_m = max(
                template.get(MEMORY),
                gp.vertical.min_pod.memory or 0,
                max(0, in_use.get(MEMORY)),
                _round_up(math.ceil(peak.peak_usage_bytes * (1 + gp.shrink.usage_margin)), quanta.memory),
            )
            tgt_m = min(cur_m, floor_m)
        hyst = gp.vertical.hysteresis
        if not worth_shrinking(cur_c, tgt_c, hyst):
            tgt_c = cur_c
        if not worth_shrinking(cur_m, tgt_m, hyst):
            tgt_m = cur_m
        if (tgt_c, tgt_m) == (cur_c, cur_m):
            continue
        requests = resized_requests(pod, tgt_c, tgt_m)
        limits = limits_for(pod, requests)
        problem = resize_problem(pod, requests, limits, ws.snapshot.server_minor)
        if problem is not None:
            ws.notes.append(f"{pod.name}: not shrunk: {problem}")
            continue
        if not ws.budget.take(ws.row_node[r]):
            ws.notes.append(f"{pod.name}: shrink deferred (resize concurrency cap reached)")
            continue
        changes = []
        if tgt_c != cur_c:
            changes.append(f"cpu {fmt_cpu(cur_c)} → {fmt_cpu(tgt_c)}")
        if tgt_m != cur_m:
            changes.append(f"memory {fmt_bytes(cur_m)} → {fmt_bytes(tgt_m)}")
        if idle:
            reason = Reason.IDLE_SHRINK
            cause = f"Ray idle for {pod.ray.idle_duration_s:.0f}s (window {window:.0f}s)"
        else:
            reason = Reason.OVERSIZED
            cause = f"grown {ws.now - (pod.last_resized_at or 0):.0f}s ago and not needed now"
        floor = "template size, Ray use" + (
            f", peak memory × {1 + gp.shrink.usage_margin:g}" if peak is not None else ""
        )
        ray_memory = None
        if tgt_m != cur_m:
            ray_mem = pod.ray.total.get(MEMORY)
            after = ray_memory_after_shrink(ray_mem, max(0, in_use.get(MEMORY)),
                                            ray_capacity(requests, limits).get(MEMORY), gp.vertical.memory_reserve)
            ray_memory = after - ray_mem
        ws.actions.append(ShrinkPod(pod.name, requests, limits, reason,
                                    f"shrink {', '.join(changes)}: {cause}; floor: {floor}", ray_memory=ray_memory))
