"""The pure planner: ``plan(snapshot, policy, now) -> Plan``.

No I/O, no clock, no logging: the same inputs always give the same plan. Passes, in order:
in-flight resizes → minimum replicas → placement groups → for each demand shape, largest first:
fit on free (or arriving) capacity, then grow in place → sizing mode → scale out (selector order,
then priority) → ``request_resources`` → memory pressure / OOM → idle removal → shrink → guards
and assembly. Taking each shape through "free, then growth" before the next smaller one keeps the
plan stable: once it is carried out, planning again for the same demand finds nothing to do.
"""

from __future__ import annotations

import dataclasses
import gc

from autoscaler.actions import Action, GrowPod, Plan, Reason, ScaleOut
from autoscaler.model import Snapshot
from autoscaler.plan.assemble import assemble
from autoscaler.plan.gangs import place_gangs
from autoscaler.plan.horizontal import ensure_min_replicas, hold_constraints, scale_out
from autoscaler.plan.inflight import handle_in_flight
from autoscaler.plan.packing import fit_free, ordered, pending_of
from autoscaler.plan.pressure import grow_for_pressure, oom_bump
from autoscaler.plan.projection import project
from autoscaler.plan.shrink import remove_idle, shrink_idle
from autoscaler.plan.vertical import grow_in_place, size_growth
from autoscaler.plan.workspace import build
from autoscaler.policy import Policy

__all__ = ["oom_bump", "plan"]


#: Extra looks at the projected snapshot after a scale-out (see :mod:`autoscaler.plan.projection`).
SETTLE_ROUNDS = 1


def _plan_once(snapshot: Snapshot, policy: Policy, now: float) -> Plan:
    ws = build(snapshot, policy, now)
    handle_in_flight(ws)
    ensure_min_replicas(ws)
    place_gangs(ws)
    items = ordered(ws, [pending_of(ws, d.shape, d, d.count) for d in snapshot.demands if d.count > 0])
    for item in items:  # largest first: free capacity, then growth, before the next (smaller) shape
        fit_free(ws, [item])
        grow_in_place(ws, [item])
    size_growth(ws)
    scale_out(ws, items)
    hold_constraints(ws)
    grow_for_pressure(ws)
    remove_idle(ws)
    shrink_idle(ws)
    return assemble(ws)


def _settle(first: Plan, later: Plan) -> Plan:
    """``first`` plus what planning on its projection still adds: more replicas for groups (or new
    groups) and growth of pods ``first`` does not touch. Unserved demand is the later view."""
    scale = {a.group: a for a in first.actions if isinstance(a, ScaleOut)}
    touched = {a.pod for a in first.actions if not isinstance(a, ScaleOut)}
    new_groups: list[str] = []
    grows: list[Action] = []
    for a in later.actions:
        if isinstance(a, ScaleOut):
            before = scale.get(a.group)
            if before is None:
                new_groups.append(a.group)
                scale[a.group] = a
            else:
                why = f"{before.why}; +{a.count} pods once the demand is placed again with the new pods counted"
                scale[a.group] = ScaleOut(a.group, before.count + a.count, a.replicas, before.reason, why)
        elif isinstance(a, GrowPod) and a.pod not in touched:
            grows.append(a)
    actions = [scale[a.group] if isinstance(a, ScaleOut) else a for a in first.actions]
    actions += grows + [scale[g] for g in new_groups]
    notes = tuple(dict.fromkeys((*first.notes, *later.notes)))
    return Plan(actions=tuple(actions), unserved=later.unserved, notes=notes, suppressed=first.suppressed)


def plan(snapshot: Snapshot, policy: Policy | None, now: float) -> Plan:
    """Decide what to grow, shrink, scale out and remove for one RayCluster at time ``now``."""
    paused = gc.isenabled()
    if paused:  # a plan allocates many short-lived objects: collecting mid-plan only costs time
        gc.disable()
    try:
        return _plan(snapshot, policy, now)
    finally:
        if paused:
            gc.enable()


def _plan(snapshot: Snapshot, policy: Policy | None, now: float) -> Plan:
    policy = policy if policy is not None else Policy.default()
    if policy.dry_run:  # plan as if acting, then move every action aside
        live = _plan(snapshot, policy.model_copy(update={"dry_run": False}), now)
        if not live.actions:
            return live
        note = f"{Reason.DRY_RUN.value}: {len(live.actions)} actions decided, none carried out (policy dryRun)"
        return Plan(actions=(), unserved=live.unserved, notes=(*live.notes, note), suppressed=live.actions)
    result = _plan_once(snapshot, policy, now)
    current = snapshot
    applied = result
    for _ in range(SETTLE_ROUNDS):
        if not any(isinstance(a, ScaleOut) for a in applied.actions):
            break
        current = project(current, applied, now)
        again = _plan_once(current, policy, now)
        applied = Plan(actions=tuple(a for a in again.actions if isinstance(a, ScaleOut | GrowPod)))
        if not applied.actions:
            result = dataclasses.replace(result, unserved=again.unserved)
            break
        result = _settle(result, again)
    return result
