"""One snapshot turned into the planner's rows (see :mod:`.workspace`), once per plan: :class:`Base`.

:func:`prepare` reads the snapshot once per plan; :meth:`Base.workspace` hands a fresh workspace to a
planning round, and :meth:`Base.derived` the workspace of the same snapshot with a plan already
carried out (the settle round), without building a projected snapshot pod by pod.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from autoscaler.actions import GrowPod, Plan, RemovePod, RevertResize, ScaleOut, ShrinkPod
from autoscaler.model import (
    CPU,
    GPU,
    MEMORY,
    LabelSelector,
    PodState,
    QoSClass,
    ResizeState,
    Resources,
    Snapshot,
    memory_debt,
    ray_capacity,
)
from autoscaler.plan.guards import Budget
from autoscaler.plan.workspace import GROWABLE, UNBOUNDED, Chain, Chains, RowKind, Workspace
from autoscaler.policy import GroupPolicy, Policy


def _keys(snapshot: Snapshot) -> list[str]:
    seen: set[str] = {CPU, MEMORY, GPU}
    for d in (*snapshot.demands, *snapshot.constraints):
        seen.update(k for k, _ in d.shape._items)
    for gang in snapshot.gangs:
        for b in gang.bundles:
            seen.update(k for k, _ in b.shape._items)
    for g in snapshot.groups:
        seen.update(k for k, _ in g.ray_resources._items)
    for p in snapshot.pods:
        if p.ray is not None:
            seen.update(k for k, _ in p.ray.total._items)
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
    if f.ray_memory is not None and MEMORY in delta:  # what the plan gave Ray, not the limit's change
        delta = Resources.of({**dict(delta._items), MEMORY: f.ray_memory})
    return Resources.of({k: v for k, v in delta._items if v > 0})


@dataclass
class Base:
    """One snapshot turned into rows before any decision (see the module docstring)."""

    snapshot: Snapshot
    policy: Policy
    now: float
    keys: list[str]
    kidx: dict[str, int]
    gindex: dict[str, int]
    group_policy: list[GroupPolicy]
    group_ray: list[list[int]]
    group_has_gpu: list[bool]
    stocked: list[bool]
    node_index: dict[str, int]
    nfree: list[list[int]]
    node_ok: list[bool]
    to_delete: set[str]
    # per pod (rows [0, P))
    free: list[list[int]]
    row_group: list[int]
    row_node: list[int]
    row_kind: list[int]
    growable: list[bool]
    reqs: list[list[int]]
    maxes: list[list[int]]
    debts: list[int]
    in_flight_nodes: list[int]  # node of every pod with a resize in flight (budget)
    existing: list[int]  # per group: pods that count toward its replicas
    stuck_now: set[int]
    stuck_groups: set[int]
    floors: list[list[tuple[int, int]]]
    chains: Chains
    demand_vecs: list[list[int]]  # (D, K) the snapshot's demand shapes
    #: the snapshot's demand, largest first, as untouched ``packing.Pending`` items (sorted once per plan)
    demand_order: list[Any] | None = None
    _pod_index: dict[str, int] | None = None

    def vec(self, res: Resources) -> list[int]:
        out = [0] * len(self.keys)
        kidx = self.kidx
        for k, v in res._items:
            i = kidx.get(k)
            if i is not None:
                out[i] = v
        return out

    def _accounted(self, p: PodState) -> list[int]:
        """:meth:`PodState.accounted` as a vector: max of desired, allocated and actual requests."""
        out = self.vec(p.requests) if p.resize_state is not ResizeState.INFEASIBLE else [0] * len(self.keys)
        for res in (p.allocated, p.actual_requests):
            for k, v in res._items:
                i = self.kidx.get(k)
                if i is not None and v > out[i]:
                    out[i] = v
        return out

    def pod_index(self) -> dict[str, int]:
        if self._pod_index is None:
            self._pod_index = {p.name: r for r, p in enumerate(self.snapshot.pods)}
        return self._pod_index

    def workspace(self) -> Workspace:
        return self._workspace(self.snapshot, [list(a) for a in self.free], list(self.row_kind), list(self.growable),
                               [list(a) for a in self.reqs], [list(a) for a in self.maxes], list(self.debts),
                               [list(a) for a in self.nfree], self.in_flight_nodes, self.existing, set(), {},
                               self.stuck_groups)

    def _grow_max(self, g: int, req: list[int], pod: PodState) -> list[int]:
        out = list(req)
        gp = self.group_policy[g]
        for col, name in enumerate(GROWABLE):
            if gp.can_resize(name) and name in pod.requests:
                bound = getattr(gp.vertical.max_pod, name)
                out[col] = max(req[col], bound if bound is not None else UNBOUNDED)
        return out

    def derived(self, applied: Plan) -> Workspace:
        """The workspace of the snapshot once ``applied`` is carried out: resizes done (counted as
        in flight for the concurrency caps, the raylet already at the new size), new replicas on
        their way, removed pods gone. The same rows :func:`build` would give for the projected
        snapshot (see :mod:`autoscaler.plan.projection`), without building that snapshot; and
        ``Workspace.regrowable``: the rows ``applied`` grows that may grow (see vertical.grow_further)."""
        pods = self.snapshot.pods
        index = self.pod_index()
        free = [list(a) for a in self.free]
        row_kind = list(self.row_kind)
        growable = list(self.growable)
        reqs = [list(a) for a in self.reqs]
        maxes = [list(a) for a in self.maxes]
        debts = list(self.debts)
        nfree = [list(a) for a in self.nfree]
        in_flight_nodes = list(self.in_flight_nodes)
        existing = list(self.existing)
        frozen: set[int] = set()
        total_delta: dict[int, list[int]] = {}
        replicas = {g.name: g.replicas for g in self.snapshot.groups}
        stuck_groups = set(self.stuck_groups)
        deleted: set[int] = set()
        kc, km = self.kidx[CPU], self.kidx[MEMORY]
        regrowable: list[int] = []
        for a in applied.actions:
            if isinstance(a, GrowPod | ShrinkPod | RevertResize):
                r = index.get(a.pod)
                if r is None:
                    continue
                p = pods[r]
                g = self.row_group[r]
                node = self.row_node[r]
                new_req = [a.requests.get(CPU), a.requests.get(MEMORY)]
                delta = [new_req[0] - p.requests.get(CPU), new_req[1] - p.requests.get(MEMORY)]
                if p.in_flight is None:
                    in_flight_nodes.append(node)
                reqs[r] = new_req
                if g >= 0:
                    maxes[r] = self._grow_max(g, new_req, p)
                if isinstance(a, GrowPod) and growable[r]:
                    regrowable.append(r)
                growable[r] = False
                frozen.add(r)
                if isinstance(a, GrowPod | ShrinkPod) and a.ray_memory is not None:
                    # Ray's memory changes by what the plan says, not by the limit's change
                    delta = [delta[0], a.ray_memory]
                    if p.ray is not None and g >= 0:
                        debts[r] = memory_debt(p.ray.total.get(MEMORY) + a.ray_memory,
                                               ray_capacity(a.requests, a.limits).get(MEMORY),
                                               self.group_policy[g].vertical.memory_reserve)
                total_delta[r] = delta
                if row_kind[r] == RowKind.LIVE and p.ray is not None:
                    f = self.vec(p.ray.available)
                    f[kc] += delta[0]
                    f[km] += delta[1]
                    free[r] = f
                if node >= 0:
                    nf = nfree[node]
                    before = self._accounted(p)
                    after = self.vec(a.requests)
                    for k in range(len(nf)):
                        nf[k] += before[k] - after[k]
            elif isinstance(a, ScaleOut):
                replicas[a.group] = a.replicas
            elif isinstance(a, RemovePod):
                r = index.get(a.pod)
                if a.group in replicas:
                    replicas[a.group] = a.replicas
                if r is None:
                    continue
                p = pods[r]
                frozen.add(r)
                deleted.add(r)
                g = self.row_group[r]
                if g >= 0 and not p.deleting and p.name not in self.to_delete:
                    existing[g] -= 1
                row_kind[r] = RowKind.GONE
                free[r] = [0] * len(self.keys)
                growable[r] = False
                node = self.row_node[r]
                if node >= 0 and not p.deleting:
                    nf = nfree[node]
                    before = self._accounted(p)
                    for k in range(len(nf)):
                        nf[k] += before[k]
        if deleted:
            stuck_groups = {
                self.gindex[p.group] for r, p in enumerate(pods)
                if p.group in self.gindex and not p.deleting and r not in deleted
                and _stuck(p, self.group_policy[self.gindex[p.group]], False, self.now)
            }
        groups = tuple(
            g if replicas[g.name] == g.replicas else dataclasses.replace(g, replicas=replicas[g.name])
            for g in self.snapshot.groups
        )
        snapshot = self.snapshot if all(a is b for a, b in zip(groups, self.snapshot.groups, strict=True)) \
            else dataclasses.replace(self.snapshot, groups=groups)
        ws = self._workspace(snapshot, free, row_kind, growable, reqs, maxes, debts, nfree, in_flight_nodes,
                             existing, frozen, total_delta, stuck_groups)
        ws.regrowable = regrowable
        return ws

    def _workspace(
        self, snapshot: Snapshot, free: list[list[int]], row_kind: list[int], growable: list[bool],
        reqs: list[list[int]], maxes: list[list[int]], debts: list[int], nfree: list[list[int]],
        in_flight_nodes: list[int],
        existing: list[int], frozen: set[int], total_delta: dict[int, list[int]], stuck_groups: set[int],
    ) -> Workspace:
        P = len(snapshot.pods)
        row_group = list(self.row_group)
        row_node = list(self.row_node)
        for g, group in enumerate(snapshot.groups):
            if not self.stocked[g] and g not in self.stuck_now:
                missing = max(0, group.replicas * max(1, group.num_of_hosts) - existing[g])
                for _ in range(missing):
                    free.append(list(self.group_ray[g]))
                    row_group.append(g)
                    row_node.append(-1)
                    row_kind.append(RowKind.ARRIVING)
                    growable.append(False)
                    reqs.append([0, 0])
                    maxes.append([0, 0])
                    debts.append(0)
        n = len(free)
        budget = Budget(self.policy.concurrency.per_node, self.policy.concurrency.per_cluster)
        for node in in_flight_nodes:
            budget.count_existing(node)
        return Workspace(
            snapshot=snapshot,
            policy=self.policy,
            now=self.now,
            keys=self.keys,
            kidx=self.kidx,
            group_policy=self.group_policy,
            group_ray=self.group_ray,
            group_has_gpu=self.group_has_gpu,
            n=n,
            n_pods=P,
            free=free,
            row_group=row_group,
            row_node=row_node,
            row_kind=row_kind,
            growable=growable,
            reqs=reqs,
            maxes=maxes,
            growns=[[0, 0] for _ in range(n)],
            debts=debts,
            placed=[False] * n,
            node_index=self.node_index,
            nfree=nfree,
            budget=budget,
            chains=self.chains,
            floors=self.floors,
            frozen=frozen,
            total_delta=total_delta,
            stuck_groups=set(stuck_groups),
        )


def _floors(
    sources: list[tuple[list[int], tuple[LabelSelector, ...]]], chains: Chains, kg: int, groups: int
) -> list[list[tuple[int, int]]]:
    """Per group, (key, amount) of the least of every shape whose selectors may put it there: a row
    with less of some key than this can never hold a bundle this plan places."""
    least: dict[int, tuple[Chain, list[int]]] = {}
    for v, selectors in sources:
        chain = chains.get(selectors, v[kg] == 0)
        hit = least.get(id(chain))
        if hit is None:
            least[id(chain)] = (chain, list(v))
        else:
            hit[1][:] = [a if a < b else b for a, b in zip(hit[1], v, strict=True)]
    per_group: list[list[int] | None] = [None] * groups
    for chain, v in least.values():
        for g in chain.groups:
            f = per_group[g]
            per_group[g] = list(v) if f is None else [a if a < b else b for a, b in zip(f, v, strict=True)]
    return [[(k, x) for k, x in enumerate(f) if x > 0] if f is not None else [] for f in per_group]


def prepare(snapshot: Snapshot, policy: Policy, now: float) -> Base:
    """The rows of one snapshot before any decision (:func:`build` hands out a workspace of them)."""
    keys = _keys(snapshot)
    kidx = {k: i for i, k in enumerate(keys)}
    K = len(keys)
    groups = snapshot.groups
    gindex = {g.name: i for i, g in enumerate(groups)}
    gpol = [policy.resolve(g.name) for g in groups]

    def vec(res: Resources) -> list[int]:
        out = [0] * K
        for k, v in res._items:
            i = kidx.get(k)
            if i is not None:
                out[i] = v
        return out

    group_ray = [vec(g.ray_resources) for g in groups]
    group_has_gpu = [g.has_gpu() for g in groups]
    stocked = [g.stocked_out_until is not None and g.stocked_out_until > now for g in groups]

    chains = Chains(groups, group_has_gpu, gpol)
    demand_vecs = [vec(d.shape) for d in snapshot.demands]
    sources = list(zip(demand_vecs, (d.selectors for d in snapshot.demands), strict=True))
    sources += [(vec(d.shape), d.selectors) for d in snapshot.constraints]
    sources += [(vec(b.shape), b.selectors) for gang in snapshot.gangs for b in gang.bundles]
    nodes = snapshot.nodes
    node_index = {n.name: i for i, n in enumerate(nodes)}
    nfree = []
    for n in nodes:
        a, u = vec(n.allocatable), vec(n.used)
        nfree.append([x - y for x, y in zip(a, u, strict=True)])
    node_ok = [n.ready and not n.unschedulable for n in nodes]

    pods = snapshot.pods
    to_delete = {name for g in groups for name in g.workers_to_delete}
    existing = [0] * len(groups)
    stuck_now: set[int] = set()
    stuck_groups: set[int] = set()
    free: list[list[int]] = []
    row_group: list[int] = []
    row_node: list[int] = []
    row_kind: list[int] = []
    growable: list[bool] = []
    reqs: list[list[int]] = []
    maxes: list[list[int]] = []
    debts: list[int] = []
    in_flight_nodes: list[int] = []
    zeros = [0] * K
    reserves = [gp.vertical.memory_reserve for gp in gpol]
    vertical_ok = [gp.vertical.enabled for gp in gpol]
    bounds = [
        [
            (getattr(gp.vertical.max_pod, name) if getattr(gp.vertical.max_pod, name) is not None else UNBOUNDED)
            if gp.can_resize(name) else None
            for name in GROWABLE
        ]
        for gp in gpol
    ]
    stockout_time = [gp.horizontal.stockout_time for gp in gpol]
    cooldown = [gp.vertical.cooldown for gp in gpol]
    not_resize = ResizeState.NONE
    best_effort = QoSClass.BEST_EFFORT
    for p in pods:
        g = gindex.get(p.group, -1)
        node = node_index.get(p.node_name or "", -1)
        rq = dict(p.requests._items)
        req = [rq.get(CPU, 0), rq.get(MEMORY, 0)]
        reqs.append(req)
        row_group.append(g)
        row_node.append(node)
        flight = p.in_flight
        if flight is not None:
            in_flight_nodes.append(node)
        if g < 0:
            row_kind.append(RowKind.GONE)
            free.append(list(zeros))
            growable.append(False)
            maxes.append(list(req))
            debts.append(0)
            continue
        ray = p.ray
        if not p.deleting and p.name not in to_delete:
            existing[g] += 1
        # _stuck(): Unschedulable past the stockout time (or the group is stocked out), no raylet
        waiting = ray is None and p.unschedulable_since is not None
        stuck = waiting and now - p.unschedulable_since >= stockout_time[g]  # type: ignore[operator]
        if stuck:
            stuck_now.add(g)
            if not p.deleting:
                stuck_groups.add(g)
        if p.name in to_delete:
            kind = RowKind.GONE
        else:  # _row_kind()
            if p.deleting or p.phase in ("Succeeded", "Failed") or (waiting and (stuck or stocked[g])):
                kind = RowKind.GONE
            elif ray is None:
                kind = RowKind.ARRIVING
            elif ray.status in ("DRAINING", "DEAD") or p.phase != "Running":
                kind = RowKind.GONE
            else:
                kind = RowKind.LIVE
        row_kind.append(kind)
        if kind == RowKind.LIVE:
            assert ray is not None
            f = list(zeros)
            for k, v in ray.available._items:
                i = kidx.get(k)
                if i is not None:
                    f[i] = v
            if flight is not None:
                for k, v in in_flight_growth(p)._items:
                    i = kidx.get(k)
                    if i is not None:
                        f[i] += v
            free.append(f)
            limit_mem = p.limits.get(MEMORY)
            debts.append(memory_debt(ray.total.get(MEMORY), limit_mem or req[1], reserves[g]))
            last = p.last_resized_at
            growable.append(
                vertical_ok[g]
                and p.resizable
                and p.qos is not best_effort
                and flight is None
                and p.resize_state is not_resize
                and node >= 0
                and node_ok[node]
                and not (last is not None and now - last < cooldown[g])
            )
        else:
            free.append(list(group_ray[g]) if kind == RowKind.ARRIVING else list(zeros))
            growable.append(False)
            debts.append(0)
        mx = list(req)
        for col, bound in enumerate(bounds[g]):
            if bound is not None and GROWABLE[col] in rq:
                mx[col] = max(req[col], bound)
        maxes.append(mx)
    return Base(
        snapshot=snapshot, policy=policy, now=now, keys=keys, kidx=kidx, gindex=gindex, group_policy=gpol,
        group_ray=group_ray, group_has_gpu=group_has_gpu, stocked=stocked, node_index=node_index, nfree=nfree,
        node_ok=node_ok, to_delete=to_delete, free=free, row_group=row_group, row_node=row_node,
        row_kind=row_kind, growable=growable, reqs=reqs, maxes=maxes, debts=debts, in_flight_nodes=in_flight_nodes,
        existing=existing, stuck_now=stuck_now, stuck_groups=stuck_groups,
        floors=_floors(sources, chains, kidx[GPU], len(groups)), chains=chains, demand_vecs=demand_vecs,
    )


def build(snapshot: Snapshot, policy: Policy, now: float) -> Workspace:
    return prepare(snapshot, policy, now).workspace()
