"""Fit pending Ray demand on capacity that is free now or already on its way.

Demand placed here needs no action: it waits for Ray (free capacity) or for pods that are coming
(registered soon, Pending, replicas KubeRay has not created yet, resizes already accepted). Counting
capacity on its way is what keeps a second planning loop from scaling out again for the same demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from autoscaler.model import CPU, GPU, MEMORY, Demand, Resources
from autoscaler.plan.workspace import Workspace, shape_text


@dataclass
class Pending:
    """One demand shape with what is still unplaced."""

    demand: Demand
    shape: np.ndarray  # (K,) canonical units
    nz: np.ndarray  # indices of the shape's non-zero keys
    shape_t: tuple[int, ...]  # the shape as a tuple, for cheap dominance checks
    group_rank: np.ndarray  # (G,) selector index each group matches first
    remaining: int
    in_place: int = 0  # bundles served by free capacity or growth
    new_pods: int = 0  # bundles served by pods this plan adds
    prefix: str = ""  # e.g. "placement group pg-1 bundle "

    @cached_property
    def need(self) -> list[tuple[int, int]]:
        """(key index, amount) of the shape's non-zero keys, as plain ints."""
        return [(k, self.shape_t[k]) for k in self.nz.tolist()]

    @property
    def text(self) -> str:
        return self.prefix + shape_text(self.demand.shape)

    @property
    def key(self) -> tuple[str, Resources]:
        """How "what was served" is counted; formatted only when a sentence is written."""
        return self.prefix, self.demand.shape


def pending_of(ws: Workspace, shape: Resources, demand: Demand, count: int) -> Pending:
    vec = ws.vector(shape)
    return Pending(
        demand=demand,
        shape=vec,
        nz=np.flatnonzero(vec),
        shape_t=tuple(vec.tolist()),
        group_rank=ws.rank_for(demand.selectors, vec),
        remaining=count,
    )


def ordered(ws: Workspace, items: list[Pending]) -> list[Pending]:
    """Largest first (first-fit decreasing): GPUs, then CPU, then memory, then the rest. Stable,
    so the order (and the plan) is deterministic."""
    first = [ws.kidx[k] for k in (GPU, CPU, MEMORY)]
    rest = [i for i in range(len(ws.keys)) if i not in first]
    cols = first + rest

    def key(p: Pending) -> tuple[int, ...]:
        return tuple(-int(p.shape[c]) for c in cols)

    return sorted(items, key=key)


def padded(mask: np.ndarray, n: int) -> np.ndarray:
    """``mask`` extended with False to ``n`` rows (rows added after it was made)."""
    if mask.shape[0] >= n:
        return mask
    return np.concatenate([mask, np.zeros(n - mask.shape[0], dtype=bool)])


def fit_counts(avail: np.ndarray, shape: np.ndarray, nz: np.ndarray) -> np.ndarray:
    """How many bundles of ``shape`` fit in each row of ``avail``."""
    if nz.size == 0:
        return np.full(avail.shape[0], np.iinfo(np.int64).max // 4, dtype=np.int64)
    return (avail[:, nz] // shape[nz]).min(axis=1)


def pack(
    ws: Workspace,
    item: Pending,
    count: int,
    rows_mask: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Place up to ``count`` bundles on rows' free capacity, in :meth:`Workspace.candidates` order
    (live, then on its way, then new; best selector first within each). ``rows``: only these
    candidate rows, already in that order (e.g. the pods a scale-out just added).
    Returns (rows, bundles per row)."""
    empty = np.zeros(0, dtype=np.int64)
    if count <= 0 or not ws.may_fit(item.group_rank, item.shape, item.nz):
        return empty, empty
    unmasked = rows_mask is None and exclude is None and rows is None
    if unmasked and ws.known_to_fail(item.group_rank, item.shape_t, grow=False):
        return empty, empty
    nz = item.nz
    if rows is not None:
        idx = rows
    elif nz.size == 0:  # an empty shape fits anywhere
        idx = ws.candidates(item.group_rank)
    elif unmasked and not ws.maybe_negative:
        return _pack_indexed(ws, item, count)
    else:
        idx = ws.candidates(item.group_rank)
    if rows_mask is not None:
        idx = idx[rows_mask[idx]]
    if exclude is not None:
        idx = idx[~padded(exclude, ws.n)[idx]]
    if idx.size == 0:
        return empty, empty
    if nz.size == 0:
        return idx[:1], np.array([count], dtype=np.int64)
    if ws.maybe_negative:
        return _pack_general(ws, item, count, idx, unmasked)
    # No negative capacity: a row holds a bundle iff every key is at least the shape's, and each
    # such row holds ≥ 1, so the first ``count`` of them are all packing can use.
    sub = ws.avail.take(idx, axis=0)
    shape = item.shape_t
    keys = nz.tolist()
    ok = sub[:, keys[0]] >= shape[keys[0]]
    for k in keys[1:]:
        ok &= sub[:, k] >= shape[k]
    has = ok.nonzero()[0][:count]
    if has.size == 0:
        return empty, empty
    return _place(ws, item, count, idx[has].tolist(), sub[has].tolist(), keys)


def _pack_indexed(ws: Workspace, item: Pending, count: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pack` on all of a chain's candidates, through its :class:`FitIndex`."""
    keys = item.nz.tolist()
    rows, caps = ws.fit_index(item.group_rank).first_fits(ws.avail, item.shape_t, keys, count)
    if not rows:
        ws.record_failure(item.group_rank, item.shape_t, grow=False)
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return _place(ws, item, count, rows, caps, keys)


def _place(
    ws: Workspace, item: Pending, count: int, rows: list[int], caps: list[list[int]], keys: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Take bundles from ``rows`` (each holds ≥ 1; ``caps`` their free capacity) in order."""
    shape = item.shape_t
    out_rows, takes = [], []
    left = count
    for r, a in zip(rows, caps, strict=True):
        c = min(left, min(a[k] // shape[k] for k in keys))
        out_rows.append(r)
        takes.append(c)
        left -= c
        if left == 0:
            break
    rows_a = np.array(out_rows, dtype=np.int64)
    takes_a = np.array(takes, dtype=np.int64)
    ws.avail[rows_a] -= takes_a[:, None] * item.shape
    ws.mark_placed(rows_a)
    return rows_a, takes_a


def _pack_general(
    ws: Workspace, item: Pending, count: int, idx: np.ndarray, unmasked: bool
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pack` when some capacity may be negative (every row's count goes into the running sum)."""
    empty = np.zeros(0, dtype=np.int64)
    cap = (ws.avail.take(idx, axis=0)[:, item.nz] // item.shape[item.nz]).min(axis=1)
    has = np.flatnonzero(cap)
    if has.size == 0:
        if unmasked:
            ws.record_failure(item.group_rank, item.shape_t, grow=False)
        return empty, empty
    idx, cap = idx[has], cap[has]
    before = np.cumsum(cap) - cap
    take = np.minimum(np.maximum(count - before, 0), cap)
    used = take > 0
    idx, take = idx[used], take[used]
    ws.avail[idx] -= take[:, None] * item.shape
    ws.mark_placed(idx)
    return idx, take


def fit_free(ws: Workspace, items: list[Pending]) -> None:
    """Pass 1: demand that fits free (or arriving) capacity needs nothing."""
    for item in items:
        _, take = pack(ws, item, item.remaining)
        placed = int(take.sum())
        item.remaining -= placed
        item.in_place += placed
