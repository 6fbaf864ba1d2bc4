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
from autoscaler.plan.fitindex import FitIndex
from autoscaler.plan.packing import Pending, padded
from autoscaler.plan.workspace import RC, RM, Workspace


def grow_for(
    ws: Workspace, item: Pending, count: int, exclude: np.ndarray | None = None
) -> tuple[list[int], list[int]]:
    """Place up to ``count`` bundles by growing pods. Returns (rows, bundles per row).

    Rows are visited in order and each takes ``c`` bundles, growing by what its free capacity
    lacks (within policy max and its node's room); a pod not growing yet needs a resize slot.
    Which rows can hold one bundle at all is one vectorised test on cached room (see
    :meth:`Workspace.room`); only the rows actually visited are worked out in Python, and the
    loop stops once the demand is placed."""
    if count <= 0 or not ws.may_fit(item.group_rank, item.shape, item.nz, grow=True):
        return [], []
    if exclude is None and ws.known_to_fail(item.group_rank, item.shape_t, grow=True):
        return [], []
    idx = ws.growable_candidates(item.group_rank)
    if exclude is not None:
        idx = idx[~padded(exclude, ws.n)[idx]]
    nz = item.nz
    if idx.size == 0 or nz.size == 0:
        return [], []
    kc, km = ws.kidx[CPU], ws.kidx[MEMORY]
    shape = item.shape.tolist()
    keys = nz.tolist()
    # Free + growable capacity only shrinks until ``epoch`` changes (taking c bundles lowers a
    # row's by c × shape, growth elsewhere on its node lowers its room): block maxima from the
    # last miss reject shapes nothing can hold without looking at every row again.
    known = ws.grow_index.get(id(item.group_rank))
    if known is not None and known.epoch == ws.epoch and not known.may_hold(item.shape_t, keys):
        return [], []
    room = ws.room().take(idx, axis=0)
    eff = ws.avail.take(idx, axis=0)
    eff[:, kc] += room[:, RC]
    eff[:, km] += room[:, RM]
    ok = eff[:, keys[0]] >= shape[keys[0]]
    for k in keys[1:]:
        ok &= eff[:, k] >= shape[k]
    has = ok.nonzero()[0]
    if has.size == 0:
        if exclude is None:
            ws.record_failure(item.group_rank, item.shape_t, grow=True)
            ws.grow_index[id(item.group_rank)] = FitIndex.of_values(eff, idx, ws.n, ws.epoch)
        return [], []
    idx = idx[has]
    if ws.growth:  # pods this plan already resizes first, within a selector rank (fewer resizes)
        rank = ws.row_rank(item.group_rank)[idx]
        idx = idx[np.lexsort((idx, ~ws.growing[idx], rank))]
    order = idx.tolist()
    sc, sm = shape[kc], shape[km]
    need_keys = [(k, shape[k], 1 if k == kc else 2 if k == km else 0) for k in keys]
    rows: list[int] = []
    takes: list[int] = []
    remaining = count
    capped = False
    filtered_at = -1  # budget.total when rows no resize slot can help were last dropped
    i = 0
    while i < len(order) and remaining > 0:
        r = order[i]
        i += 1
        node = int(ws.row_node[r])
        avail = ws.avail[r].tolist()
        free_c, free_m = ws.node_free[node, kc], ws.node_free[node, km]
        grow_c = max(0, min(int(ws.grow_max[r, RC] - ws.req[r, RC] - ws.grown[r, RC]), int(free_c)))
        grow_m = max(0, min(int(ws.grow_max[r, RM] - ws.req[r, RM] - ws.grown[r, RM]), int(free_m)))
        extra = (0, grow_c, grow_m)
        c = remaining
        for k, v, g in need_keys:
            c = min(c, (avail[k] + extra[g]) // v)
        if c <= 0:
            continue
        need_c = max(0, c * sc - avail[kc])
        need_m = max(0, c * sm - avail[km])
        if (need_c or need_m) and not ws.growing[r]:
            if not ws.budget.take(node):
                capped = True
                if filtered_at != ws.budget.total and len(order) - i > FILTER_AT:
                    # from now on a row that is not growing, has no slot and cannot hold one
                    # bundle without growing is never taken here (slots only run out): drop them
                    filtered_at = ws.budget.total
                    order = order[:i] + _worth_visiting(ws, item, order[i:])
                continue
            ws.start_growth(r)
        ws.avail[r] -= c * item.shape
        ws.avail[r, kc] += need_c
        ws.avail[r, km] += need_m
        ws.grown[r, RC] += need_c
        ws.grown[r, RM] += need_m
        ws.node_free[node, kc] -= need_c
        ws.node_free[node, km] -= need_m
        ws.node_changed(node)
        if ws.growing[r]:
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


#: Rows left to visit above which dropping the ones a full budget rules out pays for itself.
FILTER_AT = 16


def _worth_visiting(ws: Workspace, item: Pending, rest: list[int]) -> list[int]:
    """``rest`` without rows that cannot take a bundle in this call any more: not growing yet,
    no resize slot on their node, and too little free capacity for one bundle as they are."""
    if not rest:
        return rest
    idx = np.array(rest, dtype=np.int64)
    fits_now = (ws.avail.take(idx, axis=0)[:, item.nz] // item.shape[item.nz]).min(axis=1) > 0
    keep = ws.growing.take(idx) | ~ws.budget.full(ws.row_node.take(idx)) | fits_now
    return idx[keep].tolist()


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
            ws.node_changed(node)
            ws.capacity_added(r)
