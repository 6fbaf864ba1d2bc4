"""A Plan as plain JSON-able data (``/debug/plan``, ``rva explain --json``)."""

from __future__ import annotations

from typing import Any

from autoscaler.actions import Action, Plan, Unserved
from autoscaler.model import Demand, Gang, Resources


def _res(r: Resources) -> dict[str, int]:
    return dict(r.items())


def action_to_dict(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": type(a).__name__}
    for name in a.__dataclass_fields__:
        v = getattr(a, name)
        if isinstance(v, Resources):
            v = _res(v)
        elif hasattr(v, "value"):
            v = v.value
        out[name] = v
    return out


def _demand(d: Demand | Gang) -> dict[str, Any]:
    if isinstance(d, Gang):
        return {"gang": d.id, "strategy": d.strategy.value, "bundles": [_res(b.shape) for b in d.bundles]}
    return {"shape": _res(d.shape), "count": d.count, "selectors": [str(s) for s in d.selectors]}


def unserved_to_dict(u: Unserved) -> dict[str, Any]:
    return {"demand": _demand(u.demand), "count": u.count, "reason": u.reason.value, "why": u.why}


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "actions": [action_to_dict(a) for a in plan.actions],
        "unserved": [unserved_to_dict(u) for u in plan.unserved],
        "notes": list(plan.notes),
    }
