"""Placement groups: all bundles or none.

PACK and SPREAD are preferences in Ray, so bundles are placed one by one wherever they fit;
STRICT_PACK needs every bundle on one Ray node (one pod), so the bundles are summed into one shape;
STRICT_SPREAD needs a distinct Ray node per bundle. Each bundle tries free capacity, then growth in
place, then new pods; if one bundle cannot be placed, everything the gang changed is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, reduce

from autoscaler.actions import Reason
from autoscaler.model import Demand, Gang, GangStrategy, LabelSelector, Resources
from autoscaler.plan.horizontal import new_pods_for, unserved_reason
from autoscaler.plan.packing import Pending, pack, pending_of
from autoscaler.plan.text import demand_label
from autoscaler.plan.vertical import grow_for
from autoscaler.plan.workspace import Unplaced, Workspace


def _bundles(gang: Gang) -> list[tuple[Resources, tuple[LabelSelector, ...]]]:
    if gang.strategy is GangStrategy.STRICT_PACK and gang.bundles:
        total = reduce(lambda a, b: a + b, (b.shape for b in gang.bundles), Resources())
        return [(total, gang.bundles[0].selectors)]
    return [(b.shape, b.selectors) for b in gang.bundles]


def _place_one(ws: Workspace, item: Pending, exclude: set[int] | None) -> tuple[int | None, set[Reason]]:
    rows, _ = pack(ws, item, 1, exclude=exclude)
    if rows:
        return rows[0], set()
    grown, _ = grow_for(ws, item, 1, exclude=exclude)
    if grown:
        return grown[0], set()
    new, _, blocked = new_pods_for(ws, item, 1, exclude=exclude)
    return (new[0] if new else None), blocked


def place_gangs(ws: Workspace) -> None:
    for gang in ws.snapshot.gangs:
        saved = ws.checkpoint()
        strict_spread = gang.strategy is GangStrategy.STRICT_SPREAD
        exclude: set[int] | None = set() if strict_spread else None
        failed: tuple[Pending, set[Reason]] | None = None
        for shape, selectors in _bundles(gang):
            item = pending_of(ws, shape, Demand(shape, 1, selectors), 1)
            item.prefix = f"placement group {gang.id} bundle "
            row, blocked = _place_one(ws, item, exclude)
            if row is None:
                failed = (item, blocked)
                break
            if exclude is not None:
                exclude.add(row)
        if failed is None:
            ws.commit()
        else:
            ws.restore(saved)
            reason, why = unserved_reason(ws, failed[0], failed[1])
            ws.unserved.append(Unplaced(gang, 1, reason, partial(_gang_why, gang, why)))


def _gang_why(gang: Gang, why: Callable[[], str]) -> str:
    return f"{demand_label(gang)} not placed (all or nothing): {why()}"
