"""The planner's scratch state for one planning round: capacity rows, node room, decisions so far.

Every place Ray work can land is a *row*: a live pod (its Ray ``available``), a pod on its way (not
registered with Ray yet, Pending, or a replica KubeRay has not created: the group's Ray resources),
or a pod this plan adds (same). A row's capacity is a plain list of ints over one resource-key
axis; node room is Kubernetes-side: ``allocatable − Σ max(spec, allocated, actual)`` minus what
this plan has already grown. Rows are looked up through per-group shelves (:mod:`.fitindex`), so a
demand shape only ever looks at the groups its selectors allow, and a group that cannot hold it is
skipped in one comparison.

The rows come from :mod:`.rows` (one snapshot, read once per plan); the sentences' formatting is in
:mod:`.text`.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import groupby
from typing import Any, NamedTuple

from autoscaler.actions import Action, Reason, Unserved
from autoscaler.model import (
    ANY_NODE,
    CPU,
    GPU,
    MEMORY,
    Demand,
    Gang,
    GroupState,
    LabelSelector,
    PodState,
    Resources,
    Snapshot,
)
from autoscaler.plan.fitindex import GrowShelf, Shelf
from autoscaler.plan.guards import Budget
from autoscaler.policy import GroupPolicy, Policy

#: "No bound": large enough for any byte count, small enough that sums never overflow int64.
UNBOUNDED = 1 << 60
#: Rank of a group a selector chain does not match.
NO_MATCH = 1 << 30
#: Column of cpu and memory in the per-row (cpu, memory) growth lists.
RC, RM = 0, 1
GROWABLE = (CPU, MEMORY)


class RowKind(IntEnum):
    LIVE = 0  # raylet registered, pod running: Ray's available capacity
    ARRIVING = 1  # pod exists but raylet not registered yet, or replica not created yet
    NEW = 2  # pod this plan adds
    GONE = 3  # draining, deleting, failed, stuck: no capacity


#: Row kinds that hold capacity, in placement order (live first, as Ray places work).
PLACEABLE = (RowKind.LIVE, RowKind.ARRIVING, RowKind.NEW)


class Grid:
    """``grid[r, c]`` over a list of row lists: the numpy-style indexing :func:`size_growth` uses.
    The rows are the workspace's own lists, so writes land where the hot paths read."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows

    def __getitem__(self, key: tuple[int, int]) -> int:
        return self.rows[key[0]][key[1]]

    def __setitem__(self, key: tuple[int, int], value: int) -> None:
        self.rows[key[0]][key[1]] = int(value)


@dataclass
class Growth:
    """Why a row grows: what it serves, for the action's sentence."""

    served: dict[tuple[str, Resources], int] = field(default_factory=dict)  # (prefix, shape) → bundles
    reasons: list[tuple[Reason, str]] = field(default_factory=list)


@dataclass
class NewPods:
    """Pods this plan adds to one group."""

    replicas: int = 0  # replicas added (each is num_of_hosts pods)
    fallback: bool = False
    min_replicas: bool = False
    served: dict[tuple[str, Resources], int] = field(default_factory=dict)


class Unplaced(NamedTuple):
    """Demand a round could not place: an :class:`Unserved` whose sentence is written only if this
    round's view is the plan's (a settle round's replaces it; the sentences cost ~5 % of a plan)."""

    subject: Demand | Gang
    units: int
    reason: Reason
    why: Callable[[], str]

    def unserved(self) -> Unserved:
        return Unserved(self.subject, self.units, self.reason, self.why())


class Chain:
    """One selector chain (primary + fallbacks) as it ranks the worker groups, for demand with or
    without GPUs. ``levels`` are the matching groups per selector, each ordered as scale-out tries
    them (priority, then spec order); ``order`` is every matching ``(rank, group)`` in that order;
    ``ties`` the ``order[a:b]`` spans of two or more groups alike in rank and priority (scale-out
    orders those by the demand, see horizontal.scale_out_order)."""

    __slots__ = ("groups", "levels", "order", "rank", "ties")

    def __init__(self, rank: list[int], priority: list[int]) -> None:
        self.rank = rank
        matching = ((r, g) for g, r in enumerate(rank) if r < NO_MATCH)
        self.order = sorted(matching, key=lambda rg: (rg[0], -priority[rg[1]], rg[1]))
        levels: dict[int, list[int]] = {}
        for r, g in self.order:
            levels.setdefault(r, []).append(g)
        self.levels = list(levels.values())
        self.groups = [g for _, g in self.order]
        self.ties: list[tuple[int, int]] = []
        start = 0
        for _, alike in groupby(self.order, key=lambda rg: (rg[0], priority[rg[1]])):
            end = start + len(list(alike))
            if end - start > 1:
                self.ties.append((start, end))
            start = end



class Chains:
    """Every selector chain of one plan, by the tuple's identity first (hashing a selector chain
    costs more than the lookup) and by value when a new tuple shows up (equal chains share one
    :class:`Chain`, and with it what is known not to fit). Tuples are kept, so ids stay unique."""

    def __init__(self, groups: tuple[GroupState, ...], has_gpu: list[bool], gpol: list[GroupPolicy]) -> None:
        self.groups = groups
        self.has_gpu = has_gpu
        self.gpol = gpol
        self.priority = [gp.horizontal.priority if gp.horizontal.priority is not None else group.priority
                         for gp, group in zip(gpol, groups, strict=True)]
        self.by_id: dict[tuple[int, bool], tuple[tuple[LabelSelector, ...], Chain]] = {}
        self.by_value: dict[tuple[tuple[LabelSelector, ...], bool], Chain] = {}

    def get(self, selectors: tuple[LabelSelector, ...], cpu_only: bool) -> Chain:
        hit = self.by_id.get((id(selectors), cpu_only))
        if hit is not None:
            return hit[1]
        chain = self.by_value.get((selectors, cpu_only))
        if chain is None:
            chain = self.by_value[(selectors, cpu_only)] = Chain(self._rank(selectors, cpu_only), self.priority)
        self.by_id[(id(selectors), cpu_only)] = (selectors, chain)
        return chain

    def _rank(self, selectors: tuple[LabelSelector, ...], cpu_only: bool) -> list[int]:
        """Index of the first selector each group matches (NO_MATCH if none or guarded)."""
        rank = [NO_MATCH] * len(self.groups)
        for g, group in enumerate(self.groups):
            if cpu_only and self.has_gpu[g] and not self.gpol[g].allow_cpu_only_on_gpu:
                continue  # CPU-only demand never lands on GPU groups unless the policy allows it
            for i, selector in enumerate(selectors or (ANY_NODE,)):
                if selector.matches(group.labels):
                    rank[g] = i
                    break
        return rank


@dataclass
class Workspace:
    snapshot: Snapshot
    policy: Policy
    now: float
    keys: list[str]
    kidx: dict[str, int]
    group_policy: list[GroupPolicy]
    group_ray: list[list[int]]  # (G, K) Ray resources of a new pod
    group_has_gpu: list[bool]
    # rows ------------------------------------------------------------------------------------
    n: int
    n_pods: int  # rows [0, n_pods) are snapshot.pods in order
    free: list[list[int]]  # (n, K) Ray capacity free now or on its way
    row_group: list[int]  # group index (-1 unknown)
    row_node: list[int]  # node index (-1 none)
    row_kind: list[int]  # RowKind
    growable: list[bool]  # may be grown in place by this plan
    reqs: list[list[int]]  # (n, 2) cpu/memory requests (plus pressure growth this plan decided)
    maxes: list[list[int]]  # (n, 2) largest cpu/memory request allowed (policy max, key present)
    growns: list[list[int]]  # (n, 2) growth for demand this plan decided (and its sizing)
    #: (n,) memory a row's growth pays before Ray gains any (model.memory_debt)
    debts: list[int]
    placed: list[bool]  # demand placed on this row by this plan
    # nodes -------------------------------------------------------------------------------------
    node_index: dict[str, int]
    nfree: list[list[int]]  # (N, K) Kubernetes room left
    # decisions ---------------------------------------------------------------------------------
    budget: Budget
    chains: Chains
    #: per group, (key, amount) of the least of every shape that may land on it: a row with less
    #: of some key holds nothing this plan places
    floors: list[list[tuple[int, int]]]
    growth: dict[int, Growth] = field(default_factory=dict)
    new_pods: dict[int, NewPods] = field(default_factory=dict)
    reverted: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    #: rows an earlier round of this plan already resizes or removes (settle rounds): left alone
    frozen: set[int] = field(default_factory=set)
    #: (a settle round) rows the plan so far grows that may grow further in the same resize
    regrowable: list[int] = field(default_factory=list)
    #: cpu/memory a resize an earlier round decided adds to a row's Ray total
    total_delta: dict[int, list[int]] = field(default_factory=dict)
    #: memory this plan grows a row by for pressure (already in ``reqs``: demand growth comes on top)
    pressure_grown: dict[int, int] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)  # reverts, shrinks, removals (built directly)
    unserved: list[Unplaced] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_busy: set[int] = field(default_factory=set)
    stuck_groups: set[int] = field(default_factory=set)  # groups with a pod stuck past stockoutTime
    potential: list[list[int]] | None = None  # (G, K) see horizontal.group_potential
    #: undo records while a placement group is being placed (all or nothing), else None
    journal: list[tuple[Any, ...]] | None = None
    # where shapes look (see fitindex) ------------------------------------------------------------
    shelves: list[list[Shelf | None]] = field(default_factory=list)  # [kind][group]
    grow_shelves: list[GrowShelf | None] = field(default_factory=list)  # [group]
    shelves_made: int = 0  # shelves added since the workspace was made (new pods of a new group)
    #: bumped whenever capacity grows other than by new pods: cached chain maxima are dropped
    version: int = 0
    #: the group of each ``add_rows`` call, in order: cached chain maxima catch up with new pods
    added: list[int] = field(default_factory=list)
    #: id(chain) → (shelves_made when cached, its shelves in placement order)
    _chain_shelves: dict[int, tuple[int, list[tuple[int, Shelf]]]] = field(default_factory=dict)
    #: id(chain) → its growth shelves, per selector
    _chain_grow: dict[int, list[list[tuple[int, GrowShelf]]]] = field(default_factory=dict)
    #: id(chain) → (version, len(added) when made, per-key maximum of its free capacity or None)
    _chain_top: dict[int, tuple[int, int, list[int] | None]] = field(default_factory=dict)
    _node_rows: dict[int, list[int]] | None = None

    def __post_init__(self) -> None:
        self.kc = self.kidx[CPU]
        self.km = self.kidx[MEMORY]
        self.kg = self.kidx[GPU]
        self._grids()
        if not self.shelves:
            self._index()

    def _grids(self) -> None:
        # what size_growth reads and writes: grid views over the same lists
        self.avail = Grid(self.free)
        self.req = Grid(self.reqs)
        self.grow_max = Grid(self.maxes)
        self.grown = Grid(self.growns)
        self.node_free = Grid(self.nfree)

    def _index(self) -> None:
        G = len(self.snapshot.groups)
        members: list[list[list[int]]] = [[[] for _ in range(G)] for _ in PLACEABLE]
        grow: list[list[int]] = [[] for _ in range(G)]
        for r in range(self.n):
            kind, g = self.row_kind[r], self.row_group[r]
            if g >= 0 and kind != RowKind.GONE:
                members[kind][g].append(r)
                if self.growable[r]:
                    grow[g].append(r)
        self.shelves = [[Shelf(rows) if rows else None for rows in per_kind] for per_kind in members]
        self.grow_shelves = [GrowShelf(rows) if rows else None for rows in grow]

    # ------------------------------------------------------------------------------------------
    def vector(self, res: Resources) -> list[int]:
        out = [0] * len(self.keys)
        for k, v in res._items:
            i = self.kidx.get(k)
            if i is not None:
                out[i] = v
        return out

    def chain(self, selectors: tuple[LabelSelector, ...], shape: list[int]) -> Chain:
        """The :class:`Chain` of a demand's ``selectors`` (primary + fallbacks), cached by the
        tuple's identity: hashing a selector chain costs more than the lookup saves otherwise.
        The tuple is kept in the cache, so its id stays unique for the plan's lifetime."""
        return self.chains.get(selectors, shape[self.kg] == 0)

    # where a chain looks ----------------------------------------------------------------------------
    def chain_shelves(self, chain: Chain) -> list[tuple[int, Shelf]]:
        """(group, shelf) of every shelf a chain may use, in placement order: live rows first, then
        rows on their way, then new pods; groups as the chain ranks them."""
        hit = self._chain_shelves.get(id(chain))
        if hit is not None and hit[0] == self.shelves_made:
            return hit[1]
        out = []
        for per_kind in self.shelves:
            for g in chain.groups:
                shelf = per_kind[g]
                if shelf is not None:
                    out.append((g, shelf))
        self._chain_shelves[id(chain)] = (self.shelves_made, out)
        return out

    def chain_top(self, chain: Chain) -> list[int] | None:
        """Per key, the most free capacity any row the chain may use has (an upper bound: kept
        while capacity only shrinks; ``None``: no row has any). A shape above it in some key fits
        nowhere — the common case once free capacity is taken — and is turned away in one look."""
        hit = self._chain_top.get(id(chain))
        if hit is not None and hit[0] == self.version:
            seen, top = hit[1], hit[2]
            if seen < len(self.added):  # pods added since: their capacity counts too
                rank = chain.rank
                for g in set(self.added[seen:]):
                    if rank[g] < NO_MATCH:
                        ray = self.group_ray[g]
                        top = list(ray) if top is None else [a if a > b else b for a, b in zip(top, ray, strict=True)]
                self._chain_top[id(chain)] = (self.version, len(self.added), top)
            return top
        top = None
        for g, shelf in self.chain_shelves(chain):
            if shelf.stale:
                shelf.refresh(self.free, self.floors[g], self.kc)
            t = shelf.reach.top if shelf.reach is not None else None
            if t is not None:
                top = list(t) if top is None else [a if a > b else b for a, b in zip(top, t, strict=True)]
        self._chain_top[id(chain)] = (self.version, len(self.added), top)
        return top

    def forget_chain_top(self, chain: Chain) -> None:
        """After a look that found nothing its shelves may be tighter: recompute next time."""
        self._chain_top.pop(id(chain), None)

    def chain_grow_shelves(self, chain: Chain) -> list[list[tuple[int, GrowShelf]]]:
        """Per selector of the chain (best first), (group, growth shelf) of its groups that have one."""
        hit = self._chain_grow.get(id(chain))
        if hit is None:
            hit = self._chain_grow[id(chain)] = [
                [(g, gs) for g in level if (gs := self.grow_shelves[g]) is not None] for level in chain.levels
            ]
        return hit

    # capacity that grows ------------------------------------------------------------------------
    def capacity_added(self, row: int) -> None:
        """A row gained free capacity (sizing headroom): its shelf is rebuilt before its next use."""
        self.version += 1
        g = self.row_group[row]
        kind = self.row_kind[row]
        if g >= 0 and kind != RowKind.GONE:
            shelf = self.shelves[kind][g]
            if shelf is not None:
                shelf.stale = True

    def node_changed(self, node: int) -> None:
        """A node's room changed. Room only shrinks while demand is placed, so the growth shelves'
        bounds stay upper bounds: nothing to do (kept for :func:`size_growth`)."""

    def forget_bounds(self) -> None:
        """Capacity changed in ways the shelves cannot follow: rebuild every one before its next use."""
        self.version += 1
        for per_kind in self.shelves:
            for shelf in per_kind:
                if shelf is not None:
                    shelf.stale = True
        for gs in self.grow_shelves:
            if gs is not None:
                gs.stale = True

    def allow_growth(self, rows: list[int]) -> None:
        """``rows`` may grow from now on, as rows this plan already grows (no new resize slot)."""
        for r in rows:
            self.growable[r] = True
            if r not in self.growth:
                self.growth[r] = Growth()
            g = self.row_group[r]
            gs = self.grow_shelves[g]
            if gs is None:
                self.grow_shelves[g] = GrowShelf([r])
            elif r not in gs.members:
                insort(gs.members, r)
                gs.stale = True
        self._chain_grow.clear()  # groups that had no growth shelf may have one now

    def forbid_growth(self, row: int) -> None:
        self.growable[row] = False
        g = self.row_group[row]
        if g >= 0 and self.grow_shelves[g] is not None:
            gs = self.grow_shelves[g]
            assert gs is not None
            if row in gs.members:
                gs.members.remove(row)
            gs.stale = True

    def start_growth(self, row: int) -> Growth:
        entry = self.growth[row] = Growth()
        if self.journal is not None:
            self.journal.append(("growth", row))
        return entry

    def node_rows(self, node: int) -> list[int]:
        if self._node_rows is None:
            self._node_rows = {}
            for r in range(self.n_pods):
                self._node_rows.setdefault(self.row_node[r], []).append(r)
        return self._node_rows.get(node, [])

    def add_rows(self, group: int, count: int) -> list[int]:
        """Append ``count`` new-pod rows for ``group``; returns their indices."""
        start = self.n
        ray = self.group_ray[group]
        for _ in range(count):
            self.free.append(list(ray))
            self.row_group.append(group)
            self.row_node.append(-1)
            self.row_kind.append(RowKind.NEW)
            self.growable.append(False)
            self.reqs.append([0, 0])
            self.maxes.append([0, 0])
            self.growns.append([0, 0])
            self.debts.append(0)
            self.placed.append(False)
        self.n = start + count
        rows = list(range(start, self.n))
        shelves = self.shelves[RowKind.NEW]
        shelf = shelves[group]
        if shelf is None:
            shelf = shelves[group] = Shelf([])
            self.shelves_made += 1
        shelf.add(rows, ray, self.kc)
        if self.journal is not None:
            self.journal.append(("rows", start))
        self.added.append(group)
        return rows

    # transactions (gangs are all or nothing) ---------------------------------------------------
    def checkpoint(self) -> tuple[int, dict[int, NewPods]]:
        """Start a transaction: changes are journaled until :meth:`commit` or :meth:`restore`."""
        self.journal = []
        saved_new = {
            g: NewPods(v.replicas, v.fallback, v.min_replicas, dict(v.served)) for g, v in self.new_pods.items()
        }
        return (self.n, saved_new)

    def log_row(self, row: int) -> None:
        """Before a row's capacity or growth changes inside a transaction."""
        if self.journal is not None:
            self.journal.append(("row", row, list(self.free[row]), list(self.growns[row]), self.placed[row]))

    def log_node(self, node: int) -> None:
        if self.journal is not None:
            self.journal.append(("node", node, list(self.nfree[node])))

    def log_served(self, served: dict[tuple[str, Resources], int], key: tuple[str, Resources]) -> None:
        if self.journal is not None:
            self.journal.append(("served", served, key, served.get(key)))

    def commit(self) -> None:
        self.journal = None

    def restore(self, saved: tuple[int, dict[int, NewPods]]) -> None:
        journal, self.journal = self.journal or [], None
        n, new_pods = saved
        stale_groups: set[int] = set()
        for entry in reversed(journal):
            tag = entry[0]
            if tag == "row":
                _, r, free, grown, placed = entry
                self.free[r][:] = free
                self.growns[r][:] = grown
                self.placed[r] = placed
                stale_groups.add(self.row_group[r])
            elif tag == "node":
                _, node, free = entry
                self.nfree[node][:] = free
                stale_groups.update(self.row_group[r] for r in self.node_rows(node))
            elif tag == "served":
                _, served, key, old = entry
                if old is None:
                    served.pop(key, None)
                else:
                    served[key] = old
            elif tag == "growth":
                r = entry[1]
                self.growth.pop(r, None)
                stale_groups.add(self.row_group[r])
            elif tag == "busy":
                self.group_busy.discard(entry[1])
            elif tag == "slot":
                self.budget.give_back(entry[1])
            elif tag == "rows":
                start = entry[1]
                assert isinstance(start, int)
                for g in set(self.row_group[start:]):
                    shelf = self.shelves[RowKind.NEW][g]
                    if shelf is not None:
                        shelf.truncate(start)
                for lst in (self.free, self.row_group, self.row_node, self.row_kind, self.growable,
                            self.reqs, self.maxes, self.growns, self.debts, self.placed):
                    del lst[start:]
                self.n = start
        assert self.n == n
        self.new_pods = new_pods
        for g in stale_groups:
            if g < 0:
                continue
            for per_kind in self.shelves:
                shelf = per_kind[g]
                if shelf is not None:
                    shelf.stale = True
            gs = self.grow_shelves[g]
            if gs is not None:
                gs.stale = True
        self.version += 1

    # helpers -----------------------------------------------------------------------------------
    def pod(self, row: int) -> PodState | None:
        return self.snapshot.pods[row] if row < self.n_pods else None

    def group(self, g: int) -> GroupState:
        return self.snapshot.groups[g]

    def replicas_now(self, g: int) -> int:
        """The group's replicas including what this plan adds."""
        added = self.new_pods.get(g)
        return self.snapshot.groups[g].replicas + (added.replicas if added else 0)

    def max_replicas(self, g: int) -> int:
        h = self.group_policy[g].horizontal
        return h.max_replicas if h.max_replicas is not None else self.snapshot.groups[g].max_replicas

    def min_replicas(self, g: int) -> int:
        h = self.group_policy[g].horizontal
        return h.min_replicas if h.min_replicas is not None else self.snapshot.groups[g].min_replicas

    def priority(self, g: int) -> int:
        p = self.group_policy[g].horizontal.priority
        return p if p is not None else self.snapshot.groups[g].priority

    def stocked_out(self, g: int) -> bool:
        """Marked stocked out by the daemon (backoff not over), or a pod of the group is stuck
        Unschedulable past the stockout time right now (fresh evidence: fall back at once)."""
        until = self.snapshot.groups[g].stocked_out_until
        return (until is not None and until > self.now) or g in self.stuck_groups

    def mark_placed(self, rows: Iterable[int]) -> None:
        journal = self.journal
        for r in rows:
            if journal is not None and not self.placed[r]:
                journal.append(("row", r, list(self.free[r]), list(self.growns[r]), False))
            self.placed[r] = True
            g = self.row_group[r]
            if g >= 0 and g not in self.group_busy:
                self.group_busy.add(g)
                if journal is not None:
                    journal.append(("busy", g))
