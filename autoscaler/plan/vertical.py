"""Grow label-matching pods in place for demand that free capacity could not hold.

A pod can grow up to ``min(policy max, its request + its node's room)``; the node's room shrinks
as this plan grows pods on it, so resizes planned together never overcommit a node. Growing a pod
by X cpu/memory grows its raylet by the same X. Only cpu and memory grow; a shape's other keys
(GPUs, custom resources) must already be free on the pod.
"""

from __future__ import annotations

import math
from bisect import insort

from autoscaler.model import CPU, MEMORY
from autoscaler.plan.fitindex import GrowShelf, Reach, holds
from autoscaler.plan.packing import Pending
from autoscaler.plan.workspace import RC, RM, RowKind, Workspace


def grow_for(
    ws: Workspace, item: Pending, count: int, exclude: set[int] | None = None
) -> tuple[list[int], list[int]]:
    """Place up to ``count`` bundles by growing pods. Returns (rows, bundles per row).

    Per selector (best first), the pods this plan already grows are tried first (no new resize
    slot), then the others; within each, groups in scale-out order, rows in order. Each row takes
    as many bundles as it can hold once grown, growing by what its free capacity lacks (within
    policy max and its node's room); a pod not growing yet needs a resize slot. A group whose
    growth shelf cannot hold one bundle is skipped without looking at its rows."""
    need = item.need
    if count <= 0 or not need:
        return [], []
    chain = item.chain
    kc, km = ws.kc, ws.km
    gneed = [(k, v, 0 if k == kc else 1 if k == km else 2) for k, v in need]
    budget = ws.budget
    out_rows: list[int] = []
    out_takes: list[int] = []
    started: list[int] = []
    left = count
    capable = capped = False
    cpu = item.shape[kc]
    for level in ws.chain_grow_shelves(chain):
        for growing in (True, False):
            for _, gs in level:
                if gs.stale:
                    refresh(ws, gs)
                listed, reach = (gs.growing, gs.growing_reach) if growing else (gs.fresh, gs.fresh_reach)
                rows = reach.to_scan(need, cpu, listed) if reach is not None else None
                if rows is None:
                    continue
                if not growing and budget.total >= budget.per_cluster:
                    # no resize can start: only say so when some pod could have taken a bundle
                    if not capped and _any_capable(ws, rows, gneed, exclude):
                        capable = capped = True
                    continue
                before = left
                left, could, blocked = _grow_scan(ws, item, rows, gneed, left, out_rows, out_takes, exclude,
                                                  started, growing)
                capable |= could
                capped |= blocked
                if left < before:
                    gs.dirty[not growing] = True
                    if left == 0:
                        break
                elif gs.dirty[not growing]:  # every row seen, none could (see packing.pack)
                    gs.wasted[not growing] += len(rows)
                    if gs.wasted[not growing] >= 2 * len(listed):
                        _tighten(ws, gs, growing)
            if left == 0:
                break
        if left == 0:
            break
    for r in started:  # now growing: tried first from now on
        own = ws.grow_shelves[ws.row_group[r]]
        assert own is not None
        if r in own.fresh:
            own.fresh.remove(r)
            insort(own.growing, r)
            if own.growing_reach is None:
                own.growing_reach = Reach([], [], kc)
            e = own.eff[r] = _eff(ws, r)
            own.changed.discard(r)
            own.growing_reach.add(r, e)
            own.dirty[0] = True
    if capped:
        ws.notes.append(f"{item.text}: some pods could not grow now (resize concurrency cap reached)")
    return out_rows, out_takes


def _room(ws: Workspace, r: int) -> tuple[int, int]:
    """cpu/memory row ``r``'s raylet may still gain by growing: ``min(policy max − request − grown,
    node room)``, less the memory debt still owed (see model.memory_debt), ≥ 0."""
    nf = ws.nfree[ws.row_node[r]]
    rq, mx, gr = ws.reqs[r], ws.maxes[r], ws.growns[r]
    rc = min(mx[0] - rq[0] - gr[0], nf[ws.kc])
    rm = min(mx[1] - rq[1] - gr[1], nf[ws.km]) - max(0, ws.debts[r] - gr[1])
    return (rc if rc > 0 else 0), (rm if rm > 0 else 0)


def _eff(ws: Workspace, r: int) -> list[int]:
    """Row ``r``'s free capacity once grown as far as it may."""
    out = list(ws.free[r])
    rc, rm = _room(ws, r)
    out[ws.kc] += rc
    out[ws.km] += rm
    return out


def refresh(ws: Workspace, gs: GrowShelf) -> None:
    """Rebuild a growth shelf from its members: rows that may still grow, split by whether this
    plan already grows them, with exact reaches."""
    floor = ws.floors[ws.row_group[gs.members[0]]] if gs.members else []
    growing: list[int] = []
    fresh: list[int] = []
    gvals: list[list[int]] = []
    fvals: list[list[int]] = []
    eff = gs.eff
    eff.clear()
    for r in gs.members:
        if not ws.growable[r]:
            continue
        e = eff[r] = _eff(ws, r)
        if floor and not holds(e, floor):
            continue
        if r in ws.growth:
            growing.append(r)
            gvals.append(e)
        else:
            fresh.append(r)
            fvals.append(e)
    gs.growing, gs.fresh = growing, fresh
    gs.growing_reach = Reach(growing, gvals, ws.kc) if gvals else None
    gs.fresh_reach = Reach(fresh, fvals, ws.kc) if fvals else None
    gs.changed.clear()
    gs.stale = False
    gs.dirty = [False, False]
    gs.wasted = [0, 0]


def _tighten(ws: Workspace, gs: GrowShelf, growing: bool) -> None:
    """After scans of a whole list found nothing: drop rows that can hold nothing any more, and an
    exact reach again (rows whose capacity or node room changed are looked at again)."""
    rows = gs.growing if growing else gs.fresh
    floor = ws.floors[ws.row_group[rows[0]]] if rows else []
    eff, changed = gs.eff, gs.changed
    keep: list[int] = []
    vals: list[list[int]] = []
    for r in rows:
        if r in changed:
            e = eff[r] = _eff(ws, r)
            changed.discard(r)
        else:
            e = eff[r]
        if floor and not holds(e, floor):
            continue
        keep.append(r)
        vals.append(e)
    reach = Reach(keep, vals, ws.kc) if vals else None
    if growing:
        gs.growing, gs.growing_reach = keep, reach
    else:
        gs.fresh, gs.fresh_reach = keep, reach
    gs.dirty[not growing] = False
    gs.wasted[not growing] = 0


def _any_capable(ws: Workspace, rows: list[int], gneed: list[tuple[int, int, int]], exclude: set[int] | None) -> bool:
    for r in rows:
        if exclude is not None and r in exclude:
            continue
        rc, rm = _room(ws, r)
        a = ws.free[r]
        for k, v, col in gneed:
            if a[k] + (rc if col == 0 else rm if col == 1 else 0) < v:
                break
        else:
            return True
    return False


def _grow_scan(
    ws: Workspace, item: Pending, rows: list[int], gneed: list[tuple[int, int, int]], left: int,
    out_rows: list[int], out_takes: list[int], exclude: set[int] | None, started: list[int], growing: bool,
) -> tuple[int, bool, bool]:
    """Grow rows in order for ``left`` bundles; returns (left, some row could hold one, a row that
    could was refused a resize slot)."""
    free, nfree, reqs, maxes, growns, debts = ws.free, ws.nfree, ws.reqs, ws.maxes, ws.growns, ws.debts
    row_node, row_group, placed, busy = ws.row_node, ws.row_group, ws.placed, ws.group_busy
    budget, growth, journal = ws.budget, ws.growth, ws.journal
    live = ws.shelves[RowKind.LIVE]
    grow_shelves = ws.grow_shelves
    kc, km = ws.kc, ws.km
    sc, sm = item.shape[kc], item.shape[km]
    key = item.key
    capable = capped = False
    eff = grow_shelves[row_group[rows[0]]].eff if rows else {}  # type: ignore[union-attr]
    for r in rows:
        if exclude is not None and r in exclude:
            continue
        seen = eff.get(r)  # what the row could take when last looked at: an upper bound
        if seen is not None:
            for k, v, _ in gneed:
                if seen[k] < v:
                    break
            else:
                seen = None
            if seen is not None:
                continue
        node = row_node[r]
        nf = nfree[node]
        a = free[r]
        rq, mx, gr = reqs[r], maxes[r], growns[r]
        rc = mx[0] - rq[0] - gr[0]
        if nf[kc] < rc:
            rc = nf[kc]
        rm = mx[1] - rq[1] - gr[1]
        if nf[km] < rm:
            rm = nf[km]
        owed = debts[r] - gr[1]  # memory growth pays this first: Ray gains none of it
        if owed > 0:
            rm -= owed
        else:
            owed = 0
        rc = rc if rc > 0 else 0
        rm = rm if rm > 0 else 0
        c = left
        for k, v, col in gneed:
            q = (a[k] + (rc if col == 0 else rm if col == 1 else 0)) // v
            if q < c:
                c = q
                if c <= 0:
                    break
        if c <= 0:
            continue
        capable = True
        need_c = c * sc - a[kc]
        need_m = c * sm - a[km]
        need_c = need_c if need_c > 0 else 0
        need_m = need_m if need_m > 0 else 0
        grow_m = need_m + owed if need_m else 0  # the container grows by the debt too
        if not growing and (need_c or need_m):
            if not budget.take(node):
                capped = True
                continue
            if journal is not None:
                journal.append(("slot", node))
            ws.start_growth(r)
            started.append(r)
        if journal is not None:
            ws.log_row(r)
            ws.log_node(node)
        for k, v, _ in gneed:
            a[k] -= c * v
        a[kc] += need_c
        a[km] += need_m
        gr[0] += need_c
        gr[1] += grow_m
        nf[kc] -= need_c
        nf[km] -= grow_m
        if need_c or need_m:  # room on the node shrank: its rows' reach is stale
            for r2 in ws.node_rows(node):
                gs2 = grow_shelves[row_group[r2]] if row_group[r2] >= 0 else None
                if gs2 is not None:
                    gs2.changed.add(r2)
        else:
            own = grow_shelves[row_group[r]]
            if own is not None:
                own.changed.add(r)
        entry = growth.get(r)
        if entry is not None:
            served = entry.served
            if journal is not None:
                ws.log_served(served, key)
            served[key] = served.get(key, 0) + c
        placed[r] = True
        g = row_group[r]
        shelf = live[g]
        if shelf is not None:
            shelf.dirty = True
        if g not in busy:
            busy.add(g)
            if journal is not None:
                journal.append(("busy", g))
        out_rows.append(r)
        out_takes.append(c)
        left -= c
        if left == 0:
            break
    return left, capable, capped


def grow_in_place(ws: Workspace, items: list[Pending]) -> None:
    """Pass 2: serve what is left by growing matching pods."""
    for item in items:
        if item.remaining > 0:
            _, takes = grow_for(ws, item, item.remaining)
            placed = sum(takes)
            item.remaining -= placed
            item.in_place += placed


def _round_up(value: int, quantum: int) -> int:
    return value if quantum <= 0 else -(-value // quantum) * quantum


def grow_further(ws: Workspace, items: list[Pending]) -> None:
    """(A settle round.) Demand that neither free capacity nor growth placed may grow the pods the
    plan already grows (``Workspace.regrowable``) further — the same resize, larger — before any
    new pod is asked for. Placing the demand again moves it (first fit meets the room grown for
    later shapes first), and the demand it displaces would otherwise need new pods while the pods
    just grown could still give room."""
    rows = ws.regrowable
    if not rows or all(item.remaining <= 0 for item in items):
        return
    ws.allow_growth(rows)
    grow_in_place(ws, items)
    size_growth(ws, [r for r in rows if ws.growns[r][RC] or ws.growns[r][RM]])


def size_growth(ws: Workspace, rows: list[int] | None = None) -> None:
    """Turn "just enough" growth into the policy's sizing mode, within policy max and node room.

    fit: round up to quanta after adding ``headroom × growth``; step: multiply the current size by
    ``stepFactor`` until it is enough; to-max: the largest size policy and node allow. The extra
    beyond what the demand needs becomes free Ray capacity in this plan. ``rows``: only these
    (growth sized before is not sized again).
    """
    cols = ((RC, CPU), (RM, MEMORY))
    for r in sorted(ws.growth) if rows is None else rows:
        g = int(ws.row_group[r])
        sizing = ws.group_policy[g].vertical.sizing
        node = int(ws.row_node[r])
        for col, name in cols:
            need = int(ws.grown[r, col])
            if need <= 0:
                continue
            k = ws.kidx[name]
            base = int(ws.req[r, col])
            minimal = base + need
            ceiling = min(int(ws.grow_max[r, col]), minimal + max(0, int(ws.node_free[node, k])))
            quantum = getattr(sizing.quanta, name)
            if sizing.mode == "fit":
                want = _round_up(minimal + math.ceil(round(need * sizing.headroom, 6)), quantum)
            elif sizing.mode == "step":
                want = max(base, 1)
                while want < minimal:
                    want = math.ceil(want * sizing.step_factor)
                want = _round_up(want, quantum)
            else:  # to-max
                want = ceiling
            target = max(minimal, min(want, ceiling))
            extra = target - minimal
            ws.grown[r, col] += extra
            ws.avail[r, k] += extra
            ws.node_free[node, k] -= extra
            ws.node_changed(node)
            ws.capacity_added(r)
