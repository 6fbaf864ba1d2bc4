"""The planner's fast paths give exactly what the straightforward computation gives.

Shelves, reaches, failure records and the settle round's derived workspace only ever skip work;
each test runs the planner's code and a plain reference side by side and compares every decision.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from autoscaler.actions import GrowPod
from autoscaler.bench.planner_bench import bench_policy
from autoscaler.bench.scenarios import generate
from autoscaler.model import Snapshot
from autoscaler.plan import _items, _round
from autoscaler.plan.fitindex import Reach
from autoscaler.plan.gangs import place_gangs
from autoscaler.plan.guards import Budget
from autoscaler.plan.horizontal import ensure_min_replicas
from autoscaler.plan.inflight import handle_in_flight
from autoscaler.plan.packing import Pending, pack
from autoscaler.plan.pressure import grow_for_pressure
from autoscaler.plan.projection import project
from autoscaler.plan.rows import prepare
from autoscaler.plan.vertical import grow_for
from autoscaler.plan.workspace import PLACEABLE, Workspace
from autoscaler.policy import Policy

# ------------------------------------------------------------------------------------------------
# references: every row, in placement order, no index
# ------------------------------------------------------------------------------------------------


def _rows(ws: Workspace, kind: int, g: int) -> list[int]:
    return [r for r in range(ws.n) if ws.row_kind[r] == kind and ws.row_group[r] == g]


def ref_pack(ws: Workspace, item: Pending, count: int) -> tuple[list[int], list[int]]:
    rows, takes, left = [], [], count
    for kind in PLACEABLE:
        for g in item.chain.groups:
            for r in _rows(ws, kind, g):
                a = ws.free[r]
                c = min([left] + [a[k] // v for k, v in item.need])
                if c > 0:
                    for k, v in item.need:
                        a[k] -= c * v
                    rows.append(r)
                    takes.append(c)
                    left -= c
                if left == 0:
                    break
            if left == 0:
                break
        if left == 0:
            break
    for r in rows:
        ws.placed[r] = True
        ws.group_busy.add(ws.row_group[r])
    return rows, takes


def ref_grow(ws: Workspace, item: Pending, count: int) -> tuple[list[int], list[int]]:
    kc, km = ws.kc, ws.km
    rows, takes, left, capped = [], [], count, False
    order = [
        r
        for level in item.chain.levels
        for growing in (True, False)
        for g in level
        for r in range(ws.n_pods)
        if ws.row_group[r] == g and ws.growable[r] and (r in ws.growth) == growing
    ]
    for r in order:
        if left == 0:
            break
        node = ws.row_node[r]
        a, rq, mx, gr = ws.free[r], ws.reqs[r], ws.maxes[r], ws.growns[r]
        room_c = max(0, min(mx[0] - rq[0] - gr[0], ws.nfree[node][kc]))
        owed = max(0, ws.debts[r] - gr[1])  # memory growth pays the reserve debt before Ray gains any
        room_m = max(0, min(mx[1] - rq[1] - gr[1], ws.nfree[node][km]) - owed)
        extra = {kc: room_c, km: room_m}
        c = min([left] + [(a[k] + extra.get(k, 0)) // v for k, v in item.need])
        if c <= 0:
            continue
        need_c, need_m = max(0, c * item.shape[kc] - a[kc]), max(0, c * item.shape[km] - a[km])
        if (need_c or need_m) and r not in ws.growth:
            if not ws.budget.take(node):
                capped = True
                continue
            ws.start_growth(r)
        for k, v in item.need:
            a[k] -= c * v
        a[kc] += need_c
        a[km] += need_m
        gr[0] += need_c
        gr[1] += need_m + owed if need_m else 0
        ws.nfree[node][kc] -= need_c
        ws.nfree[node][km] -= need_m + owed if need_m else 0
        if r in ws.growth:
            served = ws.growth[r].served
            served[item.key] = served.get(item.key, 0) + c
        ws.placed[r] = True
        ws.group_busy.add(ws.row_group[r])
        rows.append(r)
        takes.append(c)
        left -= c
    if capped:
        ws.notes.append(f"{item.text}: some pods could not grow now (resize concurrency cap reached)")
    return rows, takes


def _state(ws: Workspace) -> tuple[object, ...]:
    return (ws.free, ws.growns, ws.nfree, ws.placed, sorted(ws.group_busy), sorted(ws.growth),
            ws.budget.total, ws.budget.on_node, ws.notes)


def _pair(snap: Snapshot, policy: Policy) -> tuple[Workspace, Workspace, list[Pending], list[Pending]]:
    base = prepare(snap, policy, snap.taken_at)
    out = []
    for _ in range(2):
        ws = base.workspace()
        handle_in_flight(ws)
        ensure_min_replicas(ws)
        grow_for_pressure(ws)
        place_gangs(ws)
        out.append(ws)
    return out[0], out[1], _items(base, out[0]), _items(base, out[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("cap", [None, 6])
def test_packing_and_growth_match_a_plain_scan_of_every_row(seed: int, cap: int | None) -> None:
    sc = generate(60, 120, seed=seed)
    policy = bench_policy(sc)
    if cap is not None:  # a tight resize cap: the "no slot" paths and notes
        policy = policy.model_copy(update={"concurrency": policy.concurrency.model_copy(update={"per_cluster": cap})})
    assert_fast_paths_match_a_plain_scan(sc.snapshot, policy)


def assert_fast_paths_match_a_plain_scan(snap: Snapshot, policy: Policy) -> None:
    """Shelf-based packing and growth place every shape as the plain scans do, and leave the same state."""
    fast, plain, items, same = _pair(snap, policy)
    assert _state(fast) == _state(plain)
    for a, b in zip(items, same, strict=True):
        placed = pack(fast, a, a.remaining)
        assert placed == ref_pack(plain, b, b.remaining)
        a.remaining = b.remaining = a.remaining - sum(placed[1])
        assert grow_for(fast, a, a.remaining) == ref_grow(plain, b, b.remaining)
        assert _state(fast) == _state(plain)


def test_reach_lists_every_row_that_can_still_hold_a_shape() -> None:
    rng = random.Random(7)
    values = [[rng.choice((0, 250, 500, 1000, 4000)), rng.choice((0, 1, 2, 8)), rng.choice((0, 0, 1000))]
              for _ in range(80)]
    rows = list(range(80))
    reach = Reach(rows, [list(v) for v in values], 0)
    for _ in range(400):
        need = [(k, v) for k, v in enumerate((rng.choice((250, 500, 1000, 2000)), rng.choice((0, 1, 4)),
                                              rng.choice((0, 0, 1000)))) if v]
        fits = [r for r in rows if all(values[r][k] >= v for k, v in need)]
        i, more = reach.find(need, dict(need).get(0, 0))
        assert not more
        if fits:  # exact for CPU plus one other key, an upper bound beyond: never misses a row
            assert set(fits) <= set(reach.candidates(i, more))
        r = rng.randrange(80)  # capacity only shrinks while a reach is in use
        values[r] = [max(0, x - rng.choice((0, 250, 1))) for x in values[r]]


def test_a_rolled_back_placement_group_leaves_no_trace() -> None:
    sc = generate(60, 120, seed=5)
    policy = bench_policy(sc)
    base = prepare(sc.snapshot, policy, sc.snapshot.taken_at)
    ws = base.workspace()
    items = _items(base, ws)
    before = ([list(a) for a in ws.free], [list(a) for a in ws.growns], [list(a) for a in ws.nfree], ws.n,
              ws.budget.copy(), {g: dataclasses.replace(v, served=dict(v.served)) for g, v in ws.new_pods.items()},
              set(ws.growth), list(ws.placed))
    saved = ws.checkpoint()
    for item in items[:40]:  # free capacity, growth, new pods: all journaled
        pack(ws, item, item.remaining)
        grow_for(ws, item, item.remaining)
        if item.chain.groups:
            ws.add_rows(item.chain.groups[0], 1)
    ws.restore(saved)
    after = (ws.free, ws.growns, ws.nfree, ws.n, ws.budget, ws.new_pods, set(ws.growth), ws.placed)
    assert after == before
    # and the shelves are still right: the same answers as a workspace that never saw the gang
    fresh = base.workspace()
    for a, b in zip(items[40:], _items(base, fresh)[40:], strict=True):
        assert pack(ws, a, a.remaining) == pack(fresh, b, b.remaining)


def test_budget_give_back_undoes_take() -> None:
    b = Budget(per_node=1, per_cluster=2)
    assert b.take(0) and not b.take(0) and b.take(1) and not b.take(2)
    b.give_back(1)
    assert b.can_take(2) and not b.can_take(0)


# ------------------------------------------------------------------------------------------------
# the settle round's workspace is the one the projected snapshot gives
# ------------------------------------------------------------------------------------------------


def assert_derived_is_projected(snap: Snapshot, policy: Policy, now: float) -> None:
    base = prepare(snap, policy, now)
    first = _round(base, base.workspace())
    derived = base.derived(first)
    built = prepare(project(snap, first, now), policy, now).workspace()
    for name in ("n", "n_pods", "free", "row_group", "row_node", "row_kind", "growable", "reqs", "maxes", "nfree",
                 "stuck_groups"):
        assert getattr(derived, name) == getattr(built, name), name
    assert (derived.budget.total, derived.budget.on_node) == (built.budget.total, built.budget.on_node)
    assert [g.replicas for g in derived.snapshot.groups] == [g.replicas for g in built.snapshot.groups]
    # rows the first round acts on are left alone: the projection marks them resized (in flight)
    # or deleting, which every pass skips
    for r in derived.frozen:
        pod = built.snapshot.pods[r]
        assert pod.in_flight is not None or pod.deleting
    # the rest of the round agrees too
    assert _round(base, base.derived(first)) == _round(prepare(built.snapshot, policy, now),
                                                       prepare(built.snapshot, policy, now).workspace())
    # the first settle round may grow further the pods the first round grows (and the policy lets grow)
    index = base.pod_index()
    grown = [index[a.pod] for a in first.actions if isinstance(a, GrowPod) and a.pod in index]
    assert derived.regrowable == [r for r in grown if base.growable[r]]


@pytest.mark.parametrize(("pods", "shapes", "seed"), [(60, 120, 0), (100, 200, 1), (300, 600, 2)])
def test_derived_workspace_is_the_projected_snapshots(pods: int, shapes: int, seed: int) -> None:
    sc = generate(pods, shapes, seed=seed)
    assert_derived_is_projected(sc.snapshot, bench_policy(sc), sc.snapshot.taken_at)
    assert_derived_is_projected(sc.snapshot, Policy.default(), sc.snapshot.taken_at)


def test_settle_rounds_plan_on_the_projection() -> None:
    """A scale-out or growth makes the planner look once more; removals and shrinks stay as planned."""
    sc = generate(60, 120, seed=3)
    snap = dataclasses.replace(sc.snapshot, demands=sc.snapshot.demands[:30])
    assert_derived_is_projected(snap, bench_policy(sc), snap.taken_at)
