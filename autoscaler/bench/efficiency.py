"""``rva bench efficiency``: the ``tpch-gke`` scenario, 3 seeded runs × rva / Ray horizontal / Ray IPPR.

Prints per policy (means over the runs, and each run with ``--runs-table``): makespan, CPU efficiency
(used core·s / allocated core·s), memory efficiency, pods created, nodes provisioned, time-to-capacity
p50/p95, OOM kills; then the ratios rva / horizontal and rva / ray-ippr and the issue's goals (printed,
not asserted). ``--with-default-policy`` adds rva with the built-in default policy (cooldown 60 s …)
next to the scenario's batch policy, so the effect of the policy is visible. ``--hour`` also replays one
virtual hour of a 1,000-pod trace with rva in the loop every virtual second and prints its wall time (goal
< 60 s), next to the simulator's own time for the same hour; ``--hour-no-skip`` adds the same hour with
the planner called on every loop (no skipping of provably quiet loops, see ``autoscaler.replay.quiet``).
Definitions: ``docs/efficiency.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.replay.runner import POLICIES, RunResult, run, summarize
from autoscaler.replay.scenario import Scenario, load_scenario
from autoscaler.simulate import mean_rows, table

GOAL_CPU_VS_HORIZONTAL = 1.3
AIM_CPU_VS_HORIZONTAL = 1.5


def ratios(summary: Mapping[str, Mapping[str, float]], ours: str = "rva") -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for peer in ("horizontal", "ray-ippr"):
        if ours not in summary or peer not in summary:
            continue
        a, b = summary[ours], summary[peer]
        out[f"{ours}/{peer}"] = {
            m: (a[m] / b[m] if b[m] else None)
            for m in ("cpu_efficiency", "memory_efficiency", "makespan_s", "pods_created")
        }
    return out


def goals(summary: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    rva, hor, ippr = summary.get("rva"), summary.get("horizontal"), summary.get("ray-ippr")
    if not (rva and hor and ippr):
        return {}
    vs_h = rva["cpu_efficiency"] / hor["cpu_efficiency"] if hor["cpu_efficiency"] else None
    tol = 1.005  # makespans are means of seeded runs; within 0.5 % counts as "no worse"
    return {
        "cpu_efficiency_vs_horizontal": vs_h,
        "cpu_vs_horizontal_ge_1.3": bool(vs_h and vs_h >= GOAL_CPU_VS_HORIZONTAL),
        "cpu_vs_horizontal_ge_1.5_aim": bool(vs_h and vs_h >= AIM_CPU_VS_HORIZONTAL),
        "cpu_ge_ray_ippr": rva["cpu_efficiency"] >= ippr["cpu_efficiency"],
        "makespan_no_worse_than_horizontal": rva["makespan_s"] <= hor["makespan_s"] * tol,
        "makespan_no_worse_than_ray_ippr": rva["makespan_s"] <= ippr["makespan_s"] * tol,
        "all_runs_finished": all(s["finished"] == s["runs"] for s in summary.values()),
    }


def hour_replay(pods: int = 1_000, hours: float = 1.0, seed: int = 0, policy: str = "rva",
                loop_s: float = 1.0, skip_quiet: bool = True) -> dict[str, Any]:
    """One virtual hour of a 1,000-pod cluster (the ``sim_trace`` sizes: 10 pods per node) replaying a
    Poisson task trace through the replay engine (simulated cluster + simulated Ray + metering), with
    ``policy`` in the loop (``rva``: rva's planner + executor every ``loop_s``; ``none``: the replay alone).
    ``skip_quiet=False``: call the planner on every loop, even when it provably decides nothing."""
    scenario = hour_scenario(pods, hours).with_(rva_loop_s=loop_s)
    t0 = time.perf_counter()
    r = run(scenario, policy, seed, sample_s=5.0, skip_quiet=skip_quiet)
    wall = time.perf_counter() - t0
    d = r.driver
    out: dict[str, Any] = {
        "policy": policy, "loop_s": loop_s if policy == "rva" else None, "skip_quiet": skip_quiet,
        "pods": pods, "virtual_s": hours * 3600, "wall_s": round(wall, 2),
        "tasks": r.tasks, "completed": r.completed, "peak_pods": r.peak_pods,
        "cpu_efficiency": round(r.cpu_efficiency, 3), "goal_wall_s": 60.0,
    }
    if policy == "rva":
        loops = max(1, d["loops"])
        out.update({
            "rva_loops": d["loops"], "planner_calls": d["plans"], "quiet_loops_skipped": d["skipped"],
            "actions": len(r.actions), "snapshot_seconds": d["snapshot_seconds"], "plan_seconds": d["plan_seconds"],
            "act_seconds": d["act_seconds"],
            "per_loop_ms": {"snapshot": round(1000 * d["snapshot_seconds"] / loops, 3),
                            "plan": round(1000 * d["plan_seconds"] / loops, 3),
                            "plan_per_call": round(1000 * d["plan_seconds"] / max(1, d["plans"]), 3),
                            "act": round(1000 * d["act_seconds"] / loops, 3)},
        })
    return out


def hour_scenario(pods: int, hours: float) -> Scenario:
    """``pods`` worker pods of 2 CPU / 6 GiB, 10 per node, under a steady Poisson trace that keeps them busy."""
    nodes = max(1, pods // 10)
    return Scenario.from_dict({
        "name": f"hour-{pods}",
        "description": f"{pods} worker pods on {nodes} nodes, one virtual hour of Poisson tasks",
        "trace": {"synthetic": {"duration": hours * 3600, "tasks_per_second": 10.0, "mean_task_seconds": 120.0,
                                "shapes": [[3, {"CPU": 1.0, "memory": 2 * 2**30}, {}],
                                           [1, {"CPU": 2.0, "memory": 4 * 2**30}, {}]]}},
        "pools": [{"name": "cpu", "cpu": "24", "memory": "72Gi", "max_nodes": nodes + nodes // 10,
                   "initial_nodes": nodes, "provisioning_delay": 90.0, "scale_down_delay": hours * 7200}],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 8.0},
        "groups": [{"name": "workers", "cpu": "2", "memory": "6Gi", "min_replicas": pods, "max_replicas": pods + 100,
                    "max_pod": {"cpu": "4", "memory": "12Gi"}}],
        "rva_policy": {"groups": {"*": {"shrink": {"idleWindow": "2m"}}}},
        "seeds": [0], "horizon_s": hours * 3600,
    })


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="tpch-gke", help="scenario (default tpch-gke)")
    parser.add_argument("--runs", type=int, default=3, help="seeded runs per policy (default 3)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs-table", action="store_true", help="also print every run")
    parser.add_argument("--with-default-policy", action="store_true",
                        help="also run rva with its built-in default policy")
    parser.add_argument("--hour", action="store_true",
                        help="also time one virtual hour of a 1,000-pod trace with rva in the loop every second "
                             "(and the replay engine alone)")
    parser.add_argument("--hour-no-skip", action="store_true",
                        help="also time that hour with the planner called on every loop (no quiet-loop skipping)")


def run_bench(scenario: Scenario, seeds: Sequence[int], with_default: bool = False,
              progress: bool = True) -> tuple[list[RunResult], list[RunResult]]:
    results: list[RunResult] = []
    for policy in POLICIES:
        for seed in seeds:
            r = run(scenario, policy, seed)
            results.append(r)
            if progress:
                print(f"  {policy:>10} seed {seed}: CPU eff {r.cpu_efficiency:.3f}, makespan {r.makespan_s:.0f} s "
                      f"({r.wall_s:.1f} s wall)", file=sys.stderr, flush=True)
    default_runs: list[RunResult] = []
    if with_default:
        plain = scenario.with_(rva_policy={})
        for seed in seeds:
            r = run(plain, "rva", seed)
            r.policy = "rva-default"
            default_runs.append(r)
            if progress:
                print(f"  rva-default seed {seed}: CPU eff {r.cpu_efficiency:.3f}", file=sys.stderr, flush=True)
    return results, default_runs


def main(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    seeds = list(scenario.seeds)[: args.runs] if args.runs <= len(scenario.seeds) else list(range(args.runs))
    if not args.json:
        print(f"rva bench efficiency: {scenario.name} — {scenario.description}", file=sys.stderr)
    results, default_runs = run_bench(scenario, seeds, args.with_default_policy, progress=not args.json)
    summary = summarize(results)
    extra = summarize(default_runs) if default_runs else {}
    report: dict[str, Any] = {
        "scenario": scenario.name, "seeds": seeds, "summary": summary, "ratios": ratios(summary),
        "goals": goals(summary), "runs": [r.as_dict() for r in results + default_runs],
    }
    if extra:
        report["rva_default_policy"] = extra["rva-default"]
        report["ratios"].update({k.replace("rva-default", "rva-default"): v
                                 for k, v in ratios({**summary, **extra}, ours="rva-default").items()})
    if args.hour:
        if not args.json:
            print("  one virtual hour, 1,000 pods …", file=sys.stderr, flush=True)
        report["hour_replay"] = hour_replay()
        report["hour_replay_engine"] = hour_replay(policy="none")
    if args.hour_no_skip:
        if not args.json:
            print("  one virtual hour, 1,000 pods, planning every loop …", file=sys.stderr, flush=True)
        report["hour_replay_no_skip"] = hour_replay(skip_quiet=False)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
        return 0
    if args.runs_table:
        print(table([r.as_dict() for r in results + default_runs]))
        print()
    print(f"{scenario.name}, means over {len(seeds)} runs (seeds {', '.join(map(str, seeds))}):")
    print(table(mean_rows(results + default_runs)))
    print()
    for name, rs in report["ratios"].items():
        print(f"{name:>24}: CPU efficiency ×{_f(rs['cpu_efficiency'])}, memory efficiency "
              f"×{_f(rs['memory_efficiency'])}, makespan ×{_f(rs['makespan_s'])}, pods ×{_f(rs['pods_created'])}")
    g = report["goals"]
    if g:
        print()
        print(f"goal: rva CPU efficiency ≥ 1.3× horizontal (aim 1.5×): ×{_f(g['cpu_efficiency_vs_horizontal'])} → "
              f"{'met' if g['cpu_vs_horizontal_ge_1.3'] else 'MISSED'}"
              f"{' (aim met)' if g['cpu_vs_horizontal_ge_1.5_aim'] else ' (aim 1.5× not met)'}")
        print(f"goal: rva CPU efficiency ≥ ray-ippr's → {'met' if g['cpu_ge_ray_ippr'] else 'MISSED'}")
        print(f"goal: makespan no worse than horizontal / ray-ippr → "
              f"{'met' if g['makespan_no_worse_than_horizontal'] else 'MISSED'} / "
              f"{'met' if g['makespan_no_worse_than_ray_ippr'] else 'MISSED'}")
    if "hour_replay" in report:
        h, e = report["hour_replay"], report["hour_replay_engine"]
        print(f"goal: one virtual hour of a {h['pods']}-pod trace with rva in the loop replays in < 60 s → "
              f"{h['wall_s']} s wall ({'met' if h['wall_s'] < 60 else 'MISSED'}; {h['completed']} of {h['tasks']} "
              f"tasks done; the replay engine alone: {e['wall_s']} s)")
        print(f"  {_hour_loops(h)}")
    if "hour_replay_no_skip" in report:
        h = report["hour_replay_no_skip"]
        print(f"the same hour planning on every loop: {h['wall_s']} s wall; {_hour_loops(h)}")
    return 0


def _hour_loops(h: Mapping[str, Any]) -> str:
    ms = h["per_loop_ms"]
    return (f"{h['rva_loops']} loops: {h['planner_calls']} planner calls ({ms['plan_per_call']:.1f} ms each), "
            f"{h['quiet_loops_skipped']} skipped as provably quiet, {h['actions']} actions; per loop "
            f"{ms['snapshot']:.2f} ms reading the cluster, {ms['plan']:.2f} ms planning, {ms['act']:.2f} ms acting")


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"
