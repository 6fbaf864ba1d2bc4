"""``rva explain``: plan once on a snapshot and print every decision with its reason.

A FILE is a snapshot JSON (``rva``'s snapshot format, see :mod:`autoscaler.snapshot_io`) or a
scenario: ``{"description", "now", "policy", "snapshot"}`` where ``policy`` is a bare policy mapping.
Built-in scenarios ship under ``autoscaler/scenarios/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from autoscaler.actions import Action, Plan, ScaleOut
from autoscaler.model import Snapshot
from autoscaler.plan import plan
from autoscaler.plan.text import demand_label
from autoscaler.plan_json import plan_to_dict
from autoscaler.policy import Policy, PolicyError, load_policy_file, parse_policy
from autoscaler.snapshot_io import SnapshotFormatError, snapshot_from_dict


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    snapshot: Snapshot
    policy: Policy
    now: float


def scenario_from_dict(data: Mapping[str, Any], name: str) -> Scenario:
    if "snapshot" in data:
        snap = snapshot_from_dict(data["snapshot"])
        policy = parse_policy(data.get("policy"), f"{name}: policy")
        now = float(data.get("now", snap.taken_at))
        return Scenario(name, str(data.get("description", "")), snap, policy, now)
    snap = snapshot_from_dict(data)
    return Scenario(name, "", snap, Policy.default(), snap.taken_at)


def builtin_names() -> list[str]:
    folder = resources.files("autoscaler") / "scenarios"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def load_builtin(name: str) -> Scenario:
    path = resources.files("autoscaler") / "scenarios" / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no built-in scenario {name!r}; choose from: {', '.join(builtin_names())}")
    return scenario_from_dict(json.loads(path.read_text(encoding="utf-8")), name)


def load_scenario_file(path: str) -> Scenario:
    with open(path, encoding="utf-8") as f:
        return scenario_from_dict(json.load(f), path)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _target(a: Action) -> str:
    return a.group if isinstance(a, ScaleOut) else a.pod


def render_text(s: Scenario, p: Plan) -> str:
    lines = [f"== {s.name}" + (f" — {s.description}" if s.description else "")]
    lines.append(
        f"   RayCluster {s.snapshot.namespace}/{s.snapshot.cluster}: {len(s.snapshot.pods)} pods, "
        f"{len(s.snapshot.groups)} groups, {sum(d.count for d in s.snapshot.demands)} pending bundles; t={s.now:.0f}"
    )
    if not (p.actions or p.suppressed or p.unserved):
        lines.append("   nothing to do")
    for a in p.actions:
        lines.append(f"   {type(a).__name__:<12} {_target(a):<24} [{a.reason.value}] {a.why}")
    for a in p.suppressed:
        lines.append(f"   (dry run) {type(a).__name__:<12} {_target(a):<24} [{a.reason.value}] {a.why}")
    for u in p.unserved:
        lines.append(f"   Unserved     {u.count}× {demand_label(u.demand)} [{u.reason.value}] {u.why}")
    for n in p.notes:
        lines.append(f"   note: {n}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("file", nargs="?", metavar="FILE", help="snapshot or scenario JSON")
    src.add_argument("--builtin", metavar="NAME", help="a built-in scenario (see --list)")
    src.add_argument("--all-builtin", action="store_true", help="every built-in scenario")
    src.add_argument("--list", action="store_true", help="list the built-in scenarios")
    src.add_argument("--cluster", metavar="NS/NAME", help="plan once against a live RayCluster (never acts)")
    parser.add_argument("--server", help="--cluster: API server URL (default: in-cluster, else kubeconfig)")
    parser.add_argument("--token-file", help="--cluster: bearer token file for --server")
    parser.add_argument("--kubeconfig", help="--cluster: kubeconfig path")
    parser.add_argument("--gcs-timeout", type=float, default=10.0, help="--cluster: seconds to wait for the GCS")
    parser.add_argument("--policy", metavar="FILE", help="policy ConfigMap or bare policy YAML (overrides)")
    parser.add_argument("--now", type=float, metavar="T", help="planning time, epoch seconds")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "cluster", None):
        from autoscaler.explain_live import explain_cluster

        return explain_cluster(args)
    if args.list:
        for name in builtin_names():
            print(name)
        return 0
    try:
        if args.all_builtin:
            scenarios = [load_builtin(n) for n in builtin_names()]
        elif args.builtin:
            scenarios = [load_builtin(args.builtin)]
        elif args.file:
            scenarios = [load_scenario_file(args.file)]
        else:
            print("rva explain: give FILE, --builtin NAME or --all-builtin", file=sys.stderr)
            return 2
        override = load_policy_file(args.policy) if args.policy else None
    except (KeyError, OSError, ValueError, PolicyError, SnapshotFormatError) as e:
        print(f"rva explain: {e}", file=sys.stderr)
        return 1
    results = []
    for s in scenarios:
        if override is not None:
            s = Scenario(s.name, s.description, s.snapshot, override, s.now)
        if args.now is not None:
            s = Scenario(s.name, s.description, s.snapshot, s.policy, args.now)
        results.append((s, plan(s.snapshot, s.policy, s.now)))
    if args.json:
        out = [{"scenario": s.name, "now": s.now, **plan_to_dict(p)} for s, p in results]
        print(json.dumps(out if len(out) != 1 or args.all_builtin else out[0], indent=2))
    else:
        print("\n\n".join(render_text(s, p) for s, p in results))
    return 0
