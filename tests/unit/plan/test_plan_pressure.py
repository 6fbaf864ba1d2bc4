"""Pressure pass: sustained PSI / usage growth and VPA's OOM bump."""

import dataclasses

import pytest

from autoscaler.model import InFlightResize, Pressure, ResizeState, Resources
from autoscaler.plan import oom_bump
from tests.planning import GI, MI, group, kinds, node, pod, res, run_plan, snapshot

RATIO, MIN_BUMP = 1.2, 100 * MI


@pytest.mark.parametrize(
    ("request_mi", "peak_mi", "expected_mi"),
    [(1000, 0, 1200), (1, 0, 101), (1000, 3000, 3600), (1000, 999, 1200), (2000, 0, 2400)],
)
def test_vpa_oom_vectors(request_mi: int, peak_mi: int, expected_mi: int) -> None:
    assert oom_bump(request_mi * MI, peak_mi * MI, RATIO, MIN_BUMP) == expected_mi * MI


def pressured(mem_mi: int = 1000, **pr: object) -> object:
    g = group("etl", cpu=2, mem_gi=mem_mi / 1024, replicas=1)
    p0 = pod("a", g, "n1", size=Resources.of(cpu=2000, memory=mem_mi * MI))
    base: dict[str, object] = dict(pod="a", sampled_at=9_999.0, psi_some_avg10=0.0, psi_full_avg10=0.0,
                                   usage_bytes=0, limit_bytes=mem_mi * MI, peak_usage_bytes=0, consecutive_windows=0)
    base.update(pr)
    return snapshot([p0], [node("n1", 8, 64)], [g], pressure={"a": Pressure(**base)})  # type: ignore[arg-type]


@pytest.mark.parametrize(("request_mi", "peak_mi", "expected_mi"), [(1000, 0, 1200), (1, 0, 101), (1000, 3000, 3600)])
def test_oom_kill_bumps_memory_through_the_planner(request_mi: int, peak_mi: int, expected_mi: int) -> None:
    snap = pressured(request_mi, oom_kills=1, last_oom_at=9_990.0, peak_usage_bytes=peak_mi * MI)
    (grow,) = run_plan(snap).actions
    assert grow.reason.value == "OOMKilled"
    assert grow.requests["memory"] == expected_mi * MI and grow.limits["memory"] == expected_mi * MI
    assert grow.requests["cpu"] == 2000


def test_oom_older_than_the_last_resize_is_not_bumped_again() -> None:
    snap = pressured(oom_kills=1, last_oom_at=9_000.0)
    snap = dataclasses.replace(snap, pods=(dataclasses.replace(snap.pods[0], last_resized_at=9_500.0),))
    assert run_plan(snap).actions == ()


def test_sustained_pressure_grows_by_factor_or_minimum() -> None:
    snap = pressured(4096, psi_some_avg10=25.0, consecutive_windows=2)
    (grow,) = run_plan(snap).actions
    assert grow.reason.value == "MemoryPressure" and grow.requests["memory"] == 5 * GI  # × 1.25
    small = pressured(512, usage_bytes=500 * MI, consecutive_windows=3)  # 98 % of the limit
    assert run_plan(small).actions[0].requests["memory"] == 768 * MI  # + growMin 256Mi


def test_page_cache_alone_is_not_pressure() -> None:
    snap = pressured(1000, usage_bytes=990 * MI, working_set_bytes=400 * MI, consecutive_windows=3)
    assert run_plan(snap).actions == ()


def test_not_enough_windows_startup_grace_cooldown_in_flight() -> None:
    assert run_plan(pressured(psi_some_avg10=50.0, consecutive_windows=1)).actions == ()
    snap = pressured(psi_some_avg10=50.0, consecutive_windows=5)
    young = dataclasses.replace(snap.pods[0], started_at=9_950.0)
    assert run_plan(dataclasses.replace(snap, pods=(young,))).actions == ()
    cooling = dataclasses.replace(snap.pods[0], last_resized_at=9_990.0)
    assert run_plan(dataclasses.replace(snap, pods=(cooling,))).actions == ()
    r = snap.pods[0].requests
    busy = dataclasses.replace(snap.pods[0], resize_state=ResizeState.IN_PROGRESS, resize_since=9_995.0,
                               in_flight=InFlightResize(r, r, r, r, 9_995.0, 2, "MemoryPressure"))
    assert run_plan(dataclasses.replace(snap, pods=(busy,))).actions == ()
    assert kinds(run_plan(snap)) == [("GrowPod", "a", "MemoryPressure")]


def test_growth_is_capped_by_policy_max_and_node_room() -> None:
    snap = pressured(1000, oom_kills=1, peak_usage_bytes=3000 * MI)
    (grow,) = run_plan(snap, "groups: {etl: {vertical: {maxPod: {memory: 2Gi}}}}").actions
    assert grow.requests["memory"] == 2 * GI and "capped" in grow.why
    full = dataclasses.replace(snap, nodes=(dataclasses.replace(snap.nodes[0], allocatable=res(8, 1.5)),))
    (grow,) = run_plan(full).actions
    assert grow.requests["memory"] == int(1.5 * GI)


def test_oom_kill_is_acted_on_during_startup_grace_and_cooldown() -> None:
    """The OOM-killed container just restarted (startup grace) and may have been resized recently."""
    snap = pressured(1000, oom_kills=1, last_oom_at=9_990.0)
    restarted = dataclasses.replace(snap.pods[0], started_at=9_995.0, last_resized_at=9_950.0)
    snap = dataclasses.replace(snap, pods=(restarted,))
    (grow,) = run_plan(snap).actions
    assert grow.reason.value == "OOMKilled" and grow.requests["memory"] == 1200 * MI
    # sustained pressure (not an OOM) in the same situation waits for the grace period
    calm = pressured(1000, psi_some_avg10=50.0, consecutive_windows=5)
    calm = dataclasses.replace(calm, pods=(dataclasses.replace(calm.pods[0], started_at=9_995.0),))
    assert run_plan(calm).actions == ()


def test_memory_grown_for_pressure_is_not_given_to_ray_to_schedule() -> None:
    """An OOM bump protects the work already running: if Ray got the new memory it would start more
    tasks in it and the pod would be killed again. Whatever the reserve."""
    from tests.planning import apply_plan

    snap = pressured(1000, oom_kills=1, last_oom_at=9_990.0)  # 1000Mi → 1200Mi
    for reserve in ('"0"', "100Mi", "512Mi"):
        plan = run_plan(snap, 'groups: {"*": {vertical: {memoryReserve: ' + reserve + "}}}")
        (grow,) = plan.actions
        assert grow.requests["memory"] == 1200 * MI and grow.ray_memory == 0
        ray = apply_plan(snap, plan, 10_000.0).pods[0].ray
        assert ray is not None and ray.total["memory"] == 1000 * MI
