"""Translate an rva :class:`Snapshot` into the ``SchedulingRequest`` Ray 2.60's v2 autoscaler builds.

The mapping follows what the KubeRay autoscaler v2 feeds its scheduler
(``ray/autoscaler/v2/autoscaler.py``, ``instance_manager/cloud_providers/kuberay``):

* each worker group → ``NodeTypeConfig`` (Ray resources of a new pod, the group's ``labels:``,
  ``min/maxReplicas × numOfHosts``, ``priority``). rva's groups carry ``ray.io/node-group=<name>``;
  Ray only sees it when users write it into ``labels:``, which we assume so both see the same labels;
* each worker pod whose raylet registered → a ``RAY_RUNNING`` instance with its GCS totals,
  availability and labels; a pod still starting → an ``ALLOCATED`` instance (counted at template
  size, as Ray does for pending nodes); deleting pods and dead/draining raylets are left out;
* pending demand → ``ResourceRequestByCount`` with the selector chain as ``label_selectors``
  (primary then fallbacks; no selector is ``[{}]``, exactly as the GCS reports it);
* gangs → ``GangResourceRequest`` with the GCS's ``_PG_<id>`` affinity (STRICT_PACK) or
  anti-affinity (STRICT_SPREAD) and per-bundle selectors in ``bundle_selectors`` (Ray reads only the
  first one, so bundle fallbacks are passed but ignored, as in Ray);
* ``request_resources`` constraints → one ``ClusterResourceConstraint``;
* stocked-out groups → availability score 0 (Ray ranks them last but may still pick them);
* with IPPR on: ``IPPRSpecs`` per group (min = template limits-or-requests, max from the options) and
  an ``IPPRStatus`` per running pod built as ``ippr_provider._get_ippr_status_from_pod`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ray.autoscaler.v2.instance_manager.config import NodeTypeConfig
from ray.autoscaler.v2.scheduler import SchedulingRequest
from ray.autoscaler.v2.schema import AutoscalerInstance, IPPRGroupSpec, IPPRSpecs, IPPRStatus
from ray.core.generated import autoscaler_pb2, common_pb2, instance_manager_pb2

from autoscaler.model import (
    CPU,
    MEMORY,
    Demand,
    Gang,
    GangStrategy,
    GroupState,
    LabelOperator,
    LabelSelector,
    PodState,
    ResizeState,
    Resources,
    Snapshot,
)
from autoscaler.policy import Policy

_OPERATOR = {
    LabelOperator.IN: common_pb2.LabelSelectorOperator.LABEL_OPERATOR_IN,
    LabelOperator.NOT_IN: common_pb2.LabelSelectorOperator.LABEL_OPERATOR_NOT_IN,
}
#: kubelet resize state → the lower-cased status Ray's IPPR provider keeps.
_K8S_RESIZE_STATUS = {
    ResizeState.NONE: None,
    ResizeState.DEFERRED: "deferred",
    ResizeState.INFEASIBLE: "infeasible",
    ResizeState.IN_PROGRESS: "inprogress",
    ResizeState.ERROR: "error",
}
#: Ray's prefix for the synthetic placement-group label (``kPlacementGroupConstraintKeyPrefix``).
PG_LABEL_PREFIX = "_PG_"


@dataclass(frozen=True, slots=True)
class IPPRSettings:
    """Ray IPPR as a ``ray.io/ippr`` annotation would configure it.

    ``max_per_group`` maps a group to its ``max-cpu``/``max-memory`` (canonical units); groups not
    listed have no IPPR. Ray resizes straight to that maximum without looking at the node; it only
    learns a pod's real room from the kubelet's ``Deferred``/``Infeasible`` message
    (``suggested-max-*``, see ``ippr_provider._apply_resize_suggestion``). ``caps`` holds such
    learned maxima (pod → cpu millicores, memory bytes, as limits); ``node_aware`` asks
    :class:`~autoscaler.peers.ray_scheduler.RayV2Scheduler` to learn them the way Ray does —
    schedule, let the kubelet defer the resizes the nodes cannot hold (admitted first come, first
    served), schedule again with the suggestions — so Ray, like rva, plans no resize a node
    cannot hold. Off by default: Ray as it plans on its first attempt.
    """

    max_per_group: Mapping[str, Resources] = field(default_factory=dict)
    resize_timeout_s: int = 60
    node_aware: bool = False
    caps: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @staticmethod
    def from_policy(policy: Policy, snapshot: Snapshot, node_aware: bool = False) -> IPPRSettings:
        """Ray IPPR with rva's per-group ``vertical.maxPod`` (groups without both bounds get no IPPR).

        This is what ``rva simulate --policy ray-ippr`` and the benchmark compare against, so both
        autoscalers share one maximum per group.
        """
        maxima: dict[str, Resources] = {}
        timeout = 60
        for g in snapshot.groups:
            vertical = policy.resolve(g.name).vertical
            top = vertical.max_pod
            if vertical.enabled and top.cpu is not None and top.memory is not None:
                maxima[g.name] = top.resources()
                timeout = int(vertical.resize_timeouts.deferred)
        return IPPRSettings(max_per_group=maxima, resize_timeout_s=timeout, node_aware=node_aware)


@dataclass(frozen=True, slots=True)
class RequestIndex:
    """How to map Ray's reply back to the snapshot: proto keys → demand / gang indices."""

    demand_keys: tuple[bytes, ...]  # serialized ResourceRequest per snapshot.demands entry
    gang_details: tuple[str, ...]  # GangResourceRequest.details per snapshot.gangs entry


def label_selector_proto(selector: LabelSelector) -> common_pb2.LabelSelector:
    proto = common_pb2.LabelSelector()
    for c in selector.constraints:
        proto.label_constraints.add(label_key=c.key, operator=_OPERATOR[c.operator], label_values=c.values)
    return proto


def resource_request(
    shape: Resources,
    selectors: tuple[LabelSelector, ...],
    constraint: autoscaler_pb2.PlacementConstraint | None = None,
) -> autoscaler_pb2.ResourceRequest:
    req = autoscaler_pb2.ResourceRequest(resources_bundle=shape.to_ray())
    req.label_selectors.extend(label_selector_proto(s) for s in selectors)
    if constraint is not None:
        req.placement_constraints.append(constraint)
    return req


def demand_request(demand: Demand) -> autoscaler_pb2.ResourceRequestByCount:
    return autoscaler_pb2.ResourceRequestByCount(
        request=resource_request(demand.shape, demand.selector_chain()), count=demand.count
    )


def gang_request(gang: Gang) -> autoscaler_pb2.GangResourceRequest:
    label = PG_LABEL_PREFIX + gang.id
    constraint: autoscaler_pb2.PlacementConstraint | None = None
    if gang.strategy is GangStrategy.STRICT_PACK:
        constraint = autoscaler_pb2.PlacementConstraint(
            affinity=autoscaler_pb2.AffinityConstraint(label_name=label, label_value="")
        )
    elif gang.strategy is GangStrategy.STRICT_SPREAD:
        constraint = autoscaler_pb2.PlacementConstraint(
            anti_affinity=autoscaler_pb2.AntiAffinityConstraint(label_name=label, label_value="")
        )
    proto = autoscaler_pb2.GangResourceRequest(details=f"{gang.id}:{gang.strategy.value}|PENDING")
    # Legacy field: no label selectors (the GCS puts them only in bundle_selectors).
    proto.requests.extend(resource_request(b.shape, (), constraint) for b in gang.bundles)
    # One BundleSelector per fallback level; bundles without selectors carry none (as the GCS sends them).
    levels = max((len(b.selectors) for b in gang.bundles), default=0) or 1
    for level in range(levels):
        chosen = proto.bundle_selectors.add()
        for b in gang.bundles:
            chain = b.selectors[min(level, len(b.selectors) - 1) :][:1] if b.selectors else ()
            chosen.resource_requests.append(resource_request(b.shape, chain, constraint))
    return proto


def node_type_config(group: GroupState) -> NodeTypeConfig:
    hosts = max(group.num_of_hosts, 1)
    return NodeTypeConfig(
        name=group.name,
        min_worker_nodes=group.min_replicas * hosts,
        max_worker_nodes=group.max_replicas * hosts,
        priority=group.priority,
        resources=group.ray_resources.to_ray(),
        labels=dict(group.labels),
    )


def _ray_node(pod: PodState, group: GroupState) -> autoscaler_pb2.NodeState | None:
    ray = pod.ray
    if ray is None or ray.status in ("DEAD", "DRAINING"):
        return None
    status = autoscaler_pb2.NodeStatus.IDLE if ray.status == "IDLE" else autoscaler_pb2.NodeStatus.RUNNING
    try:
        node_id = bytes.fromhex(ray.node_id)
    except ValueError:
        node_id = ray.node_id.encode()
    return autoscaler_pb2.NodeState(
        node_id=node_id,
        instance_id=pod.name,
        ray_node_type_name=group.name,
        total_resources=ray.total.to_ray(),
        available_resources=ray.available.to_ray(),
        labels={**group.labels, **ray.labels},
        idle_duration_ms=int(ray.idle_duration_s * 1000),
        status=status,
    )


def autoscaler_instance(pod: PodState, group: GroupState) -> AutoscalerInstance | None:
    """A worker pod as the v2 instance manager would track it (None when Ray would not schedule on it)."""
    if pod.deleting or pod.phase in ("Succeeded", "Failed"):
        return None
    im = instance_manager_pb2.Instance(
        instance_id=pod.name,
        cloud_instance_id=pod.name,
        instance_type=group.name,
        node_kind=instance_manager_pb2.NodeKind.WORKER,
    )
    node = _ray_node(pod, group)
    if node is None:
        if pod.ray is not None:  # dead or draining raylet
            return None
        im.status = instance_manager_pb2.Instance.ALLOCATED
        return AutoscalerInstance(cloud_instance_id=pod.name, im_instance=im)
    im.status = instance_manager_pb2.Instance.RAY_RUNNING
    im.node_id = pod.ray.node_id if pod.ray is not None else ""
    return AutoscalerInstance(cloud_instance_id=pod.name, ray_node=node, im_instance=im)


def _limit_or_request(limits: Resources, requests: Resources, name: str) -> int:
    # Ray's ``_resource_value``: the limit when set, else the request.
    return limits.get(name) or requests.get(name)


def ippr_group_spec(group: GroupState, maximum: Resources, timeout_s: int) -> IPPRGroupSpec:
    min_cpu = _limit_or_request(group.template_limits, group.template_requests, CPU)
    min_mem = _limit_or_request(group.template_limits, group.template_requests, MEMORY)
    return IPPRGroupSpec(
        min_cpu=min_cpu / 1000,
        max_cpu=max(maximum.get(CPU), min_cpu) / 1000,
        min_memory=min_mem,
        max_memory=max(maximum.get(MEMORY), min_mem),
        resize_timeout=timeout_s,
    )


def ippr_status(pod: PodState, spec: IPPRGroupSpec, cap: tuple[int, int] | None = None) -> IPPRStatus:
    """The IPPR status Ray's provider builds for ``pod``; ``cap``: suggested maxima it learned
    (cpu millicores, memory bytes, as limit-or-request values)."""
    current_cpu = _limit_or_request(pod.actual_limits, pod.actual_requests, CPU)
    current_mem = _limit_or_request(pod.actual_limits, pod.actual_requests, MEMORY)
    status = IPPRStatus(
        cloud_instance_id=pod.name,
        spec=spec,
        current_cpu=current_cpu / 1000,
        current_memory=current_mem,
        desired_cpu=_limit_or_request(pod.limits, pod.requests, CPU) / 1000,
        desired_memory=_limit_or_request(pod.limits, pod.requests, MEMORY),
        resizing_at=int(pod.in_flight.started_at) if pod.in_flight is not None else None,
        k8s_resize_status=_K8S_RESIZE_STATUS[pod.resize_state],
        raylet_id=pod.ray.node_id if pod.ray is not None else None,
    )
    if cap is not None:
        status.suggested_max_cpu = min(spec.max_cpu, cap[0] / 1000)
        status.suggested_max_memory = min(spec.max_memory, cap[1])
    return status


def build_request(
    snapshot: Snapshot, ippr: IPPRSettings | None = None, *, now: float | None = None
) -> tuple[SchedulingRequest, RequestIndex]:
    """The ``SchedulingRequest`` Ray's v2 autoscaler would build from this snapshot."""
    now = snapshot.taken_at if now is None else now
    groups = {g.name: g for g in snapshot.groups}
    instances: list[AutoscalerInstance] = []
    for pod in snapshot.pods:
        group = groups.get(pod.group)
        inst = autoscaler_instance(pod, group) if group is not None else None
        if inst is not None:
            instances.append(inst)

    unavailable = {
        g.name: 0.0 for g in snapshot.groups if g.stocked_out_until is not None and g.stocked_out_until > now
    }
    demand_requests = [demand_request(d) for d in snapshot.demands]
    gang_requests = [gang_request(g) for g in snapshot.gangs]
    constraints: list[autoscaler_pb2.ClusterResourceConstraint] = []
    if snapshot.constraints:
        constraints.append(
            autoscaler_pb2.ClusterResourceConstraint(
                resource_requests=[demand_request(d) for d in snapshot.constraints]
            )
        )

    request = SchedulingRequest(
        # rva does not terminate pods for config drift; keep Ray from doing it either.
        disable_launch_config_check=True,
        node_type_configs={g.name: node_type_config(g) for g in snapshot.groups},
        resource_requests=demand_requests,
        gang_resource_requests=gang_requests,
        cluster_resource_constraints=constraints,
        current_instances=instances,
        cloud_resource_availabilities=dict(unavailable),
        recoverable_resource_availabilities=dict(unavailable),
    )
    if ippr is not None:
        specs = {
            name: ippr_group_spec(groups[name], maximum, ippr.resize_timeout_s)
            for name, maximum in ippr.max_per_group.items()
            if name in groups
        }
        request.ippr_specs = IPPRSpecs(groups=specs)
        request.ippr_statuses = {
            pod.name: ippr_status(pod, specs[pod.group], ippr.caps.get(pod.name))
            for pod in snapshot.pods
            if pod.group in specs and pod.ray is not None and not pod.deleting
        }
    index = RequestIndex(
        demand_keys=tuple(r.request.SerializeToString(deterministic=True) for r in demand_requests),
        gang_details=tuple(g.details for g in gang_requests),
    )
    return request, index
