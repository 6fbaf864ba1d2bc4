"""The built-in ``rva explain`` scenarios, as code: ``python -m tests.make_scenarios`` rewrites
``autoscaler/scenarios/*.json``; ``tests/unit/test_explain.py`` checks the files match."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from autoscaler.model import InFlightResize, Pressure, ResizeState, Resources, Snapshot
from autoscaler.snapshot_io import snapshot_to_dict
from tests.planning import GI, MI, demand, group, node, pod, res, snapshot

OUT = Path(__file__).resolve().parents[1] / "autoscaler" / "scenarios"

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def build() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, desc: str, snap: Snapshot, policy: dict[str, Any] | None = None) -> None:
        snap = dataclasses.replace(snap, taken_at=NOW)
        out[name] = {"description": desc, "now": NOW, **({"policy": policy} if policy else {}),
                     "snapshot": snapshot_to_dict(snap)}

    # 1. CPU burst served in place
    g = group("cpu-workers", cpu=4, mem_gi=16, replicas=2, min_replicas=1, max_replicas=8)
    pods = [pod("rc-cpu-workers-worker-a1b2c", g, "node-1", in_use=res(4, 6)),
            pod("rc-cpu-workers-worker-d3e4f", g, "node-2", in_use=res(4, 6))]
    add("cpu-burst-in-place",
        "6 one-CPU tasks pending on busy 4-CPU pods; their nodes have room, so a pod grows in place",
        snapshot(pods, [node("node-1", 16, 64), node("node-2", 16, 64)], [g], demands=(demand(1, 1, count=6),)),
        {"groups": {"*": {"vertical": {"maxPod": {"cpu": "12", "memory": "48Gi"}}}}})

    # 2. node full -> scale out
    g = group("cpu-workers", cpu=4, mem_gi=16, replicas=2, max_replicas=8)
    pods = [pod("rc-cpu-workers-worker-a1b2c", g, "node-1", in_use=res(4, 8)),
            pod("rc-cpu-workers-worker-d3e4f", g, "node-2", in_use=res(4, 8))]
    nodes = [node("node-1", 4.5, 20), node("node-2", 4.5, 20)]
    add("node-full-scale-out", "8 two-CPU tasks pending; the pods' nodes are full, so the group scales out",
        snapshot(pods, nodes, [g], demands=(demand(2, 2, count=8),)))

    # 3. GPU spot stocked out -> on-demand fallback
    spot = group("gpu-l4-spot", cpu=8, mem_gi=32, gpu=1, replicas=1, max_replicas=4,
                 labels={"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}, priority=10,
                 stocked_out_until=NOW + 240)
    ond = group("gpu-l4-ondemand", cpu=8, mem_gi=32, gpu=1, replicas=0, max_replicas=4,
                labels={"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"})
    cpu = group("cpu-workers", cpu=4, mem_gi=16, replicas=0, max_replicas=4)
    stuck = pod("rc-gpu-l4-spot-worker-zz9y8", spot, None, ray=False, phase="Pending",
                unschedulable_since=NOW - 400)
    add("gpu-spot-fallback",
        "2 L4 tasks prefer spot; the spot group is stocked out (its pod is stuck Unschedulable), so on-demand L4 "
        "scales out, the stuck pod is removed, and a CPU-only task stays off the GPU groups",
        snapshot([stuck], [], [spot, ond, cpu], demands=(
            demand(4, 8, count=2, gpu=1, selectors=({"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"},
                                                     {"ray.io/accelerator-type": "L4"})),
            demand(2, 4, count=1))))

    # 4. memory pressure
    g = group("mem-workers", cpu=4, mem_gi=16, replicas=1, max_replicas=4)
    p = pod("rc-mem-workers-worker-q1w2e", g, "node-1", in_use=res(2, 4))
    pr = Pressure(pod=p.name, sampled_at=NOW - 5, psi_some_avg10=27.5, psi_full_avg10=9.0, usage_bytes=15 * GI,
                  limit_bytes=16 * GI, peak_usage_bytes=int(15.5 * GI), consecutive_windows=3,
                  working_set_bytes=int(14.8 * GI))
    add("memory-pressure",
        "a pod has stalled on memory (PSI some avg10 27.5 %, 92 % of its limit) for 3 windows; memory grows in place",
        snapshot([p], [node("node-1", 16, 64)], [g], pressure={p.name: pr}),
        {"groups": {"*": {"vertical": {"maxPod": {"memory": "48Gi"}}}}})

    # 5. OOM kill
    g = group("etl", cpu=2, mem_gi=1000 / 1024, replicas=1, max_replicas=4)
    size = Resources.of({"cpu": 2000, "memory": 1000 * MI})
    p = pod("rc-etl-worker-o0m1k", g, "node-1", size=size, in_use=Resources.of({"cpu": 1000}), restart_count=1)
    pr = Pressure(pod=p.name, sampled_at=NOW - 5, psi_some_avg10=0.0, psi_full_avg10=0.0, usage_bytes=200 * MI,
                  limit_bytes=1000 * MI, peak_usage_bytes=3000 * MI, consecutive_windows=0, oom_kills=1,
                  last_oom_at=NOW - 20)
    add("oom-kill", "a 1000Mi pod was OOM-killed with a 3000Mi usage peak; VPA's rule bumps it to 3600Mi at once",
        snapshot([p], [node("node-1", 8, 32)], [g], pressure={p.name: pr}))

    # 6. idle shrink + removal
    g = group("cpu-workers", cpu=4, mem_gi=16, replicas=3, min_replicas=1, max_replicas=8)
    big = Resources.of({"cpu": 12000, "memory": 40 * GI})
    pods = [pod("rc-cpu-workers-worker-idle1", g, "node-1", idle_s=1800),
            pod("rc-cpu-workers-worker-grown", g, "node-2", size=big, idle_s=900, last_resized_at=NOW - 3600),
            pod("rc-cpu-workers-worker-busy1", g, "node-3", in_use=res(3, 8))]
    pr = Pressure(pod="rc-cpu-workers-worker-grown", sampled_at=NOW - 5, psi_some_avg10=0.0, psi_full_avg10=0.0,
                  usage_bytes=9 * GI, limit_bytes=40 * GI, peak_usage_bytes=18 * GI, consecutive_windows=0)
    add("idle-shrink-and-remove",
        "no demand: the longest-idle pod is removed, the grown one (kept by min replicas) shrinks back to its "
        "template cpu and to peak memory × 1.2, the busy pod is left alone",
        snapshot(pods, [node("node-1"), node("node-2"), node("node-3")], [g], pressure={pr.pod: pr}),
        {"groups": {"*": {"vertical": {"maxPod": {"cpu": "16", "memory": "64Gi"}}},
                    "cpu-workers": {"horizontal": {"minReplicas": 2}}}})

    # 7. infeasible demand
    g = group("cpu-workers", cpu=4, mem_gi=16, replicas=1, max_replicas=4)
    p = pod("rc-cpu-workers-worker-a1b2c", g, "node-1", in_use=res(4, 4))
    add("infeasible-demand",
        "a 64-CPU task no group can ever hold and a task asking for a zone no group has: both reported infeasible",
        snapshot([p], [node("node-1", 16, 64)], [g], demands=(
            demand(64, 8, count=1), demand(1, 1, count=2, selectors=({"ray.io/availability-zone": "us-east1-z"},)))),
        {"groups": {"*": {"vertical": {"maxPod": {"cpu": "8", "memory": "32Gi"}}}}})

    # 8. in-flight infeasible resize -> revert and fall back
    g = group("cpu-workers", cpu=4, mem_gi=16, replicas=1, max_replicas=4)
    target = Resources.of({"cpu": 10000, "memory": 16 * GI})
    p = pod("rc-cpu-workers-worker-a1b2c", g, "node-1", in_use=res(4, 4))
    p = dataclasses.replace(
        p, requests=target, limits=target, resize_state=ResizeState.INFEASIBLE, resize_since=NOW - 10,
        resize_message="Node didn't have enough capacity: cpu, requested: 10000, capacity: 8000",
        in_flight=InFlightResize(target_requests=target, target_limits=target, previous_requests=g.template_requests,
                                 previous_limits=g.template_limits, started_at=NOW - 12, generation=2,
                                 reason="DemandFitsInPlace"), generation=2)
    add("resize-infeasible-fallback",
        "the kubelet found a resize infeasible: rva reverts it and serves the demand with a new pod at once",
        snapshot([p], [node("node-1", 8, 64)], [g], demands=(demand(3, 2, count=1),)))


    return out


def write(folder: Path = OUT) -> list[str]:
    names = []
    for name, sc in build().items():
        (folder / f"{name}.json").write_text(json.dumps(sc, indent=2) + "\n", encoding="utf-8")
        names.append(name)
    return sorted(names)


if __name__ == "__main__":
    print("\n".join(write()))
