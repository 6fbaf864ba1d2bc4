"""``rva demo``'s verdicts come from observations only: replay a recorded run and variations of it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from autoscaler.demo_record import (
    GI,
    MI,
    DemandSample,
    EventRecord,
    GroupInfo,
    PhaseSpan,
    PodSample,
    RayNodeSample,
    Recording,
    TaskRecord,
    demand_by_group,
    first_unobserved,
    summarize,
)
from autoscaler.model import LabelSelector

SPOT = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}
ON_DEMAND = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}
CPU_POD, MEM_POD, SPOT_POD, OD_POD = "demo-cpu-a", "demo-mem-b", "demo-l4-spot-c", "demo-l4-ondemand-d"


def pod(t: float, name: str, group: str, phase: str = "Running", cpu: int = 1000, mem: int = GI,
        actual_cpu: int | None = None, actual_mem: int | None = None, **kw: object) -> PodSample:
    a_mem = mem if actual_mem is None else actual_mem
    return PodSample(t, name, group, phase, cpu, mem, cpu if actual_cpu is None else actual_cpu, a_mem,
                     memory_limit=a_mem, **kw)  # type: ignore[arg-type]


def action(t: float, kind: str, message: str) -> EventRecord:
    return EventRecord(t, kind, "RayCluster", "demo", message, "rva")


def completed(t: float, name: str) -> EventRecord:
    return EventRecord(t, "ResizeCompleted", "Pod", name, "in-place resize applied", "rva")


def recorded_run() -> Recording:
    """The shape of a real run (times in seconds from the start), trimmed to what the verdicts read."""
    rec = Recording(cluster="demo", started_at=1_700_000_000.0, groups=[
        GroupInfo("cpu", {"ray.io/node-group": "cpu"}, 1000, GI),
        GroupInfo("mem", {"ray.io/node-group": "mem"}, 1000, GI),
        GroupInfo("l4-spot", {"ray.io/node-group": "l4-spot", **SPOT}, 1000, GI, 1),
        GroupInfo("l4-ondemand", {"ray.io/node-group": "l4-ondemand", **ON_DEMAND}, 1000, GI, 1),
    ])
    rec.pods += [
        pod(10.0, CPU_POD, "cpu", "Pending"), pod(10.5, CPU_POD, "cpu"),
        pod(10.0, MEM_POD, "mem", "Pending"), pod(10.5, MEM_POD, "mem"),
        pod(21.0, CPU_POD, "cpu", cpu=3200, actual_cpu=1000),  # the resize PATCH
        pod(21.5, CPU_POD, "cpu", cpu=3200),  # the kubelet applied it
        pod(26.0, MEM_POD, "mem", mem=1280 * MI, actual_mem=GI),
        pod(26.5, MEM_POD, "mem", mem=1280 * MI),
        pod(28.0, SPOT_POD, "l4-spot", "Pending", unschedulable=True),
        pod(32.0, SPOT_POD, "l4-spot", "Deleted", unschedulable=True),
        pod(32.0, OD_POD, "l4-ondemand", "Pending", unschedulable=True),
        pod(36.0, OD_POD, "l4-ondemand"),
        pod(44.0, CPU_POD, "cpu", cpu=1000, actual_cpu=3200),
        pod(44.5, CPU_POD, "cpu", cpu=1000),
        pod(49.0, OD_POD, "l4-ondemand", deleting=True),
        pod(49.4, OD_POD, "l4-ondemand", "Deleted"),
    ]
    rec.pods.sort(key=lambda s: s.t)
    rec.events += [
        action(21.0, "GrowPod", f"{CPU_POD}: [DemandFitsInPlace] grow cpu 1 → 3200m in place"),
        EventRecord(21.5, "ResizeCompleted", "Pod", CPU_POD, "Pod resize completed", "kubelet"),
        completed(21.6, CPU_POD),
        action(26.0, "GrowPod", f"{MEM_POD}: [MemoryPressure] grow memory 1Gi → 1280Mi in place"),
        completed(26.6, MEM_POD),
        action(28.0, "ScaleOut", "l4-spot +1 → 1: [DemandNeedsNewPods] pending 1× {CPU: 1, GPU: 1}"),
        action(32.0, "RemovePod", f"{SPOT_POD}: [StockoutCleanup] Unschedulable for 4s; l4-spot 1 → 0"),
        action(32.0, "ScaleOut", "l4-ondemand +1 → 1: [FallbackGroup] fallback group: pending 1× {CPU: 1, GPU: 1}"),
        action(44.0, "ShrinkPod", f"{CPU_POD}: [Oversized] shrink cpu 3200m → 1"),
        completed(44.6, CPU_POD),
        action(49.0, "RemovePod", f"{OD_POD}: [IdleTimeout] Ray reports the node idle for 6s"),
    ]
    rec.ray_nodes += [
        RayNodeSample(20.0, "n-cpu", CPU_POD, "cpu", 1.0, GI, "ALIVE"),
        RayNodeSample(20.0, "n-mem", MEM_POD, "mem", 1.0, GI, "ALIVE"),
        RayNodeSample(21.7, "n-cpu", CPU_POD, "cpu", 3.2, GI, "ALIVE"),
        RayNodeSample(38.0, "n-od", OD_POD, "l4-ondemand", 1.0, GI, "ALIVE"),
        RayNodeSample(49.5, "n-od", OD_POD, "l4-ondemand", 1.0, GI, "DEAD"),
    ]
    rec.demand += [DemandSample(20.2, 1, 3.0, {"cpu": 3.0, "mem": 0.0, "l4-spot": 0.0, "l4-ondemand": 0.0}),
                   DemandSample(22.0, 0, 0.0, {"cpu": 0.0, "mem": 0.0, "l4-spot": 0.0, "l4-ondemand": 0.0})]
    rec.tasks = {
        "burst": TaskRecord("burst", 3.0, submitted=20.0, started=22.0, node_id="n-cpu"),
        "memhog": TaskRecord("memhog", 1.0, submitted=23.0, started=24.0, node_id="n-mem", finished=43.5),
        "gpu": TaskRecord("gpu", 1.0, 1.0, {"label_selector": SPOT}, submitted=27.5, started=39.0, node_id="n-od"),
    }
    rec.phases += [PhaseSpan("grow", "CPU burst", 20.0, 22.2), PhaseSpan("memory", "memory", 22.2, 27.0),
                   PhaseSpan("fallback", "fallback", 27.0, 39.2), PhaseSpan("idle", "idle", 39.2, 49.6)]
    rec.ended_at = 50.0
    return rec


def test_a_recorded_run_is_observed_phase_by_phase() -> None:
    summary = summarize(recorded_run())
    assert summary["ok"] and first_unobserved(summary) is None
    assert summary["observed"] == {"in_place_grow_ran_pending_task": True, "pressure_memory_grow": True,
                                   "spot_to_on_demand_fallback": True, "shrink": True, "removal": True}
    grow, memory, fallback, idle = (p["facts"] for p in summary["phases"])
    assert (grow["pod"], grow["cpu_before"], grow["cpu_after"]) == (CPU_POD, "1", "3.2")
    assert grow["raylet_cpu_after_grow"] == 3.2
    assert grow["task"]["node_id"] == "n-cpu" and grow["same_pod"]
    assert (memory["memory_before"], memory["memory_after"], memory["memory_limit_after"]) == ("1Gi", "1280Mi",
                                                                                               "1280Mi")
    assert (fallback["primary_group"], fallback["fallback_group"]) == ("l4-spot", "l4-ondemand")
    assert fallback["stuck_pods_removed"] == [SPOT_POD] and fallback["task"]["pod"] == OD_POD
    assert idle["shrinks"][0]["cpu_before"] == "3.2" and idle["shrinks"][0]["cpu_after"] == "1"
    assert idle["removals"][0]["gone_at_s"] == 49.4
    assert summary["totals"]["actions"] == {"GrowPod": 2, "ScaleOut": 2, "RemovePod": 2, "ShrinkPod": 1}
    json.dumps(summary)  # machine-readable as is


def test_the_recording_round_trips_through_json() -> None:
    rec = recorded_run()
    again = Recording.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert summarize(again) == summarize(rec)


@pytest.mark.parametrize(("change", "phase", "why"), [
    # the grow came after the task had started: something else served it
    (lambda r: setattr(r.tasks["burst"], "started", 20.5), "grow", "before the task started"),
    # the task ran on a raylet no demo pod owns (e.g. a new pod would have a new node id)
    (lambda r: setattr(r.tasks["burst"], "node_id", "n-new"), "grow", "no pod owns"),
    # the kubelet applied the grow only after the task had started: the grow did not let it run
    (lambda r: r.pods.__setitem__(next(i for i, s in enumerate(r.pods) if s.t == 21.5),
                                   pod(23.0, CPU_POD, "cpu", cpu=3200)), "grow", "did not serve the task"),
    # the grow was for pressure, not for the pending task
    (lambda r: r.events.__setitem__(0, replace(r.events[0], message=f"{CPU_POD}: [MemoryPressure] grow")),
     "grow", "DemandFitsInPlace"),
    (lambda r: r.events.__setitem__(3, replace(r.events[3], message=f"{MEM_POD}: [OOMKilled] bump")), "memory",
     "MemoryPressure"),
    # the kubelet never applied the memory grow
    (lambda r: r.pods.__setitem__(next(i for i, s in enumerate(r.pods) if s.t == 26.5),
                                   pod(26.5, MEM_POD, "mem", mem=1280 * MI, actual_mem=GI)), "memory", "not applied"),
    (lambda r: setattr(r.tasks["gpu"], "node_id", "n-cpu"), "fallback", "fallback incomplete"),
    (lambda r: setattr(r, "events", [e for e in r.events if e.code != "StockoutCleanup"]), "fallback",
     "fallback incomplete"),
    (lambda r: setattr(r, "events", [e for e in r.events if e.code != "FallbackGroup"]), "fallback",
     "FallbackGroup"),
    (lambda r: setattr(r, "events", [e for e in r.events if e.reason != "ShrinkPod"]), "idle", "no applied ShrinkPod"),
    # removal asked for but the pod never went away
    (lambda r: setattr(r, "pods", [s for s in r.pods if s.phase != "Deleted" or s.pod != OD_POD]), "idle",
     "no drained RemovePod"),
])
def test_a_missing_observation_fails_its_phase_and_names_it(change: object, phase: str, why: str) -> None:
    rec = recorded_run()
    change(rec)  # type: ignore[operator]
    summary = summarize(rec)
    assert not summary["ok"]
    missing = first_unobserved(summary)
    assert missing is not None and missing["key"] == phase, missing
    assert why in missing["what"]


def test_an_action_outside_its_phase_does_not_count() -> None:
    rec = recorded_run()
    rec.phases[3] = PhaseSpan("idle", "idle", 45.0, 49.6)  # the shrink (44.0) happened before the idle phase
    missing = first_unobserved(summarize(rec))
    assert missing is not None and missing["key"] == "idle" and "ShrinkPod" in missing["what"]


def test_a_phase_that_timed_out_says_so() -> None:
    rec = recorded_run()
    rec.tasks["gpu"].started = None
    rec.phases[2].timed_out = True
    missing = first_unobserved(summarize(rec))
    assert missing is not None and missing["what"] == "not observed within 12s: task 'gpu' never started"


def test_a_phase_that_never_ran_is_not_observed() -> None:
    rec = recorded_run()
    rec.phases = rec.phases[:2]
    summary = summarize(rec)
    assert [p["observed"] for p in summary["phases"]] == [True, True, False, False]
    assert summary["phases"][2]["what"] == "phase did not run"


def test_pending_demand_is_attributed_by_label_selectors_including_fallbacks() -> None:
    groups = recorded_run().groups
    gpu = (1.0, 2, (LabelSelector.parse(SPOT), LabelSelector.parse(ON_DEMAND)))
    burst = (3.0, 1, (LabelSelector.parse({"ray.io/node-group": "cpu"}),))
    anywhere = (0.5, 2, ())
    assert demand_by_group([gpu, burst, anywhere], groups) == {
        "cpu": 4.0, "mem": 1.0, "l4-spot": 3.0, "l4-ondemand": 3.0}
