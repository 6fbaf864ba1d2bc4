"""Fit pending Ray demand on capacity that is free now or already on its way.

Demand placed here needs no action: it waits for Ray (free capacity) or for pods that are coming
(registered soon, Pending, replicas KubeRay has not created yet, resizes already accepted). Counting
capacity on its way is what keeps a second planning loop from scaling out again for the same demand.

Placement order: live capacity first, then capacity on its way, then pods this plan adds; within
each, the groups the demand's best selector matches first, then its fallbacks; within one selector,
groups by priority, then spec order; within a group, row order. A bundle
goes to the first row that holds it (first fit), largest shapes first.
"""

from __future__ import annotations

from autoscaler.model import CPU, GPU, MEMORY, Demand, Resources
from autoscaler.plan.text import shape_text
from autoscaler.plan.workspace import PLACEABLE, Chain, Workspace


class Pending:
    """One demand shape with what is still unplaced."""

    __slots__ = ("chain", "demand", "in_place", "need", "new_pods", "nz", "prefix", "remaining", "shape", "shape_t")

    def __init__(self, demand: Demand, shape: list[int], chain: Chain, remaining: int) -> None:
        self.demand = demand
        self.shape = shape  # (K,) canonical units
        self.shape_t = tuple(shape)  # for cheap dominance checks
        self.nz = [k for k, v in enumerate(shape) if v]  # the shape's non-zero keys
        self.need = [(k, shape[k]) for k in self.nz]  # (key index, amount) of the non-zero keys
        self.chain = chain
        self.remaining = remaining
        self.in_place = 0  # bundles served by free capacity or growth
        self.new_pods = 0  # bundles served by pods this plan adds
        self.prefix = ""  # e.g. "placement group pg-1 bundle "

    def fresh(self) -> Pending:
        """The same demand again, nothing placed yet (the next planning round reuses the rest)."""
        out = Pending.__new__(Pending)
        out.demand, out.shape, out.shape_t, out.nz, out.need, out.chain = (
            self.demand, self.shape, self.shape_t, self.nz, self.need, self.chain)
        out.remaining = self.demand.count
        out.in_place = out.new_pods = 0
        out.prefix = self.prefix
        return out

    @property
    def text(self) -> str:
        return self.prefix + shape_text(self.demand.shape)

    @property
    def key(self) -> tuple[str, Resources]:
        """How "what was served" is counted; formatted only when a sentence is written."""
        return self.prefix, self.demand.shape


def pending_of(ws: Workspace, shape: Resources, demand: Demand, count: int) -> Pending:
    vec = ws.vector(shape)
    return Pending(demand, vec, ws.chain(demand.selectors, vec), count)


def order_key(ws: Workspace) -> list[int]:
    """Key columns in sort order: GPUs, then CPU, then memory, then the rest."""
    first = [ws.kidx[k] for k in (GPU, CPU, MEMORY)]
    return first + [i for i in range(len(ws.keys)) if i not in first]


def ordered(ws: Workspace, items: list[Pending]) -> list[Pending]:
    """Most constrained first (fewest groups its selectors allow), then largest first (first-fit
    decreasing): GPUs, then CPU, then memory, then the rest. Stable, so the order (and the plan)
    is deterministic. Demand that can go to few groups places (and grows pods) before demand that
    could go anywhere takes the room it needs, as Ray's scheduler orders requests by their label
    constraints before their size."""
    cols = order_key(ws)
    return sorted(items, key=lambda p: (len(p.chain.groups), *(-p.shape[c] for c in cols)))


def pack(
    ws: Workspace,
    item: Pending,
    count: int,
    exclude: set[int] | None = None,
    rows: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Place up to ``count`` bundles on rows' free capacity, in placement order (see the module
    docstring). ``rows``: only these rows, in this order (e.g. the pods a scale-out just added);
    ``exclude``: never these rows. Returns (rows, bundles per row)."""
    if count <= 0:
        return [], []
    need = item.need
    out_rows: list[int] = []
    out_takes: list[int] = []
    if not need:  # an empty shape fits anywhere: on the first usable row
        found = rows if rows is not None else _candidates(ws, item.chain)
        first = next((r for r in found if exclude is None or r not in exclude), None)
        return ([first], [count]) if first is not None else ([], [])
    if rows is not None:
        _scan(ws, rows, need, count, out_rows, out_takes, exclude)
    else:
        chain = item.chain
        top = ws.chain_top(chain)
        if top is None:
            return [], []
        for k, v in need:  # most shapes that fit nowhere fail here
            if top[k] < v:
                return [], []
        kc = ws.kc
        cpu = item.shape[kc]
        left = count
        free = ws.free
        floors = ws.floors
        for g, shelf in ws.chain_shelves(chain):
            if shelf.stale:
                shelf.refresh(free, floors[g], kc)
            reach = shelf.reach
            rows = reach.to_scan(need, cpu, shelf.rows) if reach is not None else None
            if rows is None:
                continue
            before = left
            left = _scan(ws, rows, need, left, out_rows, out_takes, exclude)
            if left < before:
                shelf.dirty = True
                if left == 0:
                    break
            elif shelf.dirty:
                # every row seen, none could: once such misses have cost as much as a fresh
                # reach does, get one (what is left of the rows, exactly)
                shelf.wasted += len(rows)
                if shelf.wasted >= len(shelf.rows):
                    shelf.tighten(free, floors[g], kc)
        if not out_rows:
            ws.forget_chain_top(chain)
            return [], []
    if out_rows:
        ws.mark_placed(out_rows)
    return out_rows, out_takes


def _scan(
    ws: Workspace, rows: list[int], need: list[tuple[int, int]], left: int,
    out_rows: list[int], out_takes: list[int], exclude: set[int] | None,
) -> int:
    """Take bundles from ``rows`` in order, each row as many as it holds; returns what is left."""
    free = ws.free
    journal = ws.journal
    if len(need) == 2:  # the common shape (CPU and memory): the same, unrolled
        (k1, v1), (k2, v2) = need
        for r in rows:
            a = free[r]
            if a[k1] < v1 or a[k2] < v2 or (exclude is not None and r in exclude):
                continue
            c = a[k1] // v1
            q = a[k2] // v2
            if q < c:
                c = q
            if left < c:
                c = left
            if journal is not None:
                ws.log_row(r)
            a[k1] -= c * v1
            a[k2] -= c * v2
            out_rows.append(r)
            out_takes.append(c)
            left -= c
            if left == 0:
                return 0
        return left
    for r in rows:
        a = free[r]
        c = left
        for k, v in need:
            q = a[k] // v
            if q < c:
                c = q
                if c <= 0:
                    break
        if c <= 0 or (exclude is not None and r in exclude):
            continue
        if journal is not None:
            ws.log_row(r)
        for k, v in need:
            a[k] -= c * v
        out_rows.append(r)
        out_takes.append(c)
        left -= c
        if left == 0:
            return 0
    return left


def _candidates(ws: Workspace, chain: Chain) -> list[int]:
    """Every usable row a chain matches, in placement order."""
    out: list[int] = []
    for kind in PLACEABLE:
        shelves = ws.shelves[kind]
        for g in chain.groups:
            shelf = shelves[g]
            if shelf is not None:
                out.extend(shelf.members)
    return out


def fit_free(ws: Workspace, items: list[Pending]) -> None:
    """Pass 1: demand that fits free (or arriving) capacity needs nothing."""
    for item in items:
        _, takes = pack(ws, item, item.remaining)
        placed = sum(takes)
        item.remaining -= placed
        item.in_place += placed
