"""The replay's fast paths give exactly the replay they replace.

* The incremental snapshot (the daemon's ``SnapshotBuilder`` over ``StoreIndex`` + ``RayStateReader``) equals
  ``build_snapshot`` over freshly converted objects at every loop of every driver.
* Skipping quiet planner calls (``autoscaler.replay.quiet``) changes nothing: the same actions at the same
  virtual times and the same samples as planning every loop; in ``verify_skips`` mode every skipped loop is
  planned anyway and must decide nothing.
* The gate's rules one by one, against the real planner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from autoscaler.actions import ScaleOut
from autoscaler.model import InFlightResize, Resources, Snapshot
from autoscaler.observe.snapshot import build_snapshot, is_worker_of
from autoscaler.plan import plan
from autoscaler.policy import Policy, parse_policy
from autoscaler.replay import drivers
from autoscaler.replay.adapters import ray_state
from autoscaler.replay.quiet import PlanGate, deadlines, inert, same_inputs
from autoscaler.replay.runner import POLICIES, RunResult, run
from autoscaler.replay.scenario import BUILTIN, Scenario
from tests.planning import demand, group, node, pod, res, snapshot
from tests.unit.replay.test_replay import small


def steady(**over: Any) -> Scenario:
    """Two pods that can only grow in place (min = max replicas), sparse tasks, some wider than a pod."""
    doc: dict[str, Any] = {
        "name": "steady",
        "trace": {"synthetic": {"duration": 900, "tasks_per_second": 0.05, "mean_task_seconds": 20,
                                "shapes": [[3, {"CPU": 1.0}, {}], [1, {"CPU": 3.0}, {}]]}},
        "groups": [{"name": "workers", "cpu": "2", "memory": "2Gi", "min_replicas": 2, "max_replicas": 2,
                    "max_pod": {"cpu": "4", "memory": "4Gi"}}],
    }
    return small(**{**doc, **over})


def _reference(driver: drivers._Base, now: float, stocked: Any) -> Snapshot | None:
    """The snapshot as the replay built it before: every object converted afresh."""
    store = driver.store
    rc = store.get("rayclusters", driver.namespace, driver.cluster, copy=False)
    pods = [p for p in store.objects("pods") if is_worker_of(p, driver.cluster)]
    nodes = {n["metadata"]["name"]: n for n in store.objects("nodes")}
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in store.objects("pods"):
        if p.get("spec", {}).get("nodeName"):
            by_node.setdefault(p["spec"]["nodeName"], []).append(p)
    pressure = driver.agents.pressure if driver.agents is not None else {}
    return build_snapshot(rc, pods, nodes, by_node, ray_state(driver.ray.cluster_resource_state()), pressure,
                          dict(stocked or {}), now, driver.server_minor)


@pytest.mark.parametrize("policy", POLICIES)
def test_the_incremental_snapshot_equals_a_fresh_one_at_every_loop(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    real = drivers._Base.snapshot

    def snapshot(self: drivers._Base, now: float, stocked_out_until: Any = None) -> Snapshot | None:
        snap = real(self, now, stocked_out_until)
        assert snap is not None
        ref = _reference(self, now, stocked_out_until)
        assert snap == ref, f"t={now - self.t0:.0f}"
        assert self.ray_reader.read() == ray_state(self.ray.cluster_resource_state())
        checked.append(1)
        return snap

    monkeypatch.setattr(drivers._Base, "snapshot", snapshot)
    r = run(small(), policy, 0)
    assert r.finished and len(checked) >= r.driver["loops"] > 10
    assert r.pods_created > 1 or r.driver["grows"] > 0  # pods came, went or changed size meanwhile


def _same_replay(a: RunResult, b: RunResult) -> None:
    assert a.actions == b.actions  # (virtual time, kind, detail), in order
    assert a.samples == b.samples
    for k in (*RunResult.METRICS, "allocated_core_s", "used_core_s", "completed", "peak_pods"):
        assert getattr(a, k) == getattr(b, k), k


@pytest.mark.parametrize("policy", ["batch", "default"])
def test_skipping_quiet_plans_changes_nothing(policy: str) -> None:
    sc = steady() if policy == "batch" else steady(rva_policy={})
    fast = run(sc, "rva", 0)
    full = run(sc, "rva", 0, skip_quiet=False)
    _same_replay(fast, full)
    assert full.driver["skipped"] == 0 and full.driver["plans"] == full.driver["loops"]
    assert fast.driver["skipped"] > 50  # the gate did fire
    assert fast.driver["grows"] > 0 and fast.driver["loops"] == fast.driver["plans"] + fast.driver["skipped"]
    if policy == "batch":
        assert fast.driver["shrinks"] > 0


@pytest.mark.parametrize("name", ["steady", "small", "bursty", "tpch-gke", "skewed-memory"])
def test_every_skipped_loop_would_have_planned_nothing(name: str) -> None:
    sc = {"steady": steady(), "small": small()}.get(name) or Scenario.from_dict(BUILTIN[name])
    checked = run(sc, "rva", 0, verify_skips=True)  # raises on a skipped loop that plans an action
    _same_replay(checked, run(sc, "rva", 0))


def test_the_hour_scenario_skips_only_provably_quiet_loops() -> None:
    from autoscaler.bench.efficiency import hour_scenario

    sc = hour_scenario(60, 240 / 3600)  # 60 pods, 4 virtual minutes, the load scaled to the size
    sc = sc.with_(trace={"synthetic": {**sc.trace["synthetic"], "tasks_per_second": 0.6}})
    checked = run(sc, "rva", 0, sample_s=5.0, verify_skips=True)
    assert checked.driver["skipped"] > 200
    _same_replay(checked, run(sc, "rva", 0, sample_s=5.0, skip_quiet=False))


# -- the rules, against the real planner --------------------------------------------------------------

def _quiet_cluster(**group_kw: Any) -> tuple[Snapshot, Policy]:
    g = group("w", cpu=2, mem_gi=4, replicas=2, min_replicas=2, max_replicas=4, **group_kw)
    pods = [pod("w-a", g, in_use=res(1, 1)), pod("w-b", g, idle_s=30.0)]
    return snapshot(pods, [node("n1")], [g]), parse_policy({})


def test_a_quiet_cluster_is_inert_and_ray_churn_keeps_its_inputs() -> None:
    snap, policy = _quiet_cluster()
    assert inert(snap, policy) and not plan(snap, policy, 100.0).actions
    a, b = snap.pods
    assert a.ray is not None and b.ray is not None
    churned = dataclasses.replace(snap, taken_at=101.0, pods=(
        dataclasses.replace(a, ray=dataclasses.replace(a.ray, available=a.ray.total, idle_duration_s=1.0,
                                                       status="IDLE")),
        dataclasses.replace(b, ray=dataclasses.replace(b.ray, available=Resources(), idle_duration_s=0.0,
                                                       status="RUNNING")),
    ))
    assert same_inputs(snap, churned)
    for changed in (
        dataclasses.replace(b, ray=dataclasses.replace(b.ray, status="DRAINING")),
        dataclasses.replace(b, ray=dataclasses.replace(b.ray, total=res(4, 4))),
        dataclasses.replace(b, ray=None),
        dataclasses.replace(b, requests=res(3, 4)),
    ):
        assert not same_inputs(snap, dataclasses.replace(snap, pods=(a, changed)))


@pytest.mark.parametrize("why", ["demand", "above-min", "grown", "in-flight"])
def test_what_makes_a_cluster_not_inert(why: str) -> None:
    snap, policy = _quiet_cluster()
    g = snap.groups[0]
    a, b = snap.pods
    if why == "demand":
        snap = dataclasses.replace(snap, demands=(demand(1),))
    elif why == "above-min":  # an idle pod could be removed
        snap = dataclasses.replace(snap, groups=(dataclasses.replace(g, replicas=3),))
    elif why == "grown":  # could shrink back to its template
        snap = dataclasses.replace(snap, pods=(a, dataclasses.replace(b, requests=res(3, 4))))
    else:
        rec = InFlightResize(res(3, 4), res(3, 4), res(2, 4), res(2, 4), 90.0, 2, "DemandFitsInPlace")
        snap = dataclasses.replace(snap, pods=(a, dataclasses.replace(b, in_flight=rec)))
    assert not inert(snap, policy)
    gate = PlanGate()
    gate.planned(snap, policy, 100.0, plan(snap, policy, 100.0))
    assert not gate.may_skip(snap, policy, 101.0)


def test_a_timer_ends_the_quiet_window() -> None:
    """A group below its minimum but stocked out: nothing to do until the backoff ends, then a scale-out."""
    snap, policy = _quiet_cluster(stocked_out_until=1030.0)
    g = snap.groups[0]
    snap = dataclasses.replace(snap, groups=(dataclasses.replace(g, replicas=1, min_replicas=2),))
    assert inert(snap, policy) and 1030.0 in set(deadlines(snap, policy))
    gate = PlanGate()
    gate.planned(snap, policy, 1000.0, plan(snap, policy, 1000.0))
    assert gate.may_skip(snap, policy, 1029.0) and not plan(snap, policy, 1029.0).actions
    assert not gate.may_skip(snap, policy, 1030.0)
    assert any(isinstance(a, ScaleOut) for a in plan(snap, policy, 1030.0).actions)
    # the pods' startup grace (started at 0, 120 s) is a timer too
    gate.planned(snap, policy, 100.0, plan(snap, policy, 100.0))
    assert gate.may_skip(snap, policy, 119.0) and not gate.may_skip(snap, policy, 120.0)


def test_the_gate_needs_the_same_policy_and_an_empty_plan() -> None:
    snap, policy = _quiet_cluster()
    gate = PlanGate()
    assert not gate.may_skip(snap, policy, 100.0)  # nothing planned yet
    gate.planned(snap, policy, 100.0, plan(snap, policy, 100.0), sources=(1, 2))
    assert gate.may_skip(snap, policy, 101.0) and gate.quiet((1, 2), policy, 101.0)
    assert not gate.quiet((1, 3), policy, 101.0)
    assert not gate.may_skip(snap, parse_policy({}), 101.0)  # another policy object
    g = snap.groups[0]
    below = dataclasses.replace(snap, groups=(dataclasses.replace(g, replicas=1),))
    gate.planned(below, policy, 100.0, plan(below, policy, 100.0))  # a ScaleOut to the minimum
    assert not gate.may_skip(below, policy, 101.0)


def test_the_runner_replays_with_the_gate_by_default(rva_drivers: list[drivers.RvaDriver]) -> None:
    made = rva_drivers
    run(steady(), "rva", 0)
    assert made and made[0].gate is not None and not made[0].verify_skips


# -- the snapshot builder's reuse rule -----------------------------------------------------------------

def test_the_snapshot_builder_reuses_only_the_same_unchanged_object() -> None:
    from autoscaler.observe.snapshot import SnapshotBuilder
    from tests.unit.daemon.test_k8s_state import raycluster, worker_pod

    node_obj = {"metadata": {"name": "node-1", "resourceVersion": "7"},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}}
    pod_obj = worker_pod()
    pod_obj["metadata"]["resourceVersion"] = "10"
    rc = raycluster()
    builder = SnapshotBuilder()

    def both() -> tuple[Snapshot, Snapshot]:
        args = (rc, [pod_obj], {"node-1": node_obj}, {"node-1": [pod_obj]}, None, {}, {}, 5.0)
        return builder.build(*args), build_snapshot(*args)

    first, ref = both()
    assert first == ref
    again, _ = both()
    assert again.pods[0] is first.pods[0] and again.nodes[0] is first.nodes[0]  # nothing converted again
    # a change in place with a new resourceVersion (a watch cache never does this, but it is detected)
    pod_obj["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "3"
    pod_obj["metadata"]["resourceVersion"] = "11"
    changed, ref = both()
    assert changed == ref and changed.pods[0].requests.get("cpu") == 3000
    assert changed.nodes[0].used.get("cpu") == 3000
    # without a resourceVersion an object is converted on every build
    del pod_obj["metadata"]["resourceVersion"]
    pod_obj["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    unversioned, ref = both()
    assert unversioned == ref and unversioned.pods[0].requests.get("cpu") == 1000
    # a new object (what a watch event brings) is converted, the old one forgotten
    pod_obj = worker_pod()
    pod_obj["metadata"]["resourceVersion"] = "12"
    fresh, ref = both()
    assert fresh == ref and fresh.pods[0].requests.get("cpu") == 2000


def test_the_meter_holds_what_a_fresh_count_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoscaler.model import CPU, MEMORY
    from autoscaler.observe.k8s_state import pod_accounted_requests
    from autoscaler.replay.meter import Meter

    real = Meter.allocated
    seen: list[int] = []

    def allocated(self: Meter) -> tuple[float, float, int]:
        cpu = mem = 0.0
        pods = 0
        for p in self.store.objects("pods"):
            if self._is_worker(p) and p.get("spec", {}).get("nodeName"):
                acc = pod_accounted_requests(p)
                pods, cpu, mem = pods + 1, cpu + acc.get(CPU) / 1000.0, mem + float(acc.get(MEMORY))
        got = real(self)
        assert got == (cpu, mem, pods)
        seen.append(pods)
        return got

    monkeypatch.setattr(Meter, "allocated", allocated)
    r = run(small(), "horizontal", 0)  # pods come and go
    assert r.finished and len(set(seen)) > 2
