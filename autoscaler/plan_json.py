"""A Plan as plain JSON-able data (``/debug/plan``, ``rva explain --json``)."""

from __future__ import annotations

from typing import Any

from autoscaler.actions import Action, GrowPod, Plan, RemovePod, RevertResize, ScaleOut, ShrinkPod, Unserved
from autoscaler.model import Gang
from autoscaler.plan.text import demand_label
from autoscaler.snapshot_io import resources_to_json


def action_to_dict(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": type(action).__name__, "reason": action.reason.value, "why": action.why}
    if isinstance(action, GrowPod | ShrinkPod | RevertResize):
        out.update(pod=action.pod, requests=resources_to_json(action.requests), limits=resources_to_json(action.limits))
        if isinstance(action, GrowPod | ShrinkPod) and action.ray_memory is not None:
            out["rayMemory"] = action.ray_memory  # bytes the raylet's memory changes by
    elif isinstance(action, ScaleOut):
        out.update(group=action.group, count=action.count, replicas=action.replicas)
    elif isinstance(action, RemovePod):
        out.update(pod=action.pod, group=action.group, replicas=action.replicas, drain=action.drain)
    return out


def unserved_to_dict(u: Unserved) -> dict[str, Any]:
    kind = "gang" if isinstance(u.demand, Gang) else "demand"
    return {"kind": kind, "what": demand_label(u.demand), "count": u.count, "reason": u.reason.value, "why": u.why}


def plan_to_dict(p: Plan) -> dict[str, Any]:
    return {
        "actions": [action_to_dict(a) for a in p.actions],
        "suppressed": [action_to_dict(a) for a in p.suppressed],
        "unserved": [unserved_to_dict(u) for u in p.unserved],
        "notes": list(p.notes),
    }
