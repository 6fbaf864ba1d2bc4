"""Scale out label-matching worker groups for demand that neither free capacity nor growth served.

Groups are tried in the demand's selector order (primary, then each fallback) and, within one
selector, by priority (higher first), then — among groups alike in both — groups without GPUs
first for demand without GPUs, the fewest new pods for the demand and the demand after it, the
smaller pod, then spec order (``scale_out_order``). A group is skipped while it is stocked out (``stocked_out_until``
in the future), when it is at its max replicas, when a new pod could not hold one bundle, and — for
demand without GPUs — when it has GPUs, unless the policy allows it. One replica adds
``numOfHosts`` pods. Demand no group can ever hold is reported infeasible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from autoscaler.actions import Reason
from autoscaler.model import CPU, MEMORY, Demand
from autoscaler.plan.packing import Pending, pack, pending_of
from autoscaler.plan.text import demand_label
from autoscaler.plan.workspace import NewPods, RowKind, Unplaced, Workspace

#: Bundles of an empty shape one pod holds (any number).
_ANY = 1 << 40


def ensure_min_replicas(ws: Workspace) -> None:
    """Groups below their minimum get the missing replicas first, so demand can count on them."""
    for g, group in enumerate(ws.snapshot.groups):
        gp = ws.group_policy[g]
        if not gp.horizontal.enabled or ws.stocked_out(g):
            continue
        target = min(ws.min_replicas(g), ws.max_replicas(g))
        if group.replicas < target:
            add = target - group.replicas
            ws.add_rows(g, add * max(1, group.num_of_hosts))
            entry = ws.new_pods.setdefault(g, NewPods())
            entry.replicas += add
            entry.min_replicas = True


def candidates(ws: Workspace, item: Pending) -> list[tuple[int, int]]:
    """(selector rank, group) in the order groups are tried."""
    return item.chain.order


def new_pods_for(
    ws: Workspace, item: Pending, count: int, exclude: set[int] | None = None, ahead: DemandAhead | None = None
) -> tuple[list[int], list[int], set[Reason]]:
    """Place up to ``count`` bundles on pods this plan adds (capacity already added first).
    ``ahead``: the demand scale-out places after this one (see :func:`scale_out_order`).

    Returns (rows, bundles per row, reasons groups were skipped)."""
    blocked: set[Reason] = set()
    out_rows, out_takes = pack(ws, item, count, exclude=exclude)
    remaining = count - sum(out_takes)
    if remaining == 0:
        return out_rows, out_takes, blocked
    for position, (rank, g) in enumerate(scale_out_order(ws, item, remaining, ahead)):
        if remaining == 0:
            break
        group = ws.group(g)
        if not ws.group_policy[g].horizontal.enabled:
            continue
        if ws.stocked_out(g):
            blocked.add(Reason.STOCKED_OUT)
            continue
        per_pod = _per_pod(ws, g, item)
        if per_pod <= 0:
            continue
        room = ws.max_replicas(g) - ws.replicas_now(g)
        if room <= 0:
            blocked.add(Reason.AT_MAX_REPLICAS)
            continue
        hosts = max(1, group.num_of_hosts)
        pods_needed = remaining if exclude is not None else math.ceil(remaining / per_pod)
        add = min(math.ceil(pods_needed / hosts), room)
        new = ws.add_rows(g, add * hosts)
        entry = ws.new_pods.get(g)
        if entry is None:
            entry = ws.new_pods[g] = NewPods()
        entry.replicas += add
        entry.fallback |= rank > 0 or position > 0
        # the new rows are empty and alike: each takes what one pod holds, in order
        r2, t2 = pack(ws, item, remaining, exclude=exclude, rows=new)
        placed = sum(t2)
        entry.served[item.key] = entry.served.get(item.key, 0) + placed
        if g not in ws.group_busy:
            ws.group_busy.add(g)
            if ws.journal is not None:
                ws.journal.append(("busy", g))
        out_rows += r2
        out_takes += t2
        remaining -= placed
    return out_rows, out_takes, blocked


class DemandAhead:
    """Per group, what the demand scale-out has still to place needs in all, each shape counted in
    every group its selectors allow: what the room a new pod has left can take."""

    __slots__ = ("keys", "need")

    def __init__(self, ws: Workspace, items: list[Pending]) -> None:
        self.keys = len(ws.keys)
        self.need: dict[int, list[int]] = {}
        for item in items:
            if item.remaining > 0:
                self._count(item, 1)

    def leave(self, item: Pending) -> None:
        """``item``'s turn: from here on it is no longer ahead."""
        self._count(item, -1)

    def _count(self, item: Pending, sign: int) -> None:
        for g in item.chain.groups:
            total = self.need.get(g)
            if total is None:
                total = self.need[g] = [0] * self.keys
            for k, v in item.need:
                total[k] += sign * v * item.remaining


def scale_out_order(
    ws: Workspace, item: Pending, remaining: int, ahead: DemandAhead | None = None
) -> list[tuple[int, int]]:
    """The chain's groups as scale-out tries them: selector rank, priority, then — among groups
    alike in both — groups without GPUs first for demand without GPUs (where the policy lets it use
    GPU groups at all), then the fewest new pods for ``remaining`` bundles together with the demand
    ``ahead`` (later shapes fill the room a new pod has left: pods are packed before new ones are
    added), then the smaller pod, then spec order. Spec order alone added eight 2-core pods where
    one 16-core pod of an equally preferred group holds the same demand; a lone small task still
    gets the small pod. Ray's scheduler also picks the node type by how well it packs the pending
    demand, and ranks GPU nodes last for demand without GPUs."""
    chain = item.chain
    if not chain.ties:
        return chain.order
    order = list(chain.order)
    groups = ws.snapshot.groups
    spares_gpus = item.shape[ws.kg] == 0
    has_gpu = ws.group_has_gpu
    later = ahead.need if ahead is not None else {}
    need = item.need
    group_ray = ws.group_ray
    for a, b in chain.ties:
        keyed = []
        for rank_group in order[a:b]:
            g = rank_group[1]
            ray = group_ray[g]
            per_pod = _ANY  # _per_pod, inline: this runs for every group of every tie
            for k, v in need:
                q = ray[k] // v
                if q < per_pod:
                    per_pod = q
            if per_pod > 0:
                pods = -(-remaining // per_pod)
                total = later.get(g)
                if total is not None:
                    for k, v in need:
                        least = -(-(v * remaining + total[k]) // ray[k])
                        if least > pods:
                            pods = least
                hosts = max(1, groups[g].num_of_hosts)
                pods = hosts * -(-pods // hosts)
            else:
                pods = _ANY
            keyed.append((spares_gpus and has_gpu[g], pods, per_pod, g, rank_group))
        keyed.sort()
        order[a:b] = [k[4] for k in keyed]
    return order


def _per_pod(ws: Workspace, g: int, item: Pending) -> int:
    """Bundles of ``item`` one new pod of group ``g`` holds."""
    if not item.need:
        return _ANY
    ray = ws.group_ray[g]
    return min(ray[k] // v for k, v in item.need)


def _largest_node(ws: Workspace, name: str) -> int:
    return max((int(n.allocatable.get(name)) for n in ws.snapshot.nodes), default=0)


def group_potential(ws: Workspace) -> list[list[int]]:
    """(G, K) the largest Ray capacity one pod of each group can ever have: a new pod, grown to the
    policy max (or the largest node when unbounded); zero for groups that can neither scale out nor
    grow."""
    if ws.potential is not None:
        return ws.potential
    out = [list(v) for v in ws.group_ray]
    for g, group in enumerate(ws.snapshot.groups):
        gp = ws.group_policy[g]
        if not gp.vertical.enabled:
            if not gp.horizontal.enabled:
                out[g] = [0] * len(ws.keys)
            continue
        for name in (CPU, MEMORY):
            if gp.can_resize(name):
                bound = getattr(gp.vertical.max_pod, name)
                ceiling = bound if bound is not None else _largest_node(ws, name)
                out[g][ws.kidx[name]] += max(0, ceiling - group.template_requests.get(name))
    ws.potential = out
    return out


def feasible(ws: Workspace, item: Pending) -> bool:
    """Could any matching group ever hold one bundle (a new pod, or a pod grown to its max)?"""
    groups = item.chain.groups
    if not groups or not item.need:
        return bool(groups)
    potential = group_potential(ws)
    return any(all(potential[g][k] >= v for k, v in item.need) for g in groups)


def _blockers(ws: Workspace, item: Pending) -> set[Reason]:
    """Why the groups that could hold a bundle in a new pod did not add one (now)."""
    out: set[Reason] = set()
    for _, g in item.chain.order:
        if not ws.group_policy[g].horizontal.enabled:
            continue
        if _per_pod(ws, g, item) <= 0:
            continue
        if ws.stocked_out(g):
            out.add(Reason.STOCKED_OUT)
        elif ws.replicas_now(g) >= ws.max_replicas(g):
            out.add(Reason.AT_MAX_REPLICAS)
    return out


def unserved_reason(ws: Workspace, item: Pending, blocked: set[Reason]) -> tuple[Reason, Callable[[], str]]:
    """Why ``item`` stays unplaced, decided now (replicas and stockouts as they are at this point of
    the round), and its sentence, written when asked for (see workspace.Unplaced)."""
    blocked = blocked | _blockers(ws, item)
    if not feasible(ws, item):
        reason = Reason.INFEASIBLE_DEMAND
    elif Reason.STOCKED_OUT in blocked:
        reason = Reason.STOCKED_OUT
    elif Reason.AT_MAX_REPLICAS in blocked:
        reason = Reason.AT_MAX_REPLICAS
    else:
        reason = Reason.WAITING_FOR_CAPACITY
    return reason, partial(_unserved_why, reason, item)


def _unserved_why(reason: Reason, item: Pending) -> str:
    what = demand_label(item.demand)
    if reason is Reason.INFEASIBLE_DEMAND:
        return f"no worker group matching {what} can ever hold {item.text} (labels, size, GPU guard or policy)"
    if reason is Reason.STOCKED_OUT:
        return f"the groups that match {what} are stocked out or at their maximum"
    if reason is Reason.AT_MAX_REPLICAS:
        return f"every group that matches {what} is at its maximum replicas"
    return f"{what} fits only by growing pods, and no matching pod can grow now (node room, cooldown, caps)"


def scale_out(ws: Workspace, items: list[Pending]) -> None:
    """Pass 3: new pods for what is left; whatever still remains is reported unserved."""
    row_kind = ws.row_kind
    ahead = DemandAhead(ws, items) if any(i.remaining > 0 and i.chain.ties for i in items) else None
    for item in items:
        if item.remaining <= 0:
            continue
        if ahead is not None:
            ahead.leave(item)
        rows, takes, blocked = new_pods_for(ws, item, item.remaining, ahead=ahead)
        for r, t in zip(rows, takes, strict=True):
            if row_kind[r] == RowKind.NEW:
                item.new_pods += t
            else:
                item.in_place += t
        item.remaining -= sum(takes)
        if item.remaining > 0:
            reason, why = unserved_reason(ws, item, blocked)
            ws.unserved.append(Unplaced(item.demand, item.remaining, reason, why))


def hold_constraints(ws: Workspace) -> None:
    """``request_resources`` bundles must fit the cluster's *total* capacity; add pods if not."""
    if not ws.snapshot.constraints:
        return
    real = ws.free
    n0 = ws.n
    kc, km = ws.kc, ws.km
    totals: list[list[int]] = []
    for r in range(n0):
        pod = ws.pod(r)
        kind = ws.row_kind[r]
        if kind == RowKind.LIVE and pod is not None and pod.ray is not None:
            t = ws.vector(pod.ray.total)
            done = ws.total_delta.get(r)
            if done is not None:
                t[kc] += done[0]
                t[km] += done[1]
            t[kc] += ws.growns[r][0]
            t[km] += ws.growns[r][1] + ws.pressure_grown.get(r, 0)
            totals.append(t)
        elif kind != RowKind.GONE:
            totals.append(list(ws.group_ray[ws.row_group[r]]))
        else:
            totals.append(list(real[r]))
    _use(ws, totals)
    items = [pending_of(ws, c.shape, Demand(c.shape, c.count, c.selectors), c.count) for c in ws.snapshot.constraints]
    for item in items:
        item.prefix = "request_resources "
        _, take = pack(ws, item, item.remaining)
        item.remaining -= sum(take)
    scale_out(ws, [i for i in items if i.remaining > 0])
    # back to free capacity: rows added here are empty new pods
    out = real[:n0] + [list(ws.group_ray[ws.row_group[r]]) for r in range(n0, ws.n)]
    _use(ws, out)  # rows that hold constraints stay "placed": removing them would break the hold


def _use(ws: Workspace, free: list[list[int]]) -> None:
    ws.free = free
    ws.avail.rows = free
    ws.forget_bounds()
