"""Fit pending Ray demand on capacity that is free now or already on its way.

Demand placed here needs no action: it waits for Ray (free capacity) or for pods that are coming
(registered soon, Pending, replicas KubeRay has not created yet, resizes already accepted). Counting
capacity on its way is what keeps a second planning loop from scaling out again for the same demand.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        group_rank=ws.group_rank(demand.selector_chain(), vec),
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
) -> tuple[np.ndarray, np.ndarray]:
    """Place up to ``count`` bundles on rows' free capacity, in :meth:`Workspace.candidates` order
    (live, then on its way, then new; best selector first within each).
    Returns (rows, bundles per row)."""
    empty = np.zeros(0, dtype=np.int64)
    if count <= 0 or not ws.may_fit(item.group_rank, item.shape, item.nz):
        return empty, empty
    unmasked = rows_mask is None and exclude is None
    if unmasked and ws.known_to_fail(item.group_rank, item.shape_t, grow=False):
        return empty, empty
    idx = ws.candidates(item.group_rank)
    if rows_mask is not None:
        idx = idx[rows_mask[idx]]
    if exclude is not None:
        idx = idx[~padded(exclude, ws.n)[idx]]
    if idx.size == 0:
        return empty, empty
    if item.nz.size == 0:  # an empty shape fits anywhere
        return idx[:1], np.array([count], dtype=np.int64)
    # take() then a column slice is ~3× faster than 2-D fancy indexing
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
