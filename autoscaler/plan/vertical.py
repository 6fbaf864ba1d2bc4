"""Grow label-matching pods in place for demand that free capacity could not hold.

A pod can grow up to ``min(policy max, its request + its node's room)``; the node's room shrinks
as this plan grows pods on it, so resizes planned together never overcommit a node. Growing a pod
by X cpu/memory grows its raylet by the same X. Only cpu and memory grow; a shape's other keys
(GPUs, custom resources) must already be free on the pod.
"""

from __future__ import annotations

import math

import numpy as np

from autoscaler.model import CPU, MEMORY
from autoscaler.plan.packing import Pending, padded
from autoscaler.plan.workspace import RC, RM, Growth, Workspace


def _room(ws: Workspace, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 2) cpu/memory each row may still grow by (policy max and node room)."""
    cols = [ws.kidx[CPU], ws.kidx[MEMORY]]
    by_policy = ws.grow_max.take(rows, axis=0) - ws.req.take(rows, axis=0) - ws.grown.take(rows, axis=0)
    by_node = ws.node_free.take(ws.row_node.take(rows), axis=0)[:, cols]
    return np.maximum(np.minimum(by_policy, by_node), 0)


def grow_for(
    ws: Workspace, item: Pending, count: int, exclude: np.ndarray | None = None
) -> tuple[list[int], list[int]]:
    """Place up to ``count`` bundles by growing pods. Returns (rows, bundles per row)."""
    if count <= 0 or not ws.may_fit(item.group_rank, item.shape, item.nz, grow=True):
        return [], []
    if exclude is None and ws.known_to_fail(item.group_rank, item.shape_t, grow=True):
        return [], []
    idx = ws.growable_candidates(item.group_rank)
    if exclude is not None:
        idx = idx[~padded(exclude, ws.n)[idx]]
    if idx.size == 0:
        return [], []
    kc, km = ws.kidx[CPU], ws.kidx[MEMORY]
    nz = item.nz
    if nz.size == 0:
        return [], []
    eff = ws.avail.take(idx, axis=0)[:, nz]
    room = _room(ws, idx)
    cols = nz.tolist()
    if kc in cols:
        eff[:, cols.index(kc)] += room[:, RC]
    if km in cols:
        eff[:, cols.index(km)] += room[:, RM]
    has = np.flatnonzero((eff // item.shape[nz]).min(axis=1))
    if has.size == 0:
        if exclude is None:
            ws.record_failure(item.group_rank, item.shape_t, grow=True)
        return [], []
    idx = idx[has]
    if ws.growth:  # pods this plan already resizes first, within a selector rank (fewer resizes)
        rank = ws.row_rank(item.group_rank)[idx]
        fresh = np.fromiter((r not in ws.growth for r in idx.tolist()), dtype=np.int64, count=idx.size)
        idx = idx[np.lexsort((idx, fresh, rank))]

    shape = item.shape.tolist()
    need_keys = [(k, shape[k]) for k in cols]
    rows: list[int] = []
    takes: list[int] = []
    remaining = count
    capped = False
    for r in idx.tolist():
        if remaining == 0:
            break
        node = int(ws.row_node[r])
        avail = ws.avail[r].tolist()
        free = ws.node_free[node].tolist()
        grow_c = max(0, min(int(ws.grow_max[r, RC] - ws.req[r, RC] - ws.grown[r, RC]), free[kc]))
        grow_m = max(0, min(int(ws.grow_max[r, RM] - ws.req[r, RM] - ws.grown[r, RM]), free[km]))
        c = remaining
        for k, v in need_keys:
            extra = grow_c if k == kc else grow_m if k == km else 0
            c = min(c, (avail[k] + extra) // v)
        if c <= 0:
            continue
        need_c = max(0, c * shape[kc] - avail[kc])
        need_m = max(0, c * shape[km] - avail[km])
        if (need_c or need_m) and r not in ws.growth:
            if not ws.budget.take(node):
                capped = True
                continue
            ws.growth[r] = Growth()
        ws.avail[r] -= c * item.shape
        ws.avail[r, kc] += need_c
        ws.avail[r, km] += need_m
        ws.grown[r, RC] += need_c
        ws.grown[r, RM] += need_m
        ws.node_free[node, kc] -= need_c
        ws.node_free[node, km] -= need_m
        if r in ws.growth:
            served = ws.growth[r].served
            served[item.key] = served.get(item.key, 0) + c
        ws.placed[r] = True
        ws.group_busy.add(int(ws.row_group[r]))
        rows.append(r)
        takes.append(c)
        remaining -= c
    if capped:
        ws.notes.append(f"{item.text}: some pods could not grow now (resize concurrency cap reached)")
    return rows, takes


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


def size_growth(ws: Workspace) -> None:
    """Turn "just enough" growth into the policy's sizing mode, within policy max and node room.

    fit: round up to quanta after adding ``headroom × growth``; step: multiply the current size by
    ``stepFactor`` until it is enough; to-max: the largest size policy and node allow. The extra
    beyond what the demand needs becomes free Ray capacity in this plan.
    """
    cols = ((RC, CPU), (RM, MEMORY))
    for r in sorted(ws.growth):
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
            ws.capacity_added(r)
