"""Pass 2: grow label-matching pods in place, bounded by policy max and node room."""

import dataclasses

from autoscaler.actions import GrowPod
from autoscaler.model import QoSClass, Resources
from tests.planning import GI, MI, apply_plan, demand, group, kinds, node, pod, res, run_plan, snapshot

MAX8 = 'groups: {"*": {vertical: {maxPod: {cpu: "8", memory: 32Gi}}}}'


def busy_cluster(node_cpu: float = 16, **kw: object) -> object:
    g = group("cpu", cpu=4, mem_gi=16, replicas=1, **kw)  # type: ignore[arg-type]
    return g, snapshot([pod("a", g, "n1", in_use=res(4, 4))], [node("n1", node_cpu, 64)], [g])


def test_grows_just_enough_rounded_to_quanta_plus_headroom() -> None:
    _, snap = busy_cluster()
    snap = dataclasses.replace(snap, demands=(demand(1.5, 1, count=2),))
    p = run_plan(snap, MAX8)
    (grow,) = p.actions
    assert isinstance(grow, GrowPod) and grow.reason.value == "DemandFitsInPlace"
    # needs 3 CPUs; +10 % headroom = 3.3 → 7.3 cores (100m quanta); memory was free already
    assert grow.requests == Resources.of(cpu=7300, memory=16 * GI)
    assert grow.limits == grow.requests  # Guaranteed: limits move with requests
    assert "2× {CPU: 1.5, memory: 1Gi}" in grow.why


def test_step_and_to_max_sizing() -> None:
    _, snap = busy_cluster()
    snap = dataclasses.replace(snap, demands=(demand(1, 0, count=1),))
    step = run_plan(snap, 'groups: {"*": {vertical: {maxPod: {cpu: "12"}, sizing: {mode: step}}}}')
    assert step.actions[0].requests["cpu"] == 8000  # 4 × 2
    to_max = run_plan(snap, 'groups: {"*": {vertical: {maxPod: {cpu: "12"}, sizing: {mode: to-max}}}}')
    assert to_max.actions[0].requests["cpu"] == 12000
    unbounded = run_plan(snap, 'groups: {"*": {vertical: {sizing: {mode: to-max}}}}')
    assert unbounded.actions[0].requests["cpu"] == 16000  # the whole node


def test_never_above_policy_max_then_scale_out() -> None:
    _, snap = busy_cluster()
    snap = dataclasses.replace(snap, demands=(demand(1, 0, count=6),))
    p = run_plan(snap, MAX8)
    grow, scale = p.actions
    assert grow.requests["cpu"] == 8000  # 4 bundles in place (max 8)
    assert (scale.group, scale.count) == ("cpu", 1)  # the other 2 on a new pod


def test_node_room_bounds_growth_and_pods_share_it() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=2)
    pods = [pod("a", g, "n1", in_use=res(4, 4)), pod("b", g, "n1", in_use=res(4, 4))]
    snap = snapshot(pods, [node("n1", 12, 64)], [g], demands=(demand(3, 0, count=2), demand(2, 0, count=1)))
    p = run_plan(snap)
    grown = [a for a in p.actions if isinstance(a, GrowPod)]
    total = sum(a.requests["cpu"] for a in grown) + sum(
        x.requests["cpu"] for x in pods if x.name not in {a.pod for a in grown}
    )
    assert total <= 12000  # never overcommit the node
    # the 4 free CPUs hold one 3-CPU bundle (+ headroom); the rest needs new pods
    assert sum(a.requests["cpu"] - 4000 for a in grown) == 3300
    assert kinds(p)[-1] == ("ScaleOut", "cpu", "DemandNeedsNewPods")


def test_burstable_keeps_gap_and_gpu_is_never_resized() -> None:
    g = group("gpu", cpu=8, mem_gi=32, gpu=1, replicas=1)
    size = res(8, 32, gpu=1)
    lim = Resources.of(cpu=10_000, memory=40 * GI, gpu=1000)
    p0 = pod("a", g, "n1", size=size, limits=lim, qos=QoSClass.BURSTABLE, in_use=res(8, 8, gpu=1))
    snap = snapshot([p0], [node("n1", 32, 128)], [g], demands=(demand(2, 0, count=1),))
    (grow,) = run_plan(snap, "groups: {gpu: {allowCpuOnlyOnGpu: true}}").actions
    assert grow.requests["gpu"] == 1000 and grow.limits["gpu"] == 1000
    assert grow.limits["cpu"] - grow.requests["cpu"] == 2000  # gap kept
    assert grow.limits["memory"] - grow.requests["memory"] == 8 * GI
    assert set(grow.requests) == set(p0.requests) and set(grow.limits) == set(p0.limits)


def test_demand_needing_a_gpu_that_is_busy_does_not_grow() -> None:
    g = group("gpu", cpu=8, mem_gi=32, gpu=1, replicas=1, max_replicas=1)
    p0 = pod("a", g, "n1", size=res(8, 32, gpu=1), in_use=res(1, 1, gpu=1))
    snap = snapshot([p0], [node("n1", 32, 128)], [g], demands=(demand(1, 0, count=1, gpu=1),))
    p = run_plan(snap)
    assert p.actions == () and p.unserved[0].reason.value == "AtMaxReplicas"


def test_cooldown_and_disabled_vertical_fall_back_to_scale_out() -> None:
    _, snap = busy_cluster()
    cooled = dataclasses.replace(snap, pods=(dataclasses.replace(snap.pods[0], last_resized_at=9_990.0),),
                                 demands=(demand(1, 0),))
    assert kinds(run_plan(cooled)) == [("ScaleOut", "cpu", "DemandNeedsNewPods")]
    plain = dataclasses.replace(snap, demands=(demand(1, 0),))
    assert kinds(run_plan(plain, 'groups: {"*": {vertical: {enabled: false}}}'))[0][0] == "ScaleOut"
    assert kinds(run_plan(plain, 'groups: {cpu: {vertical: {resources: [memory]}}}'))[0][0] == "ScaleOut"


def test_cpu_only_demand_does_not_grow_gpu_pods() -> None:
    g = group("gpu", cpu=8, mem_gi=32, gpu=1, replicas=1)
    p0 = pod("a", g, "n1", size=res(8, 32, gpu=1), in_use=res(8, 8))
    snap = snapshot([p0], [node("n1", 32, 128)], [g], demands=(demand(2, 0),))
    p = run_plan(snap)
    assert p.actions == () and p.unserved[0].reason.value == "InfeasibleDemand"
    allowed = run_plan(snap, "groups: {gpu: {allowCpuOnlyOnGpu: true}}")
    assert kinds(allowed) == [("GrowPod", "a", "DemandFitsInPlace")]


def test_per_node_concurrency_cap() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=3, max_replicas=3)
    pods = [pod(f"p{i}", g, "n1", in_use=res(4, 4)) for i in range(3)]
    snap = snapshot(pods, [node("n1", 64, 256)], [g], demands=(demand(4, 0, count=3),))
    p = run_plan(snap, "concurrency: {perNode: 1}\ngroups: {'*': {vertical: {maxPod: {cpu: '8'}}}}")
    assert len([a for a in p.actions if isinstance(a, GrowPod)]) == 1
    assert any("concurrency cap" in n for n in p.notes)
    assert p.unserved and p.unserved[0].reason.value == "AtMaxReplicas"


# -- the memory reserve: Ray never gets the memory its raylet and object store need ----------------
def memory_bound_cluster(ray_mem_gi: float = 16) -> object:
    """A pod of 4 CPU / 16Gi whose Ray has all CPUs free but only 1Gi of memory free."""
    g = group("cpu", cpu=4, mem_gi=16, replicas=1)
    p = pod("a", g, "n1", in_use=res(0, 15))
    if ray_mem_gi != 16:  # a raylet that was told less memory than the limit
        assert p.ray is not None
        total = Resources.of(cpu=4000, memory=int(ray_mem_gi * GI))
        p = dataclasses.replace(p, ray=dataclasses.replace(p.ray, total=total, available=total - res(0, 15)))
    return snapshot([p], [node("n1", 16, 64)], [g], demands=(demand(1, 3, count=1),))


def test_first_memory_growth_pays_the_reserve_ray_is_not_given() -> None:
    from tests.planning import apply_plan

    snap = memory_bound_cluster()
    plan = run_plan(snap, 'groups: {"*": {vertical: {memoryReserve: 512Mi, sizing: {headroom: 0}}}}')
    (grow,) = plan.actions
    assert isinstance(grow, GrowPod) and grow.ray_memory == 2 * GI  # what Ray gains of the 2.5Gi
    # 2Gi more for Ray (1Gi free + 2Gi = the 3Gi asked), plus 512Mi that Ray will not count
    assert grow.requests["memory"] == 18 * GI + 512 * MI
    after = apply_plan(snap, plan, 10_000.0)
    ray = after.pods[0].ray
    assert ray is not None and ray.total["memory"] == 18 * GI  # = the new limit − the reserve
    assert ray.available["memory"] == 3 * GI
    # once the reserve is kept, later growth reaches Ray one for one, and the plan is stable
    assert run_plan(after, 'groups: {"*": {vertical: {memoryReserve: 512Mi, sizing: {headroom: 0}}}}').actions == ()


def test_no_reserve_or_a_raylet_already_below_the_limit_gives_ray_every_byte() -> None:
    plain = run_plan(memory_bound_cluster(), 'groups: {"*": {vertical: {memoryReserve: "0", sizing: {headroom: 0}}}}')
    assert plain.actions[0].requests["memory"] == 18 * GI  # as before reserves: Ray gets the whole limit
    # Ray was started with 15.5Gi of the 16Gi limit: the 512Mi reserve is already kept, so the pod grows
    # by exactly what Ray lacks (0.5Gi free, 3Gi asked: 2.5Gi)
    kept = run_plan(memory_bound_cluster(ray_mem_gi=15.5),
                    'groups: {"*": {vertical: {memoryReserve: 512Mi, sizing: {headroom: 0}}}}')
    assert kept.actions[0].requests["memory"] == 18 * GI + 512 * MI


def test_reserve_counts_against_the_policy_max() -> None:
    # max 18Gi: Ray could get 2Gi more only if the reserve did not count; with it, it cannot
    snap = memory_bound_cluster()
    plan = run_plan(snap, 'groups: {"*": {vertical: {memoryReserve: 512Mi, maxPod: {memory: 18Gi}}}}')
    assert not any(isinstance(a, GrowPod) for a in plan.actions)


def test_the_settle_round_grows_a_pod_the_plan_grows_further_before_asking_for_a_new_pod() -> None:
    """Placing the demand again moves it: the 2-CPU task pinned to group cpu (placed first, it is
    the more constrained) lands on the room just grown for the 3-CPU task, which is left without a
    place. The pod the plan grows grows further in the same resize; no new pod is needed."""
    g, other = group("cpu", cpu=4, mem_gi=16, replicas=2), group("other", cpu=4, mem_gi=16, replicas=0)
    pods = [pod("p1", g, "n1", in_use=res(4, 0)), pod("p2", g, "n2", in_use=res(2, 0))]
    snap = snapshot(pods, [node("n1", 16, 64), node("n2", 4, 16)], [g, other],
                    demands=(demand(2, selectors=({"ray.io/node-group": "cpu"},)), demand(3)))
    p = run_plan(snap)
    assert kinds(p) == [("GrowPod", "p1", "DemandFitsInPlace")]  # before: also ScaleOut other +1
    (grow,) = p.actions
    assert isinstance(grow, GrowPod) and grow.requests["cpu"] >= 4000 + 3000 + 2000
    assert "and further for demand that placing it again moves here: pending 1× {CPU: 3}" in grow.why
    assert run_plan(apply_plan(snap, p, 10_000.0), now=10_001.0).actions == ()
