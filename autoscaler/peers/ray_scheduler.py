"""Run Ray 2.60's v2 ``ResourceDemandScheduler`` on an rva snapshot and read its decisions.

    ray = RayV2Scheduler(IPPRSettings(max_per_group={"cpu-m": Resources.of(cpu=16000, memory=64 * GiB)}))
    result = ray.schedule(snapshot)          # RaySchedule: launches, IPPR resizes, infeasible demand
    actions = to_actions(result, snapshot)   # the same decisions as rva ScaleOut / GrowPod actions

``RayV2Scheduler(None)`` is Ray's horizontal autoscaler; with ``IPPRSettings`` it is Ray with its
alpha in-place pod resize. ``RaySchedule`` is plain picklable data (indices into the snapshot), so a
time-limited run in a child process (:mod:`autoscaler.peers.ray_timed`) can hand it back.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ray.autoscaler.v2.scheduler import ResourceDemandScheduler, SchedulingReply

from autoscaler.actions import Action, GrowPod, Plan, Reason, ScaleOut, Unserved
from autoscaler.model import CPU, MEMORY, PodState, Resources, Snapshot
from autoscaler.peers.ray_request import IPPRSettings, RequestIndex, build_request

__all__ = [
    "IPPRSettings",
    "PodResize",
    "RaySchedule",
    "RayV2Scheduler",
    "demand_units",
    "kubelet_caps",
    "learn_from_kubelet",
    "to_actions",
    "to_plan",
]


@dataclass(frozen=True, slots=True)
class PodResize:
    """One IPPR decision: resize a pod's container 0 to ``cpu`` millicores / ``memory`` bytes.

    The values are what Ray writes into the limits (or the requests when no limit is set).
    """

    pod: str
    group: str
    cpu: int
    memory: int
    from_cpu: int
    from_memory: int


@dataclass(frozen=True, slots=True)
class RaySchedule:
    """Ray's decisions for one snapshot, in rva terms."""

    launches: Mapping[str, int] = field(default_factory=dict)  # group → new pods (Ray nodes)
    resizes: tuple[PodResize, ...] = ()
    #: (index into ``snapshot.demands``, how many of its requests Ray found infeasible)
    infeasible_demands: tuple[tuple[int, int], ...] = ()
    infeasible_gangs: tuple[int, ...] = ()  # indices into ``snapshot.gangs``
    constraints_infeasible: bool = False
    terminations: int = 0
    schedule_s: float = 0.0  # wall time of ``ResourceDemandScheduler.schedule`` alone

    @property
    def new_pods(self) -> int:
        return sum(self.launches.values())

    def unserved_units(self, snapshot: Snapshot) -> int:
        """Requests Ray cannot place: infeasible task/actor requests plus bundles of infeasible gangs."""
        return sum(c for _, c in self.infeasible_demands) + sum(
            len(snapshot.gangs[i].bundles) for i in self.infeasible_gangs
        )

    def served_units(self, snapshot: Snapshot) -> int:
        return demand_units(snapshot) - self.unserved_units(snapshot)


def demand_units(snapshot: Snapshot) -> int:
    """Pending demand counted in requests: each task/actor and each gang bundle is one unit."""
    return sum(d.count for d in snapshot.demands) + sum(len(g.bundles) for g in snapshot.gangs)


class RayV2Scheduler:
    """Ray's own v2 scheduler as a peer: ``None`` settings = horizontal only, else IPPR on."""

    def __init__(self, ippr: IPPRSettings | None = None) -> None:
        self.ippr = ippr

    def plan(self, snapshot: Snapshot, now: float | None = None) -> Plan:
        """Ray's decisions as an rva :class:`Plan` (what ``rva simulate --policy horizontal|ray-ippr`` runs)."""
        return to_plan(self.schedule(snapshot, now), snapshot)

    def schedule(self, snapshot: Snapshot, now: float | None = None) -> RaySchedule:
        """Ray's decisions; with ``node_aware`` IPPR, once it has learned from the kubelet what the
        nodes hold (see :func:`learn_from_kubelet`; ``schedule_s`` is the last pass's time)."""
        return learn_from_kubelet(snapshot, self.ippr, lambda ippr: self._once(snapshot, ippr, now))

    @staticmethod
    def _once(snapshot: Snapshot, ippr: IPPRSettings | None, now: float | None) -> RaySchedule:
        request, index = build_request(snapshot, ippr, now=now)
        started = time.perf_counter()
        reply = ResourceDemandScheduler().schedule(request)
        elapsed = time.perf_counter() - started
        return read_reply(reply, index, snapshot, elapsed)


#: Scheduling passes at most while Ray learns pods' room from the kubelet (each pass can only cap
#: more pods, and a capped pod's resize always fits).
LEARNING_PASSES = 5


def learn_from_kubelet(
    snapshot: Snapshot, ippr: IPPRSettings | None, once: Callable[[IPPRSettings | None], RaySchedule]
) -> RaySchedule:
    """Schedule; when IPPR is ``node_aware``, let the kubelet answer the resizes (admitted in pod
    order, as :func:`overcommitting_resizes` counts them): each one its node cannot hold gets the
    suggested maximum the ``Deferred`` message gives Ray (the pod's size plus what its node has
    left), and Ray schedules again with it — what Ray's IPPR provider does over a few loops."""
    result = once(ippr)
    if ippr is None or not ippr.node_aware:
        return result
    for _ in range(LEARNING_PASSES - 1):
        caps = kubelet_caps(result, snapshot)
        if not caps:
            break
        ippr = dataclasses.replace(ippr, caps={**ippr.caps, **caps})
        result = once(ippr)
    return result


def kubelet_caps(result: RaySchedule, snapshot: Snapshot) -> dict[str, tuple[int, int]]:
    """Suggested maxima (cpu millicores, memory bytes, as limits) for the resizes in ``result`` whose
    nodes cannot hold them, resizes admitted in pod order; empty when every resize fits."""
    pods = {p.name: p for p in snapshot.pods}
    free = {n.name: n.free() for n in snapshot.nodes}
    caps: dict[str, tuple[int, int]] = {}
    for r in result.resizes:
        pod = pods[r.pod]
        room = free.get(pod.node_name or "")
        if room is None:
            continue
        grow = Resources.of({
            CPU: max(_grown(pod, CPU, r.cpu)[0] - pod.requests.get(CPU), 0),
            MEMORY: max(_grown(pod, MEMORY, r.memory)[0] - pod.requests.get(MEMORY), 0),
        })
        if grow.fits_in(room):
            free[pod.node_name or ""] = room - grow
            continue
        left_cpu, left_mem = max(room.get(CPU), 0), max(room.get(MEMORY), 0)
        caps[r.pod] = (r.from_cpu + min(left_cpu, grow.get(CPU)), r.from_memory + min(left_mem, grow.get(MEMORY)))
        free[pod.node_name or ""] = room - Resources.of({CPU: min(left_cpu, grow.get(CPU)),
                                                         MEMORY: min(left_mem, grow.get(MEMORY))})
    return caps


def read_reply(reply: SchedulingReply, index: RequestIndex, snapshot: Snapshot, elapsed: float) -> RaySchedule:
    launches: Counter[str] = Counter()
    for launch in reply.to_launch:
        launches[launch.instance_type] += launch.count

    pods = {p.name: p for p in snapshot.pods}
    resizes = []
    for status in reply.to_ippr:
        pod = pods.get(status.cloud_instance_id)
        resizes.append(
            PodResize(
                pod=status.cloud_instance_id,
                group=pod.group if pod is not None else "",
                cpu=round(status.desired_cpu * 1000),
                memory=int(status.desired_memory),
                from_cpu=round(status.current_cpu * 1000),
                from_memory=int(status.current_memory),
            )
        )

    # Infeasible requests come back one per task (ungrouped); match them by content.
    missing: Counter[bytes] = Counter(
        r.SerializeToString(deterministic=True) for r in reply.infeasible_resource_requests
    )
    infeasible: list[tuple[int, int]] = []
    for i, key in enumerate(index.demand_keys):
        take = min(missing[key], snapshot.demands[i].count)
        if take:
            infeasible.append((i, take))
            missing[key] -= take
    gang_at = {details: i for i, details in enumerate(index.gang_details)}
    return RaySchedule(
        launches=dict(sorted(launches.items())),
        resizes=tuple(sorted(resizes, key=lambda r: r.pod)),
        infeasible_demands=tuple(infeasible),
        infeasible_gangs=tuple(sorted(gang_at[g.details] for g in reply.infeasible_gang_resource_requests)),
        constraints_infeasible=bool(reply.infeasible_cluster_resource_constraints),
        terminations=len(reply.to_terminate),
        schedule_s=elapsed,
    )


def _grown(pod: PodState, name: str, target: int) -> tuple[int, int | None]:
    """Ray's patch rule: the limit goes to the target and the request keeps the limit−request gap."""
    limit = pod.limits.get(name)
    if limit:
        return target - (limit - pod.requests.get(name)), target
    return target, None


def to_actions(result: RaySchedule, snapshot: Snapshot) -> tuple[Action, ...]:
    """Ray's decisions as rva actions (``GrowPod`` per IPPR resize, ``ScaleOut`` per launched group)."""
    pods = {p.name: p for p in snapshot.pods}
    groups = {g.name: g for g in snapshot.groups}
    actions: list[Action] = []
    for r in result.resizes:
        pod = pods[r.pod]
        requests, limits = dict(pod.requests), dict(pod.limits)
        for name, target in ((CPU, r.cpu), (MEMORY, r.memory)):
            requests[name], limit = _grown(pod, name, target)
            if limit is not None:
                limits[name] = limit
        actions.append(
            GrowPod(
                pod=r.pod,
                requests=Resources.of(requests),
                limits=Resources.of(limits),
                reason=Reason.DEMAND_FITS_IN_PLACE,
                why=f"Ray IPPR resizes {r.pod} to its group maximum ({r.cpu}m CPU, {r.memory} bytes)",
            )
        )
    for name, count in result.launches.items():
        group = groups[name]
        hosts = max(group.num_of_hosts, 1)
        replicas = -(-count // hosts)  # Ray counts hosts; KubeRay replicas are multi-host units
        actions.append(
            ScaleOut(
                group=name,
                count=count,
                replicas=group.replicas + replicas,
                reason=Reason.DEMAND_NEEDS_NEW_PODS,
                why=f"Ray's v2 scheduler launches {count} node(s) of {name}",
            )
        )
    return tuple(actions)


def to_plan(result: RaySchedule, snapshot: Snapshot) -> Plan:
    """:func:`to_actions` plus what Ray could not place, as ``Unserved`` (reason ``InfeasibleDemand``)."""
    unserved = [
        Unserved(snapshot.demands[i], count, Reason.INFEASIBLE_DEMAND, "Ray's v2 scheduler found no node for it")
        for i, count in result.infeasible_demands
    ]
    unserved += [
        Unserved(snapshot.gangs[i], 1, Reason.INFEASIBLE_DEMAND, "Ray's v2 scheduler cannot place this gang")
        for i in result.infeasible_gangs
    ]
    notes = ("Ray: the cluster resource constraint is infeasible",) if result.constraints_infeasible else ()
    return Plan(actions=to_actions(result, snapshot), unserved=tuple(unserved), notes=notes)


def stocked_out_launches(result: RaySchedule, snapshot: Snapshot, now: float | None = None) -> int:
    """New pods Ray puts in groups the snapshot marks stocked out (they would stay Pending).

    Ray only ranks such groups last; rva skips them until the backoff expires.
    """
    now = snapshot.taken_at if now is None else now
    out = {g.name for g in snapshot.groups if g.stocked_out_until is not None and g.stocked_out_until > now}
    return sum(n for name, n in result.launches.items() if name in out)


def overcommitting_resizes(result: RaySchedule, snapshot: Snapshot) -> int:
    """How many of Ray's resizes its nodes cannot hold (the kubelet would answer Deferred/Infeasible).

    Ray sizes straight to the group maximum without looking at the node; rva never plans these.
    Resizes on one node are counted in order against the node's shrinking free allocatable.
    """
    pods = {p.name: p for p in snapshot.pods}
    free = {n.name: n.free() for n in snapshot.nodes}
    bad = 0
    for r in result.resizes:
        pod = pods[r.pod]
        room = free.get(pod.node_name or "")
        if room is None:
            continue
        grow = Resources.of(
            {
                CPU: max(_grown(pod, CPU, r.cpu)[0] - pod.requests.get(CPU), 0),
                MEMORY: max(_grown(pod, MEMORY, r.memory)[0] - pod.requests.get(MEMORY), 0),
            }
        )
        if grow.fits_in(room):
            free[pod.node_name or ""] = room - grow
        else:
            bad += 1
    return bad
