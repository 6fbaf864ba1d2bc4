"""When a planner call provably decides nothing: the replay's shortcut for quiet loops.

The rva driver plans every virtual second, as the daemon does in a busy cluster (each GCS poll shows some
raylet's available resources changed, which triggers a loop). In a steady, fully served cluster almost all
of those plans are empty, and at 1,000 pods each costs ~25 ms: most of a replayed hour. :class:`PlanGate`
lets the driver skip a call only when the planner would return no action, by this argument:

1. The last real call (at ``t0``) returned no action (nor a dry-run-suppressed one), with the same policy.
2. Every input the planner reads is the same as at that call — pods, nodes, worker groups (replicas,
   ``workersToDelete``, stockout marks), demand, placement groups, ``request_resources``, the pressure
   as the planner can act on it (:func:`planner_view`: window count and OOM record), the API-server
   version — except, of each pod's raylet, its *available* resources, its idle time and its RUNNING/IDLE
   status (DRAINING and DEAD count as changes), and of each pod's pressure, the sampled values (usage,
   limit, PSI, peak of a pod never OOM-killed, sample time).
3. Those can change the plan only through rules that the snapshot rules out (:func:`inert`):
   packing pending demand, gangs or ``request_resources`` (none pending), in-flight resizes (none),
   idle removal (every group at its minimum replicas, multi-host, or horizontally disabled), shrinking
   (no pod above the floor a shrink never goes below: max(template, ``minPod``); the peak usage only
   raises that floor) and growth for sustained pressure (no detector window counting for any pod, and
   every group needs at least one: a pod under pressure, or on its way there, is always planned).
4. The plan depends on ``now`` only through timers, and none expires between ``t0`` and now
   (:func:`deadlines`: cooldowns, shrink windows after a resize, startup grace, stockout times, stockout
   backoffs, in-flight timeouts).

Checking 2. compares the new snapshot with the planned one (:func:`same_inputs`). Cheaper still, a caller
can pass ``sources``: change counters of everything a snapshot is built from (the driver's: the
RayCluster object, a count of pod and node writes, Ray's node add/remove/resize count, whether Ray has
pending demand, the version of the simulated pressure agents, which changes with any pod's
:func:`planner_view`). While they equal those of the planned snapshot, a snapshot would be built from the
same inputs, so :meth:`PlanGate.quiet` answers without building one — and the loop's other steps are no-ops too: no
resize is in flight to complete, and stockout marking only changes at a stockout time or backoff end.

This mirrors what ``autoscaler.plan`` reads; a planner rule that reads something new must be added here.
The driver's ``verify_skips`` mode plans on every skipped loop too and fails if that plan has an action
(``tests/unit/replay`` runs the built-in scenarios that way), and a replay with the gate off gives the
same actions at the same times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from operator import attrgetter

from autoscaler.actions import Plan
from autoscaler.model import CPU, MEMORY, PodState, Pressure, RayNodeState, Snapshot
from autoscaler.policy import GroupPolicy, Policy

#: PodState without its raylet, and a raylet without what changes with every task (available, idle, status).
_POD_FIELDS = attrgetter(*(f.name for f in fields(PodState) if f.name != "ray"))
_GONE = ("DRAINING", "DEAD")
#: Float slack on timer comparisons: a timer this close counts as expired (plan rather than skip).
EPSILON = 1e-6


def _ray_key(r: RayNodeState) -> tuple[object, ...]:
    return (r.node_id, r.instance_id, r.node_type, r.total, r.labels, r.started_at, r.status in _GONE)


def _same_pod(a: PodState, b: PodState) -> bool:
    if a is b:
        return True
    if (a.ray is None) != (b.ray is None):
        return False
    if a.ray is not None and b.ray is not None and a.ray is not b.ray and _ray_key(a.ray) != _ray_key(b.ray):
        return False
    return bool(_POD_FIELDS(a) == _POD_FIELDS(b))


def planner_view(p: Pressure) -> tuple[object, ...]:
    """What of a pod's ``Pressure`` the planner can act on while no detector window counts: the window count
    and the OOM record (the OOM bump reads the peak usage; a shrink only takes it as a floor, see 3.)."""
    return (p.consecutive_windows, p.oom_kills, p.last_oom_at, p.peak_usage_bytes if p.oom_kills else None)


def _same_pressure(a: Snapshot, b: Snapshot) -> bool:
    pa, pb = a.pressure, b.pressure
    if pa is pb or pa == pb:
        return True
    return pa.keys() == pb.keys() and all(planner_view(p) == planner_view(pb[k]) for k, p in pa.items())


def same_inputs(a: Snapshot, b: Snapshot) -> bool:
    """Equal but for ``taken_at``, each raylet's available resources, idle time and RUNNING/IDLE status, and
    each pod's pressure values outside its :func:`planner_view`."""
    return (
        a.namespace == b.namespace and a.cluster == b.cluster and a.server_minor == b.server_minor
        and a.demand_truncated == b.demand_truncated and a.nodes == b.nodes and a.groups == b.groups
        and a.demands == b.demands and a.gangs == b.gangs and a.constraints == b.constraints
        and len(a.pods) == len(b.pods) and _same_pressure(a, b)
        and all(_same_pod(p, q) for p, q in zip(a.pods, b.pods, strict=True))
    )


def _policies(snap: Snapshot, policy: Policy) -> dict[str, GroupPolicy]:
    return {g.name: policy.resolve(g.name) for g in snap.groups}


def inert(snap: Snapshot, policy: Policy) -> bool:
    """True when no planner rule reads a raylet's available resources, idle time or RUNNING/IDLE status, or
    a pod's sampled pressure values (outside :func:`planner_view`)."""
    if snap.demands or snap.gangs or snap.constraints or snap.demand_truncated:
        return False  # packing and scale-out read free capacity
    gps = _policies(snap, policy)
    if snap.pressure:
        group_of = {p.name: p.group for p in snap.pods}
        default = policy.resolve("")
        for name, pr in snap.pressure.items():
            if pr.consecutive_windows > 0:
                return False  # under pressure or on its way: growth for sustained pressure reads the values
            if gps.get(group_of.get(name, ""), default).memory_pressure.consecutive_windows < 1:
                return False  # no window needed: any sample at or above a threshold is sustained pressure
    for g in snap.groups:
        h = gps[g.name].horizontal
        low = h.min_replicas if h.min_replicas is not None else g.min_replicas
        if h.enabled and g.num_of_hosts <= 1 and g.replicas - 1 >= low:
            return False  # an idle pod could be removed
    templates = {g.name: g.template_requests for g in snap.groups}
    for p in snap.pods:
        if p.in_flight is not None:
            return False  # in-flight growth counts as capacity; timeouts and completion move on
        gp = gps.get(p.group)
        if gp is None or p.ray is None or not (gp.shrink.enabled and gp.vertical.enabled):
            continue  # the planner never shrinks these
        floor = (max(templates[p.group].get(CPU), gp.vertical.min_pod.cpu or 0),
                 max(templates[p.group].get(MEMORY), gp.vertical.min_pod.memory or 0))
        if p.requests.get(CPU) > floor[0] or p.requests.get(MEMORY) > floor[1]:
            return False  # could shrink once idle (the floor also reads Ray's in-use resources)
    return True


def deadlines(snap: Snapshot, policy: Policy) -> Iterable[float]:
    """Every instant at which a time-based planner rule may change its answer for this snapshot."""
    gps = _policies(snap, policy)
    default = policy.resolve("")
    for g in snap.groups:
        if g.stocked_out_until is not None:
            yield g.stocked_out_until
    for p in snap.pods:
        gp = gps.get(p.group, default)
        if p.last_resized_at is not None:
            yield p.last_resized_at + gp.vertical.cooldown
            yield p.last_resized_at + gp.shrink.idle_window
        started = p.started_at if p.started_at is not None else p.created_at
        yield started + gp.memory_pressure.startup_grace
        if p.unschedulable_since is not None:
            yield p.unschedulable_since + gp.horizontal.stockout_time
        if p.in_flight is not None:
            since = p.resize_since if p.resize_since is not None else p.in_flight.started_at
            yield since + gp.vertical.resize_timeouts.deferred
            yield since + gp.vertical.resize_timeouts.in_progress


@dataclass
class _Planned:
    snapshot: Snapshot
    policy: Policy
    at: float
    skippable: bool  # no action, and inert
    until: float  # the first timer at or after ``at``
    sources: tuple[object, ...] | None  # change counters of what ``snapshot`` was built from


def _same_sources(a: tuple[object, ...] | None, b: tuple[object, ...] | None) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(
        x is y or (type(x) in (int, bool, str) and x == y) for x, y in zip(a, b, strict=True))


class PlanGate:
    """Remembers the last real plan and says when planning again provably decides nothing: from a new
    snapshot (:meth:`may_skip`), or from change counters alone, before building one (:meth:`quiet`)."""

    def __init__(self) -> None:
        self._last: _Planned | None = None

    def planned(
        self, snap: Snapshot, policy: Policy, now: float, plan: Plan, sources: tuple[object, ...] | None = None
    ) -> None:
        quiet = not plan.actions and not plan.suppressed and inert(snap, policy)
        until = min((d for d in deadlines(snap, policy) if d >= now - EPSILON), default=math.inf) if quiet else now
        self._last = _Planned(snap, policy, now, quiet, until, sources)

    def _in_window(self, policy: Policy, now: float) -> _Planned | None:
        last = self._last
        if last is not None and last.skippable and policy is last.policy and last.at <= now < last.until - EPSILON:
            return last
        return None

    def may_skip(
        self, snap: Snapshot, policy: Policy, now: float, sources: tuple[object, ...] | None = None
    ) -> bool:
        """``snap`` has the planned snapshot's inputs and no timer expired. ``sources``: the counters ``snap``
        was built from; on a yes they stand for the planned snapshot's from now on (same inputs)."""
        last = self._in_window(policy, now)
        if last is None or not same_inputs(last.snapshot, snap):
            return False
        if sources is not None:
            last.sources = sources
        return True

    def quiet(self, sources: tuple[object, ...], policy: Policy, now: float) -> bool:
        """Nothing a snapshot is built from changed since the planned one (or one with the same inputs) was
        built, and no timer expired: planning again decides nothing, without building a snapshot."""
        last = self._in_window(policy, now)
        return last is not None and _same_sources(last.sources, sources)

    @property
    def planned_snapshot(self) -> Snapshot | None:
        return self._last.snapshot if self._last is not None else None
