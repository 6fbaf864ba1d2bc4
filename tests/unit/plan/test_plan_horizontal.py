"""Pass 3: scale out label-matching groups in selector order, then priority."""

import dataclasses

from autoscaler.actions import ScaleOut
from tests.planning import demand, group, kinds, node, pod, res, run_plan, snapshot

L4_SPOT = {"acc": "L4", "market": "spot"}
L4 = {"acc": "L4"}


def gpu_groups(**spot_kw: object) -> list:
    return [
        group("l4-spot", cpu=8, mem_gi=32, gpu=1, replicas=0, max_replicas=4, labels={"acc": "L4", "market": "spot"},
              **spot_kw),  # type: ignore[arg-type]
        group("l4-od", cpu=8, mem_gi=32, gpu=1, replicas=0, max_replicas=4, labels={"acc": "L4", "market": "od"}),
        group("a100", cpu=8, mem_gi=32, gpu=1, replicas=0, max_replicas=4, labels={"acc": "A100"}),
    ]


def gpu_demand(count: int = 2) -> object:
    return demand(4, 8, count=count, gpu=1, selectors=(L4_SPOT, L4))


def test_primary_selector_first() -> None:
    snap = snapshot([], [], gpu_groups(), demands=(gpu_demand(),))
    p = run_plan(snap)
    assert kinds(p) == [("ScaleOut", "l4-spot", "DemandNeedsNewPods")]
    assert p.actions[0].count == 2 and p.actions[0].replicas == 2


def test_stocked_out_primary_falls_back_until_backoff_expires() -> None:
    snap = snapshot([], [], gpu_groups(stocked_out_until=10_200.0), demands=(gpu_demand(),))
    assert kinds(run_plan(snap, now=10_000.0)) == [("ScaleOut", "l4-od", "FallbackGroup")]
    assert kinds(run_plan(snap, now=10_300.0)) == [("ScaleOut", "l4-spot", "DemandNeedsNewPods")]


def test_max_replicas_spills_to_fallback() -> None:
    groups = gpu_groups()
    groups[0] = dataclasses.replace(groups[0], max_replicas=1)
    p = run_plan(snapshot([], [], groups, demands=(gpu_demand(3),)))
    assert [(a.group, a.count, a.reason.value) for a in p.actions] == [
        ("l4-spot", 1, "DemandNeedsNewPods"), ("l4-od", 2, "FallbackGroup")]
    capped = run_plan(snapshot([], [], groups, demands=(gpu_demand(3),)),
                      "groups: {l4-od: {horizontal: {maxReplicas: 1}}}")
    assert [a.count for a in capped.actions] == [1, 1]
    assert capped.unserved[0].count == 1 and capped.unserved[0].reason.value == "AtMaxReplicas"


def test_priority_orders_groups_matching_the_same_selector() -> None:
    a = group("a", replicas=0, labels={"pool": "x"}, priority=1)
    b = group("b", replicas=0, labels={"pool": "x"}, priority=5)
    snap = snapshot([], [], [a, b], demands=(demand(1, 1, selectors=({"pool": "x"},)),))
    assert kinds(run_plan(snap))[0][1] == "b"
    assert kinds(run_plan(snap, "groups: {a: {horizontal: {priority: 9}}}"))[0][1] == "a"


def test_among_equally_preferred_groups_the_fewest_new_pods_win() -> None:
    small = group("small", cpu=2, mem_gi=8, replicas=0, max_replicas=10, labels={"pool": "x"})
    medium = group("medium", cpu=4, mem_gi=16, replicas=0, max_replicas=10, labels={"pool": "x"})
    big = group("big", cpu=8, mem_gi=32, replicas=0, max_replicas=10, labels={"pool": "x"})
    snap = snapshot([], [], [small, medium, big], demands=(demand(1, 2, count=4, selectors=({"pool": "x"},)),))
    # spec order alone would add two 2-core pods; one 4-core pod holds the four bundles, and of the
    # groups that need one pod the smaller pod wins
    assert [(a.group, a.count) for a in run_plan(snap).actions] == [("medium", 1)]
    one = snapshot([], [], [small, medium, big], demands=(demand(1, 2, count=1, selectors=({"pool": "x"},)),))
    assert [(a.group, a.count) for a in run_plan(one).actions] == [("small", 1)]  # equal pods: smaller
    # priority and selector order still come first
    assert [(a.group, a.count) for a in run_plan(snap, "groups: {small: {horizontal: {priority: 1}}}").actions] == [
        ("small", 2)]
    pinned = snapshot([], [], [small, medium, big], demands=(demand(1, 2, count=4, selectors=(
        {"ray.io/node-group": "small"}, {"pool": "x"})),))
    assert [(a.group, a.count) for a in run_plan(pinned).actions] == [("small", 2)]
    # the demand after it counts too: two shapes of four 1-core bundles fill one 8-core pod, where
    # picking for the first alone adds a 4-core pod for each
    pool = ({"pool": "x"},)
    two = snapshot([], [], [small, medium, big], demands=(demand(1, 2, count=4, selectors=pool),
                                                          demand(1, 1, count=4, selectors=pool)))
    assert [(a.group, a.count) for a in run_plan(two).actions] == [("big", 1)]


def test_demand_without_gpus_prefers_groups_without_gpus_even_when_allowed_on_gpu_groups() -> None:
    cpu = group("cpu", cpu=16, mem_gi=64, replicas=0, max_replicas=10, labels={"pool": "x"})
    a100 = group("a100", cpu=10, mem_gi=80, gpu=1, replicas=0, max_replicas=10, labels={"pool": "x"})
    snap = snapshot([], [], [a100, cpu], demands=(demand(4, 40, count=2, selectors=({"pool": "x"},)),))
    allowed = 'groups: {"*": {allowCpuOnlyOnGpu: true}}'
    # two 16-core pods rather than one A100 pod, though the A100 pod would hold both bundles
    assert [(a.group, a.count) for a in run_plan(snap, allowed).actions] == [("cpu", 2)]
    gpu_demand = snapshot([], [], [a100, cpu], demands=(demand(4, 40, count=2, gpu=1, selectors=({"pool": "x"},)),))
    assert [(a.group, a.count) for a in run_plan(gpu_demand).actions] == [("a100", 2)]


def test_num_of_hosts_and_replica_totals() -> None:
    g = group("tpu", cpu=4, mem_gi=16, replicas=1, max_replicas=3, num_of_hosts=2)
    pods = [pod("h0", g, "n1", in_use=res(4, 16)), pod("h1", g, "n2", in_use=res(4, 16))]
    snap = snapshot(pods, [node("n1", 4, 16), node("n2", 4, 16)], [g], demands=(demand(4, 4, count=3),))
    (scale,) = run_plan(snap).actions
    assert isinstance(scale, ScaleOut)
    assert (scale.count, scale.replicas) == (4, 3)  # 2 replicas of 2 hosts; 3 bundles need 2 replicas


def test_min_replicas() -> None:
    g = group("cpu", replicas=0, min_replicas=2)
    p = run_plan(snapshot([], [], [g]))
    assert kinds(p) == [("ScaleOut", "cpu", "MinReplicas")] and p.actions[0].replicas == 2
    p = run_plan(snapshot([], [], [g], demands=(demand(2, 2, count=3),)))
    assert p.actions[0].replicas == 2  # the minimum pods already hold the demand
    assert run_plan(snapshot([], [], [g]), "groups: {cpu: {horizontal: {minReplicas: 1}}}").actions[0].replicas == 1


def test_cpu_only_demand_never_scales_gpu_groups() -> None:
    snap = snapshot([], [], gpu_groups(), demands=(demand(2, 2),))
    p = run_plan(snap)
    assert p.actions == () and p.unserved[0].reason.value == "InfeasibleDemand"
    ok = run_plan(snap, 'groups: {"*": {allowCpuOnlyOnGpu: true}}')
    assert kinds(ok) == [("ScaleOut", "l4-spot", "DemandNeedsNewPods")]


def test_infeasible_demand_is_reported_not_retried() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=0)
    snap = snapshot([], [node("n1", 16, 64)], [g], demands=(
        demand(64, 1), demand(1, 1, selectors=({"zone": "nowhere"},)), demand(1, 0, tpu=1)))
    p = run_plan(snap, 'groups: {"*": {vertical: {maxPod: {cpu: "8"}}}}')
    assert p.actions == ()
    assert [u.reason.value for u in p.unserved] == ["InfeasibleDemand"] * 3
    # bigger than a new pod but within the policy max: feasible by growth, so it waits, not infeasible
    p = run_plan(dataclasses.replace(snap, demands=(demand(6, 1),)), 'groups: {"*": {vertical: {maxPod: {cpu: "8"}}}}')
    assert p.unserved[0].reason.value == "WaitingForCapacity"


def test_horizontal_disabled() -> None:
    g = group("cpu", replicas=0)
    p = run_plan(snapshot([], [], [g], demands=(demand(1, 1),)), "groups: {cpu: {horizontal: {enabled: false}}}")
    assert p.actions == () and p.unserved


def test_request_resources_constraints_hold_total_capacity() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=1)
    snap = snapshot([pod("a", g, "n1", in_use=res(4, 16))], [node("n1", 4, 16)], [g],
                    constraints=(demand(4, 16, count=3),))
    (scale,) = run_plan(snap).actions
    assert (scale.group, scale.count) == ("cpu", 2)  # busy or not, 3 pods' worth must exist
