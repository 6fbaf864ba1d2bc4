"""Stockout marking, shared by the daemon and the simulator: pure, no I/O, the clock is an argument.

A worker group whose new pods stay Unschedulable for the policy's ``stockoutTime`` is skipped for
``stockoutBackoff`` (the planner then falls back to the next label-matching group).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from autoscaler.model import Snapshot
from autoscaler.policy import Policy


def mark_stockouts(
    snap: Snapshot, policy: Policy, now: float, stocked_out_until: Mapping[str, float]
) -> tuple[Snapshot, dict[str, float], dict[str, int]]:
    """(snapshot with ``GroupState.stocked_out_until`` set, the updated group → until map, newly stocked-out
    groups → how many of their pods are stuck). The snapshot is returned unchanged when nothing new is marked."""
    until_map = dict(stocked_out_until)
    newly: dict[str, int] = {}
    for g in snap.groups:
        gp = policy.resolve(g.name).horizontal
        stuck = [p for p in snap.pods if p.group == g.name and p.unschedulable_since is not None
                 and now - p.unschedulable_since >= gp.stockout_time and not p.deleting]
        until = until_map.get(g.name)
        if stuck and (until is None or until <= now):
            until_map[g.name] = now + gp.stockout_backoff
            newly[g.name] = len(stuck)
    if not newly:
        return snap, until_map, newly
    groups = tuple(replace(g, stocked_out_until=until_map.get(g.name)) for g in snap.groups)
    return replace(snap, groups=groups), until_map, newly
