"""Memory pressure in the replay: simulated agents through the daemon's detector into the snapshot, the
quiet-loop gate planning whenever pressure could make the planner act, kubelet OOM kills reaching it."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from autoscaler.actions import GrowPod, Plan, Reason
from autoscaler.model import MEMORY, Pressure, Snapshot
from autoscaler.observe import pressure as detector
from autoscaler.plan import plan
from autoscaler.policy import Policy
from autoscaler.replay import drivers
from autoscaler.replay import pressure as replay_pressure
from autoscaler.replay.quiet import PlanGate, inert, planner_view, same_inputs
from autoscaler.replay.runner import run
from autoscaler.replay.scenario import BUILTIN, Scenario
from tests.unit.replay.test_quiet_loops import _quiet_cluster, _same_replay
from tests.unit.replay.test_replay import small

MI = 2**20


def one_pod(tmp_path: Path, used_mi: int, **over: Any) -> Scenario:
    """One 2 CPU / 2 GiB pod that can only grow in place, and one long task that asks Ray for 1 CPU only
    but uses ``used_mi`` MiB (plus the raylet's 256 MiB baseline): no Ray demand is ever pending."""
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"submit_at": 200, "duration": 300, "resources": {"CPU": 1},
                                 "memory_used": used_mi * MI}) + "\n")
    doc: dict[str, Any] = {
        "name": "one-pod",
        "trace": {"path": str(trace)},
        "pools": [{"name": "cpu", "cpu": "8", "memory": "16Gi", "max_nodes": 1, "initial_nodes": 1}],
        "groups": [{"name": "workers", "cpu": "2", "memory": "2Gi", "min_replicas": 1, "max_replicas": 1,
                    "max_pod": {"cpu": "4", "memory": "8Gi"}}],
        "horizon_s": 1200.0,
    }
    return small(**{**doc, **over})


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, Snapshot, Plan]]:
    calls: list[tuple[float, Snapshot, Plan]] = []
    real = drivers.make_plan

    def spy(snap: Snapshot, policy: Policy, now: float) -> Plan:
        out = real(snap, policy, now)
        calls.append((now, snap, out))
        return out

    monkeypatch.setattr(drivers, "make_plan", spy)
    return calls


def test_pressure_alone_is_planned_and_grows_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = one_pod(tmp_path, 1600)  # 1856 MiB of 2048: usage/limit 0.906, above the 0.9 threshold
    calls = _spy(monkeypatch)
    r = run(sc, "rva", 0)
    assert r.oom_kills == 0 and r.finished
    grows = [(t, a) for t, _, p in calls for a in p.actions if isinstance(a, GrowPod)]
    assert grows, "no growth for pressure"
    t_grow, grow = grows[0]
    assert grow.reason is Reason.MEMORY_PRESSURE and grow.requests.get(MEMORY) > 2 * 2**30
    assert not [t for t, _, p in calls if p.actions and t < t_grow]  # nothing else to do before
    # every loop from the first counted window to the growth was planned, not skipped: no Ray demand,
    # no timer, nothing in the store changed — only the detector's window count
    counting = [(t, s.pressure) for t, s, _ in calls if any(p.consecutive_windows for p in s.pressure.values())]
    assert counting and counting[0][0] == t_grow - 1.0 and counting[-1][0] >= t_grow
    assert [p.consecutive_windows for p in counting[0][1].values()] == [1]
    assert r.driver["skipped"] > 50  # quiet pressure (windows 0) does not keep the gate from skipping
    assert "memory pressure for 2 windows" in " ".join(d for _, k, d in r.actions if k == "GrowPod")


def test_a_pressure_replay_skips_only_provably_quiet_loops(tmp_path: Path) -> None:
    sc = one_pod(tmp_path, 1600)
    checked = run(sc, "rva", 0, verify_skips=True)  # raises on a skipped loop that plans an action
    _same_replay(checked, run(sc, "rva", 0, skip_quiet=False))
    assert checked.driver["grows"] >= 1


def test_a_kubelet_oom_kill_reaches_the_planner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = one_pod(tmp_path, 1900)  # 2156 MiB: OOM-killed at once (no window can see it coming)
    calls = _spy(monkeypatch)
    r = run(sc, "rva", 0)
    assert r.oom_kills >= 1
    grows = [a for _, _, p in calls for a in p.actions if isinstance(a, GrowPod)]
    # (the simulated Ray retries the task at once on the restarted container: all its attempts are
    # killed in the same virtual instant, before any autoscaler can act)
    assert grows and grows[0].reason is Reason.OOM_KILLED and grows[0].requests.get(MEMORY) > 2 * 2**30
    seen = [s.pressure for _, s, _ in calls if any(p.oom_kills for p in s.pressure.values())]
    assert seen and all(p.last_oom_at is not None for p in seen[0].values())


def test_the_agents_feed_the_daemons_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rva_drivers: list[drivers.RvaDriver]
) -> None:
    """The replay calls ``autoscaler.observe.pressure.detect_all`` itself (no copy of it)."""
    steps: list[int] = []
    real = detector.detect_all

    def counted(*args: Any, **kw: Any) -> Any:
        out = real(*args, **kw)
        steps.append(len(out[1]))
        return out

    monkeypatch.setattr(replay_pressure, "detect_all", counted)
    made = rva_drivers
    r = run(one_pod(tmp_path, 1600), "rva", 0)
    agents = made[0].agents
    assert agents is not None and sum(steps) == agents.detector_steps > 0
    # the fixed point: a calm pod with unchanged inputs is not fed again, so far fewer steps than loops
    assert agents.detector_steps < r.driver["loops"]


# -- the gate's pressure rules, against the real planner ----------------------------------------------

def _pressure(pod: str, windows: int, usage: int, limit: int, at: float = 100.0, **kw: Any) -> Pressure:
    return Pressure(pod=pod, sampled_at=at, psi_some_avg10=0.0, psi_full_avg10=0.0, usage_bytes=usage,
                    limit_bytes=limit, peak_usage_bytes=usage, consecutive_windows=windows,
                    working_set_bytes=usage, **kw)


def test_pressure_values_outside_the_planners_view_keep_a_cluster_quiet() -> None:
    snap, policy = _quiet_cluster()
    gi = 2**30
    calm = dataclasses.replace(snap, pressure={"w-a": _pressure("w-a", 0, gi, 4 * gi)})
    assert inert(calm, policy) and not plan(calm, policy, 200.0).actions
    moved = dataclasses.replace(calm, pressure={"w-a": _pressure("w-a", 0, 3 * gi, 4 * gi, at=101.0)})
    assert same_inputs(calm, moved)  # usage and sample time moved, no window counted
    gate = PlanGate()
    gate.planned(calm, policy, 200.0, plan(calm, policy, 200.0))
    assert gate.may_skip(moved, policy, 201.0)


@pytest.mark.parametrize("why", ["counting", "sustained", "oom"])
def test_pressure_that_could_make_the_planner_act_is_always_planned(why: str) -> None:
    snap, policy = _quiet_cluster()
    gi = 2**30
    calm = dataclasses.replace(snap, pressure={"w-a": _pressure("w-a", 0, gi, 4 * gi)})
    gate = PlanGate()
    gate.planned(calm, policy, 200.0, plan(calm, policy, 200.0))
    if why == "oom":
        p = dataclasses.replace(calm.pressure["w-a"], oom_kills=1, last_oom_at=200.5, peak_usage_bytes=4 * gi)
    else:
        p = _pressure("w-a", 1 if why == "counting" else 2, int(3.8 * gi), 4 * gi, at=201.0)
    hot = dataclasses.replace(calm, pressure={"w-a": p})
    assert planner_view(p) != planner_view(calm.pressure["w-a"]) and not same_inputs(calm, hot)
    assert not gate.may_skip(hot, policy, 201.0)
    if why == "counting":
        assert not inert(hot, policy)
        gate.planned(hot, policy, 201.0, plan(hot, policy, 201.0))
        assert not gate.may_skip(hot, policy, 201.5)  # a window counting: never skipped
    else:
        acted = plan(hot, policy, 201.0).actions
        assert any(isinstance(a, GrowPod) and a.reason in (Reason.MEMORY_PRESSURE, Reason.OOM_KILLED)
                   for a in acted)


@pytest.mark.parametrize("name", ["one-pod", "tpch-gke-default", "skewed-memory"])
def test_the_fixed_point_shortcut_changes_nothing(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not feeding a calm pod whose inputs did not change gives the replay (and every loop's planner view
    of the pressure) that feeding every pod every second gives."""
    if name == "one-pod":
        sc = one_pod(tmp_path, 1600)
    elif name == "skewed-memory":
        sc = Scenario.from_dict(BUILTIN[name]).with_(horizon_s=900.0)
    else:
        sc = Scenario.from_dict(BUILTIN["tpch-gke"]).with_(rva_policy={})
    views: dict[bool, list[tuple[float, dict[str, tuple[object, ...]]]]] = {True: [], False: []}
    real_sample = replay_pressure.SimAgents.sample

    def sample(self: replay_pressure.SimAgents, policy: Policy, now: float) -> int:
        out = real_sample(self, policy, now)
        views[self.shortcut].append((now, {k: planner_view(p) for k, p in self.pressure.items()}))
        return out

    monkeypatch.setattr(replay_pressure.SimAgents, "sample", sample)
    fast = run(sc, "rva", 0)
    monkeypatch.setattr(drivers, "SimAgents", functools.partial(replay_pressure.SimAgents, shortcut=False))
    full = run(sc, "rva", 0)
    _same_replay(fast, full)
    assert views[True] == views[False] and len(views[True]) > 100
