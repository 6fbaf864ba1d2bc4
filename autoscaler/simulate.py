"""``rva simulate``: replay a trace in virtual time on the simulated cluster under one autoscaler.

    rva simulate --scenario tpch-gke --policy rva                # 3 seeded runs, table + PNG
    rva simulate --scenario tpch-gke --policy rva,horizontal,ray-ippr --json
    rva simulate --scenario my-scenario.json --policy ray-ippr --seed 7 --runs 1 --png out.png

Policies: ``rva`` (rva's planner and executor, 1 s loop), ``horizontal`` (Ray 2.60's v2 autoscaler,
IPPR off, 5 s loop), ``ray-ippr`` (the same with its in-place pod resize on); ``none`` (no autoscaler)
is a baseline. Scenarios: the built-in
names (``--list``) or a JSON file (see :mod:`autoscaler.replay.scenario`). Metric definitions:
``docs/efficiency.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoscaler.policy import PolicyError, load_policy_file
from autoscaler.replay.runner import ALL_POLICIES, POLICIES, RunResult, run, summarize
from autoscaler.replay.scenario import BUILTIN, Scenario, builtin_traces, load_scenario

COLUMNS = (
    ("policy", "policy", "{}"), ("seed", "seed", "{}"), ("makespan_s", "makespan s", "{:.0f}"),
    ("cpu_efficiency", "CPU eff", "{:.3f}"), ("memory_efficiency", "mem eff", "{:.3f}"),
    ("pods_created", "pods", "{:.1f}"), ("nodes_provisioned", "nodes+", "{:.1f}"),
    ("ttc_p50_s", "ttc p50 s", "{:.1f}"), ("ttc_p95_s", "ttc p95 s", "{:.1f}"), ("oom_kills", "OOM", "{:.1f}"),
)


def parse_policies(text: str) -> list[str]:
    names = list(POLICIES) if text == "all" else [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in ALL_POLICIES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown policy {bad[0]!r}; choose from {', '.join(ALL_POLICIES)} or all")
    return names


def seeds_for(scenario: Scenario, seed: int | None, runs: int | None) -> list[int]:
    if seed is not None:
        return [seed + i for i in range(runs or 1)]
    base = list(scenario.seeds) or [0]
    if runs is None or runs <= len(base):
        return base[: runs or len(base)]
    return base + [base[-1] + i for i in range(1, runs - len(base) + 1)]


def table(rows: Sequence[dict[str, Any]]) -> str:
    widths = [max(len(title), *(len(fmt.format(r[key])) for r in rows)) for key, title, fmt in COLUMNS]
    lines = ["  ".join(title.rjust(w) for (_, title, _), w in zip(COLUMNS, widths, strict=True))]
    for r in rows:
        lines.append("  ".join(fmt.format(r[key]).rjust(w) for (key, _, fmt), w in zip(COLUMNS, widths, strict=True)))
    return "\n".join(lines)


def mean_rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    return [dict(row, policy=policy, seed="mean") for policy, row in summarize(results).items()]


def plot(results: Sequence[RunResult], path: str | Path, title: str) -> Path:
    """Capacity (allocated CPU of worker pods) vs demand (CPU in use + CPU queued) over time, one panel
    per policy (its first run), with the autoscaler's actions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts: dict[str, RunResult] = {}
    for r in results:
        firsts.setdefault(r.policy, r)
    fig, axes = plt.subplots(len(firsts), 1, figsize=(11, 2.8 * len(firsts) + 0.6), sharex=True, squeeze=False)
    marks = {"GrowPod": ("^", "tab:green"), "ShrinkPod": ("v", "tab:purple"), "ScaleOut": ("s", "tab:red"),
             "RemovePod": ("x", "tab:gray"), "RevertResize": ("D", "tab:orange")}
    for ax, (policy, r) in zip(axes[:, 0], firsts.items(), strict=True):
        t = [s.t for s in r.samples]
        ax.fill_between(t, [s.alloc_cpu for s in r.samples], step="post", alpha=0.25, color="tab:blue",
                        label="allocated CPU (worker pods)")
        ax.step(t, [s.used_cpu for s in r.samples], where="post", color="tab:blue", lw=1.2, label="CPU in use")
        ax.step(t, [s.used_cpu + s.pending_cpu for s in r.samples], where="post", color="black", lw=0.8, ls="--",
                label="demand (in use + queued)")
        top = max((s.alloc_cpu for s in r.samples), default=1.0)
        seen: set[str] = set()
        for at, kind, _ in r.actions:
            if kind in marks:
                m, c = marks[kind]
                ax.plot([at], [top * 1.04], marker=m, color=c, ls="", ms=5,
                        label=kind if kind not in seen else None)
                seen.add(kind)
        ax.set_ylabel("CPU cores")
        ax.set_title(f"{policy} (seed {r.seed}): CPU efficiency {r.cpu_efficiency:.2f}, makespan "
                     f"{r.makespan_s:.0f} s, {r.pods_created} pods, {r.nodes_provisioned} new nodes", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncol=3)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since the first submission (virtual)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="tpch-gke", help="built-in scenario name or JSON file (default tpch-gke)")
    parser.add_argument("--policy", type=parse_policies, default=["rva"],
                        help="rva | horizontal | ray-ippr (or none: no autoscaler), comma-separated, or all "
                             "(the three; default rva)")
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: the scenario's seeds)")
    parser.add_argument("--runs", type=int, default=None, help="runs per policy (default: the scenario's, 3)")
    parser.add_argument("--rva-policy", default=None, help="rva policy file to use instead of the scenario's")
    parser.add_argument("--json", action="store_true", help="print results as JSON (add --series for time series)")
    parser.add_argument("--series", action="store_true", help="with --json: include the sampled time series")
    parser.add_argument("--png", default=None, help="PNG path (default: a temp file, printed); 'none' to skip")
    parser.add_argument("--list", action="store_true", help="list built-in scenarios and traces")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def main(args: argparse.Namespace) -> int:
    if args.list:
        for name, doc in BUILTIN.items():
            print(f"{name:>14}  {doc.get('description', '')}")
        print("traces: " + ", ".join(builtin_traces()))
        return 0
    try:
        scenario = load_scenario(args.scenario)
        if args.rva_policy:
            scenario = scenario.with_(rva_policy=_policy_doc(args.rva_policy))
        scenario.policy()  # validate early
        seeds = seeds_for(scenario, args.seed, args.runs)
        scenario.load_trace(seeds[0])  # a malformed trace stops here, naming its line and field
    except (ValueError, PolicyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: list[RunResult] = []
    for policy in args.policy:
        for seed in seeds:
            if not args.quiet:
                print(f"running {scenario.name} / {policy} / seed {seed} …", file=sys.stderr, flush=True)
            r = run(scenario, policy, seed)
            results.append(r)
            if not args.quiet:
                print(f"  done in {r.wall_s:.1f} s wall: makespan {r.makespan_s:.0f} s, CPU efficiency "
                      f"{r.cpu_efficiency:.3f}{'' if r.finished else ' (NOT all tasks finished)'}",
                      file=sys.stderr, flush=True)
    png = None
    if (args.png or "").lower() != "none":
        target = args.png or tempfile.mkstemp(prefix=f"rva-simulate-{scenario.name}-", suffix=".png")[1]
        png = str(plot(results, target, f"rva simulate — {scenario.name}"))
    if args.json:
        print(json.dumps({
            "scenario": scenario.to_dict(), "seeds": seeds, "png": png,
            "runs": [r.as_dict(series=args.series) for r in results],
            "summary": summarize(results),
        }, indent=1))
        return 0
    print(f"scenario {scenario.name}: {scenario.description}")
    print(table([r.as_dict() for r in results]))
    if len(seeds) > 1 or len(args.policy) > 1:
        print("\nmeans over runs:")
        print(table(mean_rows(results)))
    unfinished = [r for r in results if not r.finished]
    if unfinished:
        print(f"\nwarning: {len(unfinished)} run(s) ended before every task finished (horizon "
              f"{scenario.horizon_s:.0f} s or failed tasks)")
    if png:
        print(f"\nPNG: {png}")
    return 0


def _policy_doc(path: str) -> dict[str, Any]:
    """A policy file as the bare document a scenario carries (validated)."""
    import yaml

    load_policy_file(path)
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if isinstance(data, dict) and data.get("kind") == "ConfigMap":
        data = yaml.safe_load(data.get("data", {}).get("policy.yaml", "")) or {}
    return dict(data)
