"""Shrink and removal: give back what Ray does not use."""

import dataclasses

from autoscaler.actions import Plan, RemovePod, ShrinkPod
from autoscaler.model import Pressure
from tests.planning import GI, apply_plan, demand, group, kinds, node, pod, res, run_plan, snapshot

BIG = res(12, 40)


def cluster(idle_s: float = 900, in_use: object = None, replicas: int = 2, min_replicas: int = 2,
            peak_gi: float | None = 18) -> object:
    g = group("cpu", cpu=4, mem_gi=16, replicas=replicas, min_replicas=min_replicas)
    pods = [pod("big", g, "n1", size=BIG, idle_s=idle_s, in_use=in_use)]  # type: ignore[arg-type]
    pods += [pod(f"p{i}", g, "n2", in_use=res(1, 1)) for i in range(replicas - 1)]
    pressure = {}
    if peak_gi is not None:
        pressure["big"] = Pressure("big", 9_999.0, 0.0, 0.0, int(peak_gi * GI) // 2, 40 * GI, int(peak_gi * GI), 0)
    return snapshot(pods, [node("n1", 16, 64), node("n2", 16, 64)], [g], pressure=pressure)


def test_idle_pod_shrinks_toward_template_but_not_below_peak_times_margin() -> None:
    (shrink,) = run_plan(cluster()).actions
    assert isinstance(shrink, ShrinkPod) and shrink.reason.value == "IdleShrink"
    assert shrink.requests["cpu"] == 4000  # template
    assert shrink.requests["memory"] >= 18 * GI * 1.2  # peak × (1 + 0.2)
    assert shrink.requests["memory"] < 40 * GI
    assert shrink.limits == shrink.requests


def test_without_usage_data_memory_is_left_alone() -> None:
    (shrink,) = run_plan(cluster(peak_gi=None)).actions
    assert shrink.requests["memory"] == 40 * GI and shrink.requests["cpu"] == 4000


def test_ray_usage_is_a_floor_and_hysteresis_skips_small_downsizes() -> None:
    snap = cluster(idle_s=0, in_use=res(11.5, 38))
    snap = dataclasses.replace(snap, pods=(dataclasses.replace(snap.pods[0], last_resized_at=1_000.0),
                                           *snap.pods[1:]))
    assert run_plan(snap).actions == ()  # 12 → 11.5 CPUs and 40 → 38Gi are below the 10 % hysteresis
    snap2 = cluster(idle_s=0, in_use=res(6, 8))
    snap2 = dataclasses.replace(snap2, pods=(dataclasses.replace(snap2.pods[0], last_resized_at=1_000.0),
                                             *snap2.pods[1:]))
    (shrink,) = run_plan(snap2).actions
    assert shrink.reason.value == "Oversized" and shrink.requests["cpu"] == 6000


def test_kubernetes_133_never_lowers_memory() -> None:
    snap = dataclasses.replace(cluster(), server_minor=33)
    (shrink,) = run_plan(snap).actions
    assert shrink.requests["memory"] == 40 * GI and shrink.limits["memory"] == 40 * GI


def test_no_shrink_while_demand_uses_the_group_or_shrink_disabled() -> None:
    snap = dataclasses.replace(cluster(), demands=(demand(1, 1),))
    assert [k for k in kinds(run_plan(snap)) if k[0] == "ShrinkPod"] == []
    assert run_plan(cluster(), "groups: {cpu: {shrink: {enabled: false}}}").actions == ()


def test_idle_removal_respects_min_replicas_and_busy_nodes() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=4, min_replicas=2)
    pods = [pod("idle-long", g, "n1", idle_s=3000), pod("idle-short", g, "n1", idle_s=30),
            pod("idle-mid", g, "n1", idle_s=600), pod("busy", g, "n1", in_use=res(1, 1))]
    p = run_plan(snapshot(pods, [node("n1", 64, 256)], [g]))
    removed = [a for a in p.actions if isinstance(a, RemovePod)]
    assert [(a.pod, a.replicas, a.drain, a.reason.value) for a in removed] == [
        ("idle-long", 3, True, "IdleTimeout"), ("idle-mid", 2, True, "IdleTimeout")]


def test_idle_pod_that_demand_lands_on_is_kept() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=2)
    pods = [pod("idle", g, "n1", idle_s=3000), pod("busy", g, "n1", in_use=res(4, 16))]
    p = run_plan(snapshot(pods, [node("n1", 8, 32)], [g], demands=(demand(1, 1),)))
    assert p.actions == ()


def test_multi_host_groups_are_not_removed_host_by_host() -> None:
    g = group("tpu", replicas=1, num_of_hosts=2)
    pods = [pod("h0", g, "n1", idle_s=3000), pod("h1", g, "n1", idle_s=3000)]
    assert [a for a in run_plan(snapshot(pods, [node("n1", 64, 256)], [g])).actions if isinstance(a, RemovePod)] == []


def test_stuck_unschedulable_pods_are_removed_without_drain() -> None:
    g = group("spot", replicas=2)
    pods = [pod("ok", g, "n1", in_use=res(1, 1)),
            pod("stuck", g, None, ray=False, phase="Pending", unschedulable_since=9_000.0)]
    (remove,) = run_plan(snapshot(pods, [node("n1")], [g])).actions
    assert isinstance(remove, RemovePod) and remove.reason.value == "StockoutCleanup" and not remove.drain
    assert remove.replicas == 1


MI = 2**20


def _shrink_of(snap: object, policy: str | None = None) -> ShrinkPod:
    (shrink,) = run_plan(snap, policy).actions
    assert isinstance(shrink, ShrinkPod)
    return shrink


def test_ray_memory_shrinks_to_the_new_limit_less_the_reserve() -> None:
    snap = cluster()  # the raylet counts the whole 40Gi limit (as KubeRay starts it)
    shrink = _shrink_of(snap)
    assert shrink.ray_memory == shrink.limits["memory"] - 512 * MI - 40 * GI
    no_reserve = _shrink_of(snap, "groups: {'*': {vertical: {memoryReserve: 0}}}")
    assert no_reserve.ray_memory == no_reserve.limits["memory"] - 40 * GI
    after = apply_plan(snap, Plan((shrink,)), 10_000.0)
    assert after.pods[0].ray is not None and after.pods[0].ray.total["memory"] == shrink.limits["memory"] - 512 * MI


def test_memory_grown_for_pressure_was_never_rays_so_a_shrink_takes_none_of_ray_memory() -> None:
    snap = cluster()
    big = snap.pods[0]
    assert big.ray is not None
    # grown 16 → 40Gi for memory pressure: Ray kept its 15.5Gi (16Gi less the reserve)
    ray = dataclasses.replace(big.ray, total=res(12, 15.5), available=res(12, 15.5))
    snap = dataclasses.replace(snap, pods=(dataclasses.replace(big, ray=ray), *snap.pods[1:]))
    shrink = _shrink_of(snap)
    assert 18 * GI * 1.2 <= shrink.limits["memory"] < 40 * GI
    assert shrink.ray_memory == 0  # before: Ray lost the 40 → ~22Gi drop it never had
    after = apply_plan(snap, Plan((shrink,)), 10_000.0)
    assert after.pods[0].ray is not None and after.pods[0].ray.total["memory"] == int(15.5 * GI)
    assert run_plan(after, now=10_000.0).actions == ()  # and nothing more to do once applied


def test_ray_memory_in_use_bounds_what_a_shrink_releases() -> None:
    snap = cluster(idle_s=0, in_use=res(6, 30))
    snap = dataclasses.replace(snap, pods=(dataclasses.replace(snap.pods[0], last_resized_at=1_000.0),
                                           *snap.pods[1:]))
    shrink = _shrink_of(snap)
    assert shrink.limits["memory"] == 30 * GI  # Ray's 30Gi in use is the floor
    assert shrink.ray_memory == -10 * GI  # Ray keeps all 30Gi (not 30Gi less the reserve: it uses them)
