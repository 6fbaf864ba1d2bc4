"""The planner's scratch state for one ``plan()`` call: capacity rows, node room, decisions so far.

Every place Ray work can land is a *row*: a live pod (its Ray ``available``), a pod on its way (not
registered with Ray yet, Pending, or a replica KubeRay has not created: the group's Ray resources),
or a pod this plan adds (same). Rows are numpy arrays over one resource-key axis so the packing
work, which grows with pods × demand shapes, runs vectorised. Node room is Kubernetes-side:
``allocatable − Σ max(spec, allocated, actual)`` minus what this plan has already grown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

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
    QoSClass,
    ResizeState,
    Resources,
    Snapshot,
)
from autoscaler.plan.fitindex import FitIndex
from autoscaler.plan.guards import Budget, in_cooldown
from autoscaler.policy import GroupPolicy, Policy

#: "No bound": large enough for any byte count, small enough that sums never overflow int64.
UNBOUNDED = np.int64(1) << np.int64(60)
#: Rank of a group a selector chain does not match.
NO_MATCH = 1 << 30
#: Column of cpu and memory in the (rows, 2) growth arrays.
RC, RM = 0, 1
GROWABLE = (CPU, MEMORY)


class RowKind(IntEnum):
    LIVE = 0  # raylet registered, pod running: Ray's available capacity
    ARRIVING = 1  # pod exists but raylet not registered yet, or replica not created yet
    NEW = 2  # pod this plan adds
    GONE = 3  # draining, deleting, failed, stuck: no capacity


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


@dataclass
class Workspace:
    snapshot: Snapshot
    policy: Policy
    now: float
    keys: list[str]
    kidx: dict[str, int]
    group_policy: list[GroupPolicy]
    group_ray: np.ndarray  # (G, K) Ray resources of a new pod
    group_has_gpu: np.ndarray  # (G,) bool
    group_ray_list: list[list[int]]  # group_ray as plain ints (one group at a time is cheaper so)
    # rows ------------------------------------------------------------------------------------
    n: int
    n_pods: int  # rows [0, n_pods) are snapshot.pods in order
    avail: np.ndarray  # (cap, K) Ray capacity free now or on its way
    row_group: np.ndarray  # (cap,) group index (-1 unknown)
    row_node: np.ndarray  # (cap,) node index (-1 none)
    row_kind: np.ndarray  # (cap,) RowKind
    growable: np.ndarray  # (cap,) bool: may be grown in place by this plan
    req: np.ndarray  # (cap, 2) current cpu/memory requests
    grow_max: np.ndarray  # (cap, 2) largest cpu/memory request allowed (policy max, key present)
    grown: np.ndarray  # (cap, 2) growth this plan decided (demand, sizing, pressure)
    placed: np.ndarray  # (cap,) bool: demand placed on this row by this plan
    growing: np.ndarray  # (cap,) bool: row has a ``growth`` entry (mirror, for vectorised checks)
    # nodes -------------------------------------------------------------------------------------
    node_index: dict[str, int]
    node_free: np.ndarray  # (N, K) Kubernetes room left
    # decisions ---------------------------------------------------------------------------------
    budget: Budget
    growth: dict[int, Growth] = field(default_factory=dict)
    new_pods: dict[int, NewPods] = field(default_factory=dict)
    reverted: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    actions: list[Action] = field(default_factory=list)  # reverts, shrinks, removals (built directly)
    unserved: list[Unserved] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_busy: set[int] = field(default_factory=set)
    stuck_groups: set[int] = field(default_factory=set)  # groups with a pod stuck past stockoutTime
    _rank_by_id: dict[tuple[int, bool], tuple[tuple[LabelSelector, ...], np.ndarray]] = field(default_factory=dict)
    _rank_cache: dict[tuple[tuple[LabelSelector, ...], bool], np.ndarray] = field(default_factory=dict)
    group_order_cache: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    potential: np.ndarray | None = None  # (G, K) see horizontal.group_potential
    #: (G, K) upper bounds of one row's free / growable capacity per group (quick rejects)
    _free_bound: np.ndarray | None = None
    _grow_bound: np.ndarray | None = None
    _bound_lists: dict[bool, list[list[int]]] = field(default_factory=dict)  # the bounds as lists, by grow?
    _matching_list: dict[int, list[int]] = field(default_factory=dict)  # id(group rank) → matching groups
    #: (id(group rank), grow?) → minimal shapes known not to fit (anything at least as big fails too)
    _failed: dict[tuple[int, bool], list[tuple[int, ...]]] = field(default_factory=dict)
    #: id(group rank array) → (n when computed, row ranks, usable candidates sorted, growable candidates)
    _rows_cache: dict[int, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    _fit_index: dict[int, FitIndex] = field(default_factory=dict)  # id(group rank) → its index
    #: id(group rank) → free + growable capacity of its growable candidates at the last miss
    grow_index: dict[int, FitIndex] = field(default_factory=dict)
    #: some row may have negative free capacity (Ray can report that): packing takes its general path
    maybe_negative: bool = False
    #: bumped whenever some row's free capacity grows (so pruned candidate lists go stale)
    epoch: int = 0
    #: (cap, 2) cpu/memory each row may still grow by, see :meth:`room`; None: recompute all
    _room: np.ndarray | None = None
    _room_stale: set[int] = field(default_factory=set)  # nodes whose rows' room is out of date
    _node_rows: dict[int, list[int]] | None = None  # node → pod rows on it

    # ------------------------------------------------------------------------------------------
    def vector(self, res: Resources) -> np.ndarray:
        out = np.zeros(len(self.keys), dtype=np.int64)
        for k, v in res._items:
            i = self.kidx.get(k)
            if i is not None:
                out[i] = v
        return out

    def fits_keys(self, res: Resources) -> bool:
        return all(k in self.kidx for k in res)

    def group_rank(self, chain: tuple[LabelSelector, ...], shape: np.ndarray) -> np.ndarray:
        """(G,) index of the first selector each group matches (NO_MATCH if none or guarded)."""
        cpu_only = bool(shape[self.kidx[GPU]] == 0)
        key = (chain, cpu_only)
        hit = self._rank_cache.get(key)
        if hit is not None:
            return hit
        groups = self.snapshot.groups
        rank = np.full(len(groups), NO_MATCH, dtype=np.int64)
        for g, group in enumerate(groups):
            if cpu_only and self.group_has_gpu[g] and not self.group_policy[g].allow_cpu_only_on_gpu:
                continue  # CPU-only demand never lands on GPU groups unless the policy allows it
            for i, selector in enumerate(chain):
                if selector.matches(group.labels):
                    rank[g] = i
                    break
        self._rank_cache[key] = rank
        return rank

    def rank_for(self, selectors: tuple[LabelSelector, ...], shape: np.ndarray) -> np.ndarray:
        """:meth:`group_rank` for a demand's ``selectors`` (primary + fallbacks), cached by the
        tuple's identity: hashing a selector chain costs more than the lookup saves otherwise.
        The tuple is kept in the cache, so its id stays unique for the workspace's lifetime."""
        cpu_only = bool(shape[self.kidx[GPU]] == 0)
        hit = self._rank_by_id.get((id(selectors), cpu_only))
        if hit is None:
            rank = self.group_rank(selectors or (ANY_NODE,), shape)
            hit = self._rank_by_id[(id(selectors), cpu_only)] = (selectors, rank)
        return hit[1]

    def row_rank(self, group_rank: np.ndarray) -> np.ndarray:
        """(n,) rank of each row's group."""
        return self._rows_for(group_rank)[1]

    def candidates(self, group_rank: np.ndarray) -> np.ndarray:
        """Usable rows a chain matches, in placement order: live capacity first, then capacity on
        its way, then pods this plan adds; within each, the best selector first, then row order.
        Live first is what Ray does (a task runs now on any node one of its selectors allows), and
        it keeps the plan stable: capacity a scale-out adds is used for what did not fit now."""
        return self._rows_for(group_rank)[2]

    def fit_index(self, group_rank: np.ndarray) -> FitIndex:
        """The chain's :class:`FitIndex` over :meth:`candidates`, rebuilt when rows were added or
        some capacity grew since it was built."""
        hit = self._fit_index.get(id(group_rank))
        if hit is not None and hit.n == self.n and hit.epoch == self.epoch:
            return hit
        idx = self.candidates(group_rank)
        if hit is not None and hit.epoch == self.epoch:
            out = hit.extended(self.avail, idx, self.n)  # only rows were added: keep the blocks before them
        else:
            out = FitIndex.build(self.avail, idx, self.n, self.epoch)
        self._fit_index[id(group_rank)] = out
        return out

    def room(self) -> np.ndarray:
        """(cap, 2) cpu/memory each row may still grow by: ``min(policy max − request − grown,
        node room)``, at least 0 (meaningless for rows that cannot grow). Kept up to date per
        node: growth changes one node's room, so only the rows on that node are recomputed."""
        if self._room is None:
            self._room = np.zeros((self.avail.shape[0], 2), dtype=np.int64)
            rows = np.arange(self.n_pods)
            self._room[rows] = self._room_of(rows)
            self._room_stale.clear()
        elif self._room_stale:
            if self._node_rows is None:
                self._node_rows = {}
                for r, node in enumerate(self.row_node[: self.n_pods].tolist()):
                    self._node_rows.setdefault(node, []).append(r)
            stale = [r for node in sorted(self._room_stale) for r in self._node_rows.get(node, ())]
            self._room_stale.clear()
            if stale:
                rows = np.array(stale, dtype=np.int64)
                self._room[rows] = self._room_of(rows)
        return self._room

    def _room_of(self, rows: np.ndarray) -> np.ndarray:
        cols = [self.kidx[CPU], self.kidx[MEMORY]]
        by_policy = self.grow_max.take(rows, axis=0) - self.req.take(rows, axis=0) - self.grown.take(rows, axis=0)
        by_node = self.node_free.take(self.row_node.take(rows), axis=0)[:, cols]
        return np.maximum(np.minimum(by_policy, by_node), 0)

    def node_changed(self, node: int) -> None:
        """A node's room or a pod's growth on it changed: its rows' :meth:`room` is stale."""
        self._room_stale.add(node)

    def capacity_grew(self) -> None:
        self.epoch += 1

    def growable_candidates(self, group_rank: np.ndarray) -> np.ndarray:
        """Growable rows a chain matches, best selector first, then row order."""
        return self._rows_for(group_rank)[3]

    def _rows_for(self, group_rank: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        # rows only change when a plan adds pods (or a revert makes a row non-growable, which
        # happens before any placement), so the per-chain views are cached until ``n`` changes
        hit = self._rows_cache.get(id(group_rank))
        if hit is not None and hit[0] == self.n:
            return hit
        if hit is not None and hit[0] < self.n:
            return self._extend_rows(group_rank, hit)
        n = self.n
        groups = self.row_group[:n]
        rank = np.where(groups >= 0, group_rank[np.maximum(groups, 0)], NO_MATCH)
        ok = (rank < NO_MATCH) & (self.row_kind[:n] != RowKind.GONE)
        idx = np.flatnonzero(ok)
        idx = idx[np.lexsort((idx, rank[idx], self.row_kind[idx]))]
        grow = np.flatnonzero(ok & self.growable[:n])
        grow = grow[np.lexsort((grow, rank[grow]))]
        out = (n, rank, idx, grow)
        self._rows_cache[id(group_rank)] = out
        return out

    def _extend_rows(
        self, group_rank: np.ndarray, hit: tuple[int, np.ndarray, np.ndarray, np.ndarray]
    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Rows added since: new pods, never growable; re-sorted into placement order."""
        old_n, old_rank, idx, grow = hit
        new = np.arange(old_n, self.n)
        groups = self.row_group[old_n : self.n]
        rank_new = np.where(groups >= 0, group_rank[np.maximum(groups, 0)], NO_MATCH)
        rank = np.concatenate([old_rank, rank_new])
        keep = new[(rank_new < NO_MATCH) & (self.row_kind[old_n : self.n] != RowKind.GONE)]
        if keep.size:
            # only new-pod rows were added and those sort last: re-sort just that tail
            last = idx[-1] if idx.size else -1
            if last >= 0 and self.row_kind[last] == RowKind.NEW and rank[keep].min() >= rank[last] \
                    and (rank[keep][1:] >= rank[keep][:-1]).all():
                idx = np.concatenate([idx, keep])  # they sort after every row there (common: one rank)
            else:
                start = int(np.searchsorted(self.row_kind.take(idx), RowKind.NEW))
                tail = np.concatenate([idx[start:], keep])
                tail = tail[np.lexsort((tail, rank[tail]))]
                idx = np.concatenate([idx[:start], tail])
        out = (self.n, rank, idx, grow)
        self._rows_cache[id(group_rank)] = out
        return out

    def _per_group_max(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.snapshot.groups), len(self.keys)), dtype=np.int64)
        known = self.row_group[rows] >= 0
        np.maximum.at(out, self.row_group[rows][known], values[known])
        return out

    def may_fit(self, item_rank: np.ndarray, shape: np.ndarray, nz: np.ndarray, grow: bool = False) -> bool:
        """False when no row of a matching group can hold one bundle, free (or grown). Cheap: the
        bounds are per group and stay valid while capacity only shrinks; anything that adds
        capacity updates or drops them. Plain lists: G × K is tiny, numpy calls would cost more."""
        if nz.size == 0:
            return True
        groups = self._matching_list.get(id(item_rank))
        if groups is None:
            groups = self._matching_list[id(item_rank)] = np.flatnonzero(item_rank < NO_MATCH).tolist()
        if not groups:
            return False
        bounds = self._bound_lists.get(grow)
        if bounds is None:
            bounds = self._bound_lists[grow] = (self.grow_bound() if grow else self.free_bound()).tolist()
        need = [(k, v) for k, v in zip(nz.tolist(), shape[nz].tolist(), strict=True)]
        for g in groups:
            row = bounds[g]
            for k, v in need:
                if row[k] < v:
                    break
            else:
                return True
        return False

    def known_to_fail(self, group_rank: np.ndarray, shape: tuple[int, ...], grow: bool) -> bool:
        """A shape at least as big as one that already did not fit (capacity has only shrunk since)."""
        for f in self._failed.get((id(group_rank), grow), ()):
            if all(a >= b for a, b in zip(shape, f, strict=True)):
                return True
        return False

    def record_failure(self, group_rank: np.ndarray, shape: tuple[int, ...], grow: bool) -> None:
        fails = self._failed.setdefault((id(group_rank), grow), [])
        fails[:] = [f for f in fails if not all(a >= b for a, b in zip(f, shape, strict=True))]
        fails.append(shape)

    def _forget_free_failures(self) -> None:
        for key in [k for k in self._failed if not k[1]]:
            del self._failed[key]

    def free_bound(self) -> np.ndarray:
        if self._free_bound is None:
            rows = np.flatnonzero(self.usable())
            self._free_bound = self._per_group_max(rows, self.avail[rows])
        return self._free_bound

    def grow_bound(self) -> np.ndarray:
        if self._grow_bound is None:
            rows = np.flatnonzero(self.growable[: self.n])
            values = self.avail[rows].copy()
            cols = [self.kidx[CPU], self.kidx[MEMORY]]
            policy_room = self.grow_max[rows] - self.req[rows] - self.grown[rows]
            node_room = self.node_free[self.row_node[rows]][:, cols]
            values[:, cols] += np.maximum(np.minimum(policy_room, node_room), 0)
            self._grow_bound = self._per_group_max(rows, values)
        return self._grow_bound

    def capacity_added(self, row: int) -> None:
        """A row gained free capacity (sizing headroom): keep the free bound an upper bound."""
        self.capacity_grew()
        self._forget_free_failures()
        if self._free_bound is not None and self.row_group[row] >= 0:
            g = self.row_group[row]
            self._free_bound[g] = np.maximum(self._free_bound[g], self.avail[row])
            self._bound_lists.pop(False, None)

    def forget_bounds(self) -> None:
        self.capacity_grew()
        self._free_bound = None
        self._grow_bound = None
        self._bound_lists.clear()
        self._failed.clear()

    def forbid_growth(self, row: int) -> None:
        self.growable[row] = False
        self._rows_cache.clear()

    def start_growth(self, row: int) -> Growth:
        entry = self.growth[row] = Growth()
        self.growing[row] = True
        return entry

    def usable(self) -> np.ndarray:
        return self.row_kind[: self.n] != RowKind.GONE

    def add_rows(self, group: int, count: int) -> np.ndarray:
        """Append ``count`` new-pod rows for ``group``; returns their indices."""
        need = self.n + count
        if need > self.avail.shape[0]:
            self._grow_capacity(max(need, 2 * self.avail.shape[0]))
        rows = np.arange(self.n, need)
        self.avail[rows] = self.group_ray[group]
        self.row_group[rows] = group
        self.row_node[rows] = -1
        self.row_kind[rows] = RowKind.NEW
        self.growable[rows] = False
        self.n = need
        if self._free_bound is not None:
            self._free_bound[group] = np.maximum(self._free_bound[group], self.group_ray[group])
            self._bound_lists.pop(False, None)
        self._forget_free_failures()
        return rows

    def _grow_capacity(self, cap: int) -> None:
        def grow(a: np.ndarray, fill: object) -> np.ndarray:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        self.avail = grow(self.avail, 0)
        self.row_group = grow(self.row_group, -1)
        self.row_node = grow(self.row_node, -1)
        self.row_kind = grow(self.row_kind, RowKind.GONE)
        self.growable = grow(self.growable, False)
        self.req = grow(self.req, 0)
        self.grow_max = grow(self.grow_max, 0)
        self.grown = grow(self.grown, 0)
        self.placed = grow(self.placed, False)
        self.growing = grow(self.growing, False)
        if self._room is not None:
            self._room = grow(self._room, 0)

    # transactions (gangs are all-or-nothing) ---------------------------------------------------
    def checkpoint(self) -> tuple[object, ...]:
        return (
            self.n, self.avail.copy(), self.row_group.copy(), self.row_node.copy(), self.row_kind.copy(),
            self.growable.copy(), self.req.copy(), self.grow_max.copy(), self.grown.copy(),
            self.placed.copy(), self.growing.copy(), self.node_free.copy(), self.budget.copy(),
            {k: Growth(dict(v.served), list(v.reasons)) for k, v in self.growth.items()},
            {k: NewPods(v.replicas, v.fallback, v.min_replicas, dict(v.served)) for k, v in self.new_pods.items()},
            set(self.group_busy),
        )

    def restore(self, saved: tuple[object, ...]) -> None:
        self._rows_cache.clear()
        self._room = None
        self.forget_bounds()
        (self.n, self.avail, self.row_group, self.row_node, self.row_kind, self.growable, self.req,
         self.grow_max, self.grown, self.placed, self.growing, self.node_free, self.budget, self.growth,
         self.new_pods,
         self.group_busy) = saved  # type: ignore[assignment]

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

    def mark_placed(self, rows: np.ndarray) -> None:
        self.placed[rows] = True
        self.group_busy.update(self.row_group[rows].tolist())
        self.group_busy.discard(-1)


# --------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------


def _keys(snapshot: Snapshot) -> list[str]:
    seen: set[str] = {CPU, MEMORY, GPU}

    def add(res: Resources) -> None:
        seen.update(k for k, _ in res._items)

    for d in (*snapshot.demands, *snapshot.constraints):
        add(d.shape)
    for gang in snapshot.gangs:
        for b in gang.bundles:
            add(b.shape)
    for g in snapshot.groups:
        add(g.ray_resources)
    for p in snapshot.pods:
        if p.ray is not None:
            add(p.ray.total)
    return sorted(seen)


def _stuck(pod: PodState, gp: GroupPolicy, stocked_out: bool, now: float) -> bool:
    """A pod that will not bring capacity: Unschedulable past the stockout time, or its group stocked out."""
    if pod.ray is not None or pod.unschedulable_since is None:
        return False
    return stocked_out or now - pod.unschedulable_since >= gp.horizontal.stockout_time


def _row_kind(pod: PodState, stuck: bool) -> RowKind:
    if pod.deleting or pod.phase in ("Succeeded", "Failed") or stuck:
        return RowKind.GONE
    if pod.ray is None:
        return RowKind.ARRIVING
    if pod.ray.status in ("DRAINING", "DEAD") or pod.phase != "Running":
        return RowKind.GONE
    return RowKind.LIVE


def in_flight_growth(pod: PodState) -> Resources:
    """Capacity an accepted, still running upsize will add to the raylet once it completes."""
    f = pod.in_flight
    if f is None or f.raylet_done:
        return Resources()
    if pod.resize_state in (ResizeState.INFEASIBLE, ResizeState.ERROR):
        return Resources()
    delta = (f.target_requests - f.previous_requests).only(*GROWABLE)
    return Resources.of({k: v for k, v in delta._items if v > 0})


def build(snapshot: Snapshot, policy: Policy, now: float) -> Workspace:
    keys = _keys(snapshot)
    kidx = {k: i for i, k in enumerate(keys)}
    K = len(keys)
    groups = snapshot.groups
    gindex = {g.name: i for i, g in enumerate(groups)}
    gpol = [policy.resolve(g.name) for g in groups]

    def vec(res: Resources) -> np.ndarray:
        out = np.zeros(K, dtype=np.int64)
        for k, v in res._items:
            i = kidx.get(k)
            if i is not None:
                out[i] = v
        return out

    group_ray = np.array([vec(g.ray_resources) for g in groups], dtype=np.int64).reshape(len(groups), K)
    group_has_gpu = np.array([g.has_gpu() for g in groups], dtype=bool)
    stocked = [g.stocked_out_until is not None and g.stocked_out_until > now for g in groups]

    node_index = {n.name: i for i, n in enumerate(snapshot.nodes)}
    # allocatable − used per key, as two matrices: Resources arithmetic per node costs ~10× more
    nodes = snapshot.nodes
    node_free = (np.array([vec(n.allocatable) for n in nodes], dtype=np.int64).reshape(len(nodes), K)
                 - np.array([vec(n.used) for n in nodes], dtype=np.int64).reshape(len(nodes), K))
    node_ok = [n.ready and not n.unschedulable for n in snapshot.nodes]

    pods = snapshot.pods
    P = len(pods)
    to_delete = {name for g in groups for name in g.workers_to_delete}
    existing = [0] * len(groups)
    missing_rows: list[int] = []
    for p in pods:
        g = gindex.get(p.group, -1)
        if g >= 0 and not p.deleting and p.name not in to_delete:
            existing[g] += 1
    stuck_now = {gindex[p.group] for p in pods if p.group in gindex and _stuck(p, gpol[gindex[p.group]], False, now)}
    for g, group in enumerate(groups):
        if not stocked[g] and g not in stuck_now:
            missing_rows.extend([g] * max(0, group.replicas * max(1, group.num_of_hosts) - existing[g]))

    cap = max(16, 2 * (P + len(missing_rows)))
    avail = np.zeros((cap, K), dtype=np.int64)
    row_group = np.full(cap, -1, dtype=np.int64)
    row_node = np.full(cap, -1, dtype=np.int64)
    row_kind = np.full(cap, RowKind.GONE, dtype=np.int8)
    growable = np.zeros(cap, dtype=bool)
    req = np.zeros((cap, 2), dtype=np.int64)
    grow_max = np.zeros((cap, 2), dtype=np.int64)

    budget = Budget(policy.concurrency.per_node, policy.concurrency.per_cluster,
                    counts=np.zeros(len(snapshot.nodes), dtype=np.int64))
    stuck_groups = {
        gindex[p.group] for p in pods
        if p.group in gindex and not p.deleting and _stuck(p, gpol[gindex[p.group]], False, now)
    }
    for r, p in enumerate(pods):
        g = gindex.get(p.group, -1)
        row_group[r] = g
        node = node_index.get(p.node_name or "", -1)
        row_node[r] = node
        req[r] = (p.requests.get(CPU), p.requests.get(MEMORY))
        grow_max[r] = req[r]
        if p.in_flight is not None:
            budget.count_existing(node)
        if g < 0:
            row_kind[r] = RowKind.GONE
            continue
        gp = gpol[g]
        kind = RowKind.GONE if p.name in to_delete else _row_kind(p, _stuck(p, gp, stocked[g], now))
        row_kind[r] = kind
        if kind == RowKind.LIVE:
            assert p.ray is not None
            avail[r] = vec(p.ray.available + in_flight_growth(p) if p.in_flight else p.ray.available)
        elif kind == RowKind.ARRIVING:
            avail[r] = group_ray[g]
        growable[r] = (
            kind == RowKind.LIVE
            and gp.vertical.enabled
            and p.resizable
            and p.qos is not QoSClass.BEST_EFFORT
            and p.in_flight is None
            and p.resize_state is ResizeState.NONE
            and node >= 0
            and node_ok[node]
            and not in_cooldown(p, gp, now)
        )
        for col, name in enumerate(GROWABLE):
            if gp.can_resize(name) and name in p.requests:
                bound = getattr(gp.vertical.max_pod, name)
                grow_max[r, col] = max(req[r, col], bound if bound is not None else int(UNBOUNDED))
    for i, g in enumerate(missing_rows):
        r = P + i
        row_group[r] = g
        row_kind[r] = RowKind.ARRIVING
        avail[r] = group_ray[g]

    return Workspace(
        snapshot=snapshot,
        policy=policy,
        now=now,
        keys=keys,
        kidx=kidx,
        group_policy=gpol,
        group_ray=group_ray,
        group_has_gpu=group_has_gpu,
        group_ray_list=group_ray.tolist(),
        n=P + len(missing_rows),
        n_pods=P,
        avail=avail,
        row_group=row_group,
        row_node=row_node,
        row_kind=row_kind,
        growable=growable,
        req=req,
        grow_max=grow_max,
        grown=np.zeros((cap, 2), dtype=np.int64),
        placed=np.zeros(cap, dtype=bool),
        growing=np.zeros(cap, dtype=bool),
        node_index=node_index,
        node_free=node_free,
        budget=budget,
        stuck_groups=stuck_groups,
        maybe_negative=bool((avail < 0).any()),
    )


def fmt_cpu(milli: int) -> str:
    """Millicores as Kubernetes writes them (``1500m``, ``2``) — fast, for sentences."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def fmt_bytes(n: int) -> str:
    """Bytes with the largest exact binary suffix (``3600Mi``, ``16Gi``) — fast, for sentences."""
    for suffix, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def shape_text(shape: Resources) -> str:
    """``{CPU: 2, memory: 4Gi}`` — how Ray users write a shape."""
    parts = []
    for k, v in shape._items:
        if k == CPU:
            parts.append(f"CPU: {v / 1000:g}")
        elif k == MEMORY:
            parts.append(f"memory: {fmt_bytes(v)}")
        elif k == GPU:
            parts.append(f"GPU: {v / 1000:g}")
        else:
            parts.append(f"{k}: {v / 1000:g}")
    return "{" + ", ".join(parts) + "}"


def demand_label(item: Demand | Gang) -> str:
    if isinstance(item, Gang):
        return f"placement group {item.id} ({item.strategy.value}, {len(item.bundles)} bundles)"
    sel = " or ".join(str(s) for s in item.selectors) if item.selectors else "any node"
    return f"{shape_text(item.shape)} on {sel}"
