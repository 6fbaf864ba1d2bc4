"""The Ray v2 scheduler adapter on small hand-built snapshots (Ray's real scheduler, tiny inputs)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ray.core.generated import common_pb2

from autoscaler.actions import GrowPod, ScaleOut
from autoscaler.model import (
    NODE_GROUP_LABEL,
    Bundle,
    Demand,
    Gang,
    GangStrategy,
    GroupState,
    LabelSelector,
    NodeState,
    PodState,
    QoSClass,
    RayNodeState,
    Resources,
    Snapshot,
)
from autoscaler.peers.ray_request import IPPRSettings, build_request
from autoscaler.peers.ray_scheduler import (
    RayV2Scheduler,
    demand_units,
    overcommitting_resizes,
    stocked_out_launches,
    to_actions,
)
from autoscaler.peers.ray_timed import run_with_time_limit

GiB = 1024**3
CPU4 = Resources.of(cpu=4000, memory=16 * GiB)
L4_POD = Resources.of(cpu=4000, memory=16 * GiB, gpu=1000)
MARKET = "ray.io/market-type"


def group(name: str, ray: Resources, replicas: int, max_replicas: int, **labels: str) -> GroupState:
    return GroupState(
        name=name,
        index=0,
        labels={NODE_GROUP_LABEL: name, **labels},
        replicas=replicas,
        min_replicas=0,
        max_replicas=max_replicas,
        num_of_hosts=1,
        template_requests=ray,
        template_limits=ray,
        ray_resources=ray,
    )


def pod(name: str, g: GroupState, available: Resources, node: str = "n1", size: Resources | None = None) -> PodState:
    size = size or g.ray_resources
    node_id = f"{abs(hash(name)) % 16**8:08x}" * 7
    return PodState(
        name=name,
        namespace="ray",
        group=g.name,
        node_name=node,
        phase="Running",
        qos=QoSClass.GUARANTEED,
        container="ray-worker",
        requests=size,
        limits=size,
        allocated=size,
        actual_requests=size,
        actual_limits=size,
        ray=RayNodeState(
            node_id=node_id,
            instance_id=name,
            node_type=g.name,
            total=size,
            available=available,
            labels={**g.labels, "ray.io/node-id": node_id},
            idle_duration_s=0.0,
            status="RUNNING",
        ),
    )


def snapshot(
    groups: list[GroupState],
    pods: list[PodState],
    demands: list[Demand],
    gangs: tuple[Gang, ...] = (),
    nodes: tuple[NodeState, ...] = (),
) -> Snapshot:
    return Snapshot(
        namespace="ray",
        cluster="c",
        taken_at=1000.0,
        pods=tuple(pods),
        nodes=nodes,
        groups=tuple(groups),
        demands=tuple(demands),
        gangs=gangs,
    )


def sel(**labels: str) -> LabelSelector:
    return LabelSelector.parse(labels)


def test_demand_that_fits_a_running_pod_launches_nothing() -> None:
    cpu = group("cpu", CPU4, replicas=1, max_replicas=5)
    snap = snapshot([cpu], [pod("p1", cpu, available=CPU4)], [Demand(Resources.of(cpu=2000), 2)])
    result = RayV2Scheduler().schedule(snap)
    assert result.launches == {}
    assert result.infeasible_demands == ()
    assert result.served_units(snap) == demand_units(snap) == 2
    assert to_actions(result, snap) == ()


def test_demand_needing_a_new_pod_launches_the_label_matching_group() -> None:
    spot = group("cpu-spot", CPU4, replicas=1, max_replicas=5, **{MARKET: "spot"})
    on_demand = group("cpu-od", CPU4, replicas=1, max_replicas=5, **{MARKET: "on-demand"})
    busy = Resources()
    snap = snapshot(
        [spot, on_demand],
        [pod("s1", spot, busy), pod("o1", on_demand, busy)],
        [Demand(Resources.of(cpu=3000), 3, (sel(**{MARKET: "on-demand"}),))],
    )
    result = RayV2Scheduler().schedule(snap)
    assert result.launches == {"cpu-od": 3}
    scale = [a for a in to_actions(result, snap) if isinstance(a, ScaleOut)]
    assert [(a.group, a.count, a.replicas) for a in scale] == [("cpu-od", 3, 4)]


def test_l4_spot_at_max_falls_back_to_on_demand() -> None:
    spot = group("l4-spot", L4_POD, replicas=1, max_replicas=1, **{MARKET: "spot", "ray.io/accelerator-type": "L4"})
    od = group("l4-od", L4_POD, replicas=0, max_replicas=4, **{MARKET: "on-demand", "ray.io/accelerator-type": "L4"})
    chain = (sel(**{"ray.io/accelerator-type": "L4", MARKET: "spot"}), sel(**{"ray.io/accelerator-type": "L4"}))
    snap = snapshot(
        [spot, od],
        [pod("s1", spot, Resources())],
        [Demand(Resources.of(cpu=1000, gpu=1000), 2, chain), Demand(Resources.of(cpu=1000), 1, (sel(zone="x"),))],
    )
    result = RayV2Scheduler().schedule(snap)
    assert result.launches == {"l4-od": 2}
    # the zone=x demand matches no group: reported infeasible against its own index
    assert result.infeasible_demands == ((1, 1),)
    assert result.served_units(snap) == 2


def test_ippr_on_resizes_an_existing_pod_straight_to_max() -> None:
    cpu = group("cpu", CPU4, replicas=1, max_replicas=5)
    busy = pod("p1", cpu, available=Resources.of(memory=4 * GiB))
    node = NodeState("n1", Resources.of(cpu=32000, memory=128 * GiB), {}, used=CPU4)
    snap = snapshot([cpu], [busy], [Demand(Resources.of(cpu=2000, memory=2 * GiB), 1)], nodes=(node,))

    off = RayV2Scheduler().schedule(snap)
    assert off.launches == {"cpu": 1} and off.resizes == ()

    maximum = Resources.of(cpu=16000, memory=64 * GiB)
    on = RayV2Scheduler(IPPRSettings(max_per_group={"cpu": maximum})).schedule(snap)
    assert on.launches == {}
    [resize] = on.resizes
    assert (resize.pod, resize.cpu, resize.memory) == ("p1", 16000, 64 * GiB)  # the max, not the need
    assert (resize.from_cpu, resize.from_memory) == (4000, 16 * GiB)
    [grow] = to_actions(on, snap)
    assert isinstance(grow, GrowPod)
    assert grow.requests == grow.limits == maximum
    assert overcommitting_resizes(on, snap) == 0

    small_node = NodeState("n1", Resources.of(cpu=8000, memory=32 * GiB), {}, used=CPU4)
    tight = snapshot([cpu], [busy], list(snap.demands), nodes=(small_node,))
    on_tight = RayV2Scheduler(IPPRSettings(max_per_group={"cpu": maximum})).schedule(tight)
    assert overcommitting_resizes(on_tight, tight) == 1  # Ray ignores the node; the kubelet would defer
    aware = RayV2Scheduler(IPPRSettings(max_per_group={"cpu": maximum}, node_aware=True)).schedule(tight)
    assert [(r.cpu, r.memory) for r in aware.resizes] == [(8000, 32 * GiB)]


def test_node_aware_ippr_learns_what_a_shared_node_holds_first_come_first_served() -> None:
    """Two busy pods on one node with room for one of them to grow: Ray's first attempt resizes both
    straight to the maximum (the kubelet defers the second); learning from the kubelet, Ray keeps
    the first, finds no room left for the second, and launches a pod for the rest."""
    cpu = group("cpu", CPU4, replicas=2, max_replicas=5)
    busy = [pod(f"p{i}", cpu, available=Resources()) for i in (1, 2)]
    node = NodeState("n1", Resources.of(cpu=16000, memory=64 * GiB), {}, used=CPU4 + CPU4)
    demand = [Demand(Resources.of(cpu=4000, memory=4 * GiB), 4)]
    snap = snapshot([cpu], busy, demand, nodes=(node,))
    maximum = Resources.of(cpu=12000, memory=48 * GiB)
    first = RayV2Scheduler(IPPRSettings(max_per_group={"cpu": maximum})).schedule(snap)
    assert [(r.pod, r.cpu) for r in first.resizes] == [("p1", 12000), ("p2", 12000)] and first.launches == {}
    assert overcommitting_resizes(first, snap) == 1
    aware = RayV2Scheduler(IPPRSettings(max_per_group={"cpu": maximum}, node_aware=True)).schedule(snap)
    assert overcommitting_resizes(aware, snap) == 0
    assert [(r.pod, r.cpu) for r in aware.resizes] == [("p1", 12000)]  # p2: no room left on n1
    assert aware.launches == {"cpu": 1}


def test_gangs_map_to_pg_constraints_and_infeasible_gangs_come_back() -> None:
    cpu = group("cpu", CPU4, replicas=0, max_replicas=1)
    bundle = Bundle(Resources.of(cpu=3000))
    spread = Gang("aa", GangStrategy.STRICT_SPREAD, (bundle, bundle))  # needs 2 nodes, max 1
    pack = Gang("bb", GangStrategy.STRICT_PACK, (Bundle(Resources.of(cpu=1000)),) * 2)
    snap = snapshot([cpu], [], [], gangs=(spread, pack))
    request, _ = build_request(snap)
    protos = {g.details: g for g in request.gang_resource_requests}
    assert protos["aa:STRICT_SPREAD|PENDING"].requests[0].placement_constraints[0].anti_affinity.label_name == "_PG_aa"
    assert protos["bb:STRICT_PACK|PENDING"].requests[0].placement_constraints[0].affinity.label_name == "_PG_bb"
    result = RayV2Scheduler().schedule(snap)
    assert result.infeasible_gangs == (0,)
    assert result.launches == {"cpu": 1}
    assert result.served_units(snap) == 2


def test_request_carries_selectors_in_order_and_stockouts_as_zero_availability() -> None:
    cpu = group("cpu", CPU4, replicas=0, max_replicas=2)
    out = replace(cpu, name="out", labels={NODE_GROUP_LABEL: "out"}, stocked_out_until=2000.0)
    chain = (sel(zone="a"), sel(zone="!a"))
    snap = snapshot([cpu, out], [], [Demand(Resources.of(cpu=1000), 1, chain), Demand(Resources.of(cpu=500), 1)])
    request, _ = build_request(snap)
    first = request.resource_requests[0].request
    assert [c.label_key for s in first.label_selectors for c in s.label_constraints] == ["zone", "zone"]
    ops = common_pb2.LabelSelectorOperator
    assert [c.operator for s in first.label_selectors for c in s.label_constraints] == [
        ops.LABEL_OPERATOR_IN,
        ops.LABEL_OPERATOR_NOT_IN,
    ]
    assert len(request.resource_requests[1].request.label_selectors) == 1  # [{}] as the GCS reports it
    assert request.cloud_resource_availabilities == {"out": 0.0}
    assert request.node_type_configs["cpu"].labels == {NODE_GROUP_LABEL: "cpu"}


def test_time_limited_run_completes_small_and_reports_a_lower_bound_when_killed() -> None:
    cpu = group("cpu", CPU4, replicas=1, max_replicas=5)
    snap = snapshot([cpu], [pod("p1", cpu, Resources())], [Demand(Resources.of(cpu=2000), 3)])
    done = run_with_time_limit(snap, repeats=2, limit_s=30)
    assert not done.timed_out and len(done.seconds) == 2
    assert done.result is not None and done.result.launches == {"cpu": 2}

    from autoscaler.bench.scenarios import generate

    big = generate(100, 200, seed=3).snapshot  # Ray needs seconds for this
    killed = run_with_time_limit(big, repeats=1, limit_s=0.2)
    assert killed.timed_out and killed.lower_bound_s == pytest.approx(0.2)
    assert killed.seconds == () and killed.result is None


def test_plan_form_carries_actions_and_unserved_demand() -> None:
    cpu = group("cpu", CPU4, replicas=1, max_replicas=2)
    nowhere = Demand(Resources.of(cpu=1000), 2, (sel(zone="x"),))
    snap = snapshot([cpu], [pod("p1", cpu, Resources())], [Demand(Resources.of(cpu=4000), 1), nowhere])
    plan = RayV2Scheduler().plan(snap)
    assert [(a.group, a.count) for a in plan.actions if isinstance(a, ScaleOut)] == [("cpu", 1)]
    [unserved] = plan.unserved
    assert unserved.demand is nowhere and unserved.count == 2


def test_ray_ranks_a_stocked_out_group_last_but_still_launches_there() -> None:
    cpu = group("cpu", CPU4, replicas=0, max_replicas=1)
    out = replace(cpu, name="out", labels={NODE_GROUP_LABEL: "out"}, max_replicas=4, stocked_out_until=2000.0)
    snap = snapshot([cpu, out], [], [Demand(Resources.of(cpu=4000), 2)])
    result = RayV2Scheduler().schedule(snap)
    assert result.launches == {"cpu": 1, "out": 1}
    assert stocked_out_launches(result, snap) == 1


def test_ippr_settings_from_an_rva_policy_share_its_max_pod() -> None:
    from autoscaler.policy import parse_policy

    cpu = group("cpu", CPU4, replicas=1, max_replicas=2)
    gpu = group("gpu", L4_POD, replicas=1, max_replicas=2)
    policy = parse_policy(
        {
            "groups": {
                "*": {"vertical": {"maxPod": {"cpu": "8", "memory": "32Gi"}}},
                "gpu": {"vertical": {"enabled": False}},
            }
        }
    )
    settings = IPPRSettings.from_policy(policy, snapshot([cpu, gpu], [], []))
    assert settings.max_per_group == {"cpu": Resources.of(cpu=8000, memory=32 * GiB)}
