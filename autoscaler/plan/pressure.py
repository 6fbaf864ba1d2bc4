"""Memory growth from pressure, independent of Ray demand.

* An OOM kill newer than the pod's last resize bumps memory at once to
  ``max(used + oomMinBump, used × oomBumpRatio)`` with ``used = max(request, peak usage)``
  (the VPA recommender's rule: ratio 1.2, min 100 MiB).
* Sustained pressure — ``consecutiveWindows`` windows in a row with PSI ``some avg10`` or
  usage/limit at or above the thresholds — grows memory by ``max(× growFactor, + growMin)``.
Both are capped by the policy max and the node's room. Pods in startup grace, in cooldown or with
a resize in flight are skipped (as VPA's pressure detector does).

This pass runs before any demand is placed: the work a pod already runs comes first, and the
memory it adds is there for demand placed after it (as it will be when the next loop plans). The
new memory becomes the pod's base size: growth for demand, and its sizing mode, come on top.
"""

from __future__ import annotations

import math

from autoscaler.actions import Reason
from autoscaler.model import MEMORY, PodState, Pressure, QoSClass, ResizeState
from autoscaler.plan.guards import in_cooldown, in_startup_grace
from autoscaler.plan.text import fmt_bytes
from autoscaler.plan.workspace import RM, RowKind, Workspace
from autoscaler.policy import MemoryPressure


def oom_bump(request: int, peak: int, ratio: float, min_bump: int) -> int:
    """VPA's OOM rule: the memory a pod needs after an OOM kill."""
    used = max(request, peak)
    return max(used + min_bump, math.ceil(used * ratio))


def usage_ratio(p: Pressure) -> float:
    """Working set (or usage when unknown) over the limit: page cache alone is not pressure."""
    used = p.working_set_bytes or p.usage_bytes
    return used / p.limit_bytes if p.limit_bytes else 0.0


def _sustained(p: Pressure, mp: MemoryPressure) -> bool:
    """Enough windows in a row, and still above a threshold now. PSI is judged as the detector does,
    max(avg10, stall rate): avg10 lags a sudden stall by seconds. Page cache alone is not pressure."""
    if p.consecutive_windows < mp.consecutive_windows:
        return False
    return max(p.psi_some_avg10, p.stall_percent) >= mp.psi_some_avg10 or usage_ratio(p) >= mp.usage_ratio


def _fresh_oom(pod: PodState, p: Pressure) -> bool:
    if p.oom_kills <= 0:
        return False
    if p.last_oom_at is None or pod.last_resized_at is None:
        return True
    return p.last_oom_at > pod.last_resized_at


def _eligible(ws: Workspace, r: int, pod: PodState, oom: bool) -> bool:
    """Pods rva may grow for pressure now. An OOM kill is acted on at once: the restarted container
    is in startup grace and may be in cooldown, and waiting would let it be killed again."""
    g = ws.row_group[r]
    if g < 0 or r in ws.reverted or r in ws.frozen or ws.row_node[r] < 0:
        return False
    gp = ws.group_policy[g]
    return (
        gp.memory_pressure.enabled
        and gp.can_resize(MEMORY)
        and MEMORY in pod.requests
        and pod.resizable
        and pod.qos is not QoSClass.BEST_EFFORT
        and not pod.deleting
        and pod.phase == "Running"
        and pod.in_flight is None
        and pod.resize_state is ResizeState.NONE
        and ws.row_kind[r] != RowKind.GONE
        and (oom or not in_cooldown(pod, gp, ws.now))
        and (oom or not in_startup_grace(pod, gp, ws.now))
    )


def grow_for_pressure(ws: Workspace) -> None:
    pressure = ws.snapshot.pressure
    if not pressure:
        return
    km = ws.kidx[MEMORY]
    for r in range(ws.n_pods):
        pod = ws.snapshot.pods[r]
        p = pressure.get(pod.name)
        if p is None or not _eligible(ws, r, pod, oom=_fresh_oom(pod, p)):
            continue
        mp = ws.group_policy[ws.row_group[r]].memory_pressure
        current = ws.reqs[r][RM] + ws.growns[r][RM]  # includes growth this plan already decided
        if _fresh_oom(pod, p):
            want = oom_bump(ws.reqs[r][RM], p.peak_usage_bytes, mp.oom_bump_ratio, mp.oom_min_bump)
            reason = Reason.OOM_KILLED
            why = (
                f"OOM-killed ({p.oom_kills}×): memory to max(used + {fmt_bytes(mp.oom_min_bump)}, "
                f"used × {mp.oom_bump_ratio:g}) with used = max(request, peak {fmt_bytes(p.peak_usage_bytes)})"
            )
        elif _sustained(p, mp):
            want = max(math.ceil(current * mp.grow_factor), current + mp.grow_min)
            reason = Reason.MEMORY_PRESSURE
            ratio = usage_ratio(p)
            why = (
                f"memory pressure for {p.consecutive_windows} windows (PSI some avg10 {p.psi_some_avg10:.1f}%, "
                f"usage/limit {ratio:.2f}): memory × {mp.grow_factor:g} (at least + {fmt_bytes(mp.grow_min)})"
            )
        else:
            continue
        node = ws.row_node[r]
        ceiling = min(ws.maxes[r][RM], current + max(0, ws.nfree[node][km]))
        target = min(want, ceiling)
        if target <= current:
            if want > current:
                ws.notes.append(f"{pod.name}: {reason.value} but no room to grow memory (policy max or node full)")
            continue
        if r not in ws.growth:
            if not ws.budget.take(node):
                ws.notes.append(f"{pod.name}: {reason.value} deferred (resize concurrency cap reached)")
                continue
            ws.start_growth(r)
        if target < want:
            why += f"; capped at {fmt_bytes(target)} (policy max or node room)"
        ws.growth[r].reasons.append((reason, why))
        # the pod's new base size: growth for demand (and its sizing) comes on top of it
        # memory for the work already running: Ray does not get it to schedule more tasks into
        grown = target - current
        ws.reqs[r][RM] += grown
        ws.pressure_grown[r] = ws.pressure_grown.get(r, 0) + grown
        ws.nfree[node][km] -= grown
        ws.capacity_added(r)
