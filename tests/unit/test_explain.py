"""``rva explain`` and the snapshot JSON format it reads."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.explain import builtin_names, load_builtin, main
from autoscaler.model import Bundle, Gang, GangStrategy, InFlightResize, Pressure, ResizeState
from autoscaler.plan import plan
from autoscaler.snapshot_io import (
    SnapshotFormatError,
    dump_snapshot,
    load_snapshot,
    snapshot_from_dict,
    snapshot_to_dict,
)
from tests.planning import demand, group, node, pod, res, snapshot

#: what each built-in scenario must show: (action kind, reason) pairs and unserved reasons
EXPECTED = {
    "cpu-burst-in-place": {("GrowPod", "DemandFitsInPlace")},
    "node-full-scale-out": {("ScaleOut", "DemandNeedsNewPods")},
    "gpu-spot-fallback": {("ScaleOut", "FallbackGroup"), ("RemovePod", "StockoutCleanup")},
    "memory-pressure": {("GrowPod", "MemoryPressure")},
    "oom-kill": {("GrowPod", "OOMKilled")},
    "idle-shrink-and-remove": {("ShrinkPod", "IdleShrink"), ("RemovePod", "IdleTimeout")},
    "infeasible-demand": {("Unserved", "InfeasibleDemand")},
    "resize-infeasible-fallback": {("RevertResize", "ResizeInfeasible"), ("ScaleOut", "DemandNeedsNewPods")},
}


def args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(file=None, builtin=None, all_builtin=False, list=False, policy=None, now=None,
                                   json=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_every_builtin_scenario_shows_its_decisions() -> None:
    assert set(builtin_names()) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        s = load_builtin(name)
        p = plan(s.snapshot, s.policy, s.now)
        seen = {(type(a).__name__, a.reason.value) for a in p.actions}
        seen |= {("Unserved", u.reason.value) for u in p.unserved}
        assert expected <= seen, (name, seen)
        assert all(a.why for a in p.actions)


def test_oom_scenario_is_the_vpa_vector() -> None:
    s = load_builtin("oom-kill")
    (grow,) = plan(s.snapshot, s.policy, s.now).actions
    assert grow.requests["memory"] == 3600 * 2**20


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(builtin="cpu-burst-in-place")) == 0
    out = capsys.readouterr().out
    assert "GrowPod" in out and "[DemandFitsInPlace]" in out and "grow cpu 4 →" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(all_builtin=True, json=True)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["scenario"] for r in rows} == set(EXPECTED)
    row = next(r for r in rows if r["scenario"] == "gpu-spot-fallback")
    scale = next(a for a in row["actions"] if a["kind"] == "ScaleOut")
    assert scale == {"kind": "ScaleOut", "reason": "FallbackGroup", "why": scale["why"], "group": "gpu-l4-ondemand",
                     "count": 2, "replicas": 2}
    grows = [a for r in rows for a in r["actions"] if a["kind"] == "GrowPod"]
    assert grows and all(isinstance(a["rayMemory"], int) and a["rayMemory"] >= 0 for a in grows)


def test_file_policy_and_now_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = load_builtin("cpu-burst-in-place")
    f = tmp_path / "snap.json"
    f.write_text(dump_snapshot(s.snapshot))  # a bare snapshot, no scenario wrapper
    pol = tmp_path / "policy.yaml"
    pol.write_text("dryRun: true\n")
    assert main(args(file=str(f), policy=str(pol), json=True, now=s.now)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["actions"] == [] and out["suppressed"][0]["kind"] == "GrowPod"


def test_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(builtin="nope")) == 1
    assert "no built-in scenario" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"namespace": "x", "cluster": "y", "taken_at": 0, "pods": [{"nme": "p"}],
                               "nodes": [], "groups": []}))
    assert main(args(file=str(bad))) == 1
    assert "snapshot.pods[0]" in capsys.readouterr().err


def test_cli_end_to_end() -> None:
    run = subprocess.run([sys.executable, "-m", "autoscaler.cli", "explain", "--builtin", "oom-kill"],
                         capture_output=True, text=True, check=True)
    assert "OOMKilled" in run.stdout and "3600Mi" in run.stdout


def test_snapshot_round_trip_covers_every_field() -> None:
    g = group("gpu", gpu=1, labels={"acc": "L4"}, stocked_out_until=5.0, workers_to_delete=("x",), priority=3)
    r = res(6, 20)
    p = pod("a", g, "n1", in_use=res(1, 1), resize_state=ResizeState.DEFERRED, resize_since=3.0,
            in_flight=InFlightResize(r, r, res(4, 16), res(4, 16), 2.0, 3, "DemandFitsInPlace", raylet_done=True))
    snap = snapshot(
        [p, pod("b", g, None, ray=False, phase="Pending")], [node("n1", 16, 64, ready=False)], [g],
        demands=(demand(1, 2, count=3, selectors=({"acc": "L4", "zone": "!a"}, {"acc": "in(L4,T4)"})),),
        gangs=(Gang("pg", GangStrategy.STRICT_SPREAD, (Bundle(res(1, 1)), Bundle(res(2, 0, gpu=1)))),),
        constraints=(demand(4, 4),),
        pressure={"a": Pressure("a", 1.0, 12.5, 1.0, 100, 200, 150, 2, oom_kills=1, last_oom_at=0.5)},
        server_minor=33, demand_truncated=True,
    )
    data = snapshot_to_dict(snap)
    assert snapshot_from_dict(json.loads(json.dumps(data))) == snap
    assert load_snapshot(dump_snapshot(snap)) == snap
    assert data["pods"][0]["requests"] == {"cpu": "4", "gpu": "1", "memory": "16Gi"}


def test_snapshot_reader_accepts_ray_selector_syntax_and_numbers() -> None:
    data = {"namespace": "n", "cluster": "c", "taken_at": 1, "pods": [], "nodes": [], "groups": [],
            "demands": [{"shape": {"cpu": 1.5, "memory": "1Gi"}, "count": 2, "selectors": [{"zone": "in(a,b)"}]}]}
    snap = snapshot_from_dict(data)
    assert snap.demands[0].shape == res(1.5, 1)
    assert str(snap.demands[0].selectors[0]) == "{zone in (a,b)}"
    with pytest.raises(SnapshotFormatError, match=r"snapshot\.demands"):
        snapshot_from_dict({**data, "demands": [{"shape": {}, "count": 1, "oops": 1}]})


def test_builtin_files_match_their_generator() -> None:
    from tests.make_scenarios import OUT, build

    for name, data in build().items():
        on_disk = json.loads((OUT / f"{name}.json").read_text())
        assert on_disk == json.loads(json.dumps(data)), f"run python -m tests.make_scenarios ({name} is stale)"
