"""``rva`` command line: one sub-command per module, loaded lazily so ``rva agent`` never imports Ray.

Each command module defines ``configure(parser)`` (add its arguments) and ``main(args) -> int``.
To add a command, add one row to ``COMMANDS`` (or ``BENCHES`` for ``rva bench <name>``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: name → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("autoscaler.daemon", "the autoscaler daemon: watch opted-in RayClusters, resize in place, scale out"),
    "explain": ("autoscaler.explain", "plan once on a snapshot (file, built-in, or live cluster) and print why"),
    "policy": ("autoscaler.policy_cli", "check policy files or print the policy JSON Schema"),
    "trace": ("autoscaler.trace_cli", "record a workload trace from a local Ray run (record), or check one (show)"),
    "simulate": ("autoscaler.simulate", "replay a trace in virtual time under rva, Ray's horizontal or Ray IPPR"),
    "agent": ("autoscaler.agent",
              "per-pod memory-pressure agent: cgroup PSI/usage/OOM on /metrics and /v1/pressure"),
    "demo": ("autoscaler.demo", "rva end to end on this machine: simulated Kubernetes, real Ray, the real daemon"),
}

#: ``rva bench <name>`` → (module, one-line help)
BENCHES: dict[str, tuple[str, str]] = {
    "reaction": ("autoscaler.bench.reaction", "rva's reaction latency (real Ray, simulated cluster) and footprint"),
    "ray-read": ("autoscaler.bench.ray_read",
                 "GCS demand read + parse latency on a real local Ray (10k tasks, 50/500 shapes)"),
    "planner": ("autoscaler.bench.planner_bench", "time rva's planner against Ray's v2 scheduler"),
    "agent": ("autoscaler.bench.agent_bench", "RSS and CPU of a running rva agent at 1 s sampling"),
    "efficiency": ("autoscaler.bench.efficiency",
                   "tpch-gke: CPU/memory efficiency, makespan, pods of rva vs Ray horizontal vs Ray IPPR"),
    "sim": ("autoscaler.bench.sim_api", "simulated Kubernetes API throughput (GET/s, watch events/s) over HTTP"),
}


def _add_lazy(sub: argparse._SubParsersAction, name: str, module: str, help_: str) -> None:
    parser = sub.add_parser(name, help=help_, description=help_)
    mod = importlib.import_module(module)
    mod.configure(parser)
    parser.set_defaults(_main=mod.main)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rva", description="rva — vertical-first autoscaler for Ray on Kubernetes")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = argv[0] if argv else None
    for name, (module, help_) in COMMANDS.items():
        if wanted == name:
            _add_lazy(sub, name, module, help_)
        else:  # listed in --help without importing the module
            sub.add_parser(name, help=help_)
    bench = sub.add_parser("bench", help="benchmarks that print their numbers (--json for machines)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH")
    bench_wanted = argv[1] if len(argv) > 1 and wanted == "bench" else None
    for name, (module, help_) in BENCHES.items():
        if bench_wanted == name:
            _add_lazy(bench_sub, name, module, help_)
        else:
            bench_sub.add_parser(name, help=help_)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    run = getattr(args, "_main", None)
    if run is None:
        parser.print_help()
        return 2
    return int(run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
