"""One replay: build the simulated cluster for a scenario, start one autoscaler, replay the trace in
virtual time until every task finished (or the horizon), and measure (see :mod:`.meter`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.peers.ray_request import IPPRSettings
from autoscaler.replay.drivers import DriverStats, RayDriver, RvaDriver
from autoscaler.replay.meter import Meter, MeteredRay, Sample, percentile
from autoscaler.replay.scenario import CLUSTER, NAMESPACE, Scenario
from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.cluster import SimCluster

POLICIES = ("rva", "horizontal", "ray-ippr")
#: ``none``: no autoscaler at all (the cluster stays as created) — a baseline and the simulator's own cost.
ALL_POLICIES = (*POLICIES, "none")
GI = 2**30


@dataclass
class RunResult:
    scenario: str
    policy: str
    seed: int
    tasks: int
    completed: int
    failed: int
    finished: bool  # every task completed before the horizon
    makespan_s: float
    cpu_efficiency: float
    memory_efficiency: float
    allocated_core_s: float
    used_core_s: float
    allocated_gib_s: float
    used_gib_s: float
    pods_created: int
    nodes_provisioned: int
    ttc_p50_s: float
    ttc_p95_s: float
    oom_kills: int
    peak_pods: int
    peak_nodes: int
    wall_s: float
    driver: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    actions: list[tuple[float, str, str]] = field(default_factory=list)

    METRICS = ("makespan_s", "cpu_efficiency", "memory_efficiency", "pods_created", "nodes_provisioned",
               "ttc_p50_s", "ttc_p95_s", "oom_kills")

    def as_dict(self, series: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("samples", "actions")}
        for k, v in list(out.items()):
            if isinstance(v, float):
                out[k] = round(v, 6)
        if series:
            out["samples"] = [s.__dict__ for s in self.samples]
            out["actions"] = self.actions
        return out


class IdleDriver:
    """No autoscaler."""

    def __init__(self) -> None:
        self.stats = DriverStats()
        self.t0 = 0.0

    async def run(self) -> None:
        return None


def _workers_running(cluster: SimCluster) -> int:
    return sum(1 for p in cluster.store.objects("pods") if (p["metadata"].get("labels") or {}).get("ray.io/cluster")
               == CLUSTER and (p["metadata"].get("labels") or {}).get("ray.io/node-type") == "worker"
               and p.get("status", {}).get("phase") == "Running")


async def run_async(
    scenario: Scenario, policy: str, seed: int, *, sample_s: float = 1.0,
    progress: Callable[[float], None] | None = None, skip_quiet: bool = True, verify_skips: bool = False,
) -> RunResult:
    """``skip_quiet`` / ``verify_skips``: see :class:`~autoscaler.replay.drivers.RvaDriver`."""
    if policy not in ALL_POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(ALL_POLICIES)}")
    wall0 = time.perf_counter()
    clock = VirtualClock()
    trace = scenario.load_trace(seed)
    ray = MeteredRay(clock)
    cluster = SimCluster(clock, pools=scenario.node_pools(), kubelet=scenario.kubelet_config(), seed=seed,
                         record_events=False, ray=ray)
    meter = Meter(cluster.store, ray, CLUSTER, NAMESPACE, interval=sample_s)
    meter.attach()
    await cluster.start()
    cluster.create_raycluster(scenario.raycluster())
    min_workers = sum(int(g.get("min_replicas", 0)) for g in scenario.groups)
    await cluster.wait_for(lambda: _workers_running(cluster) >= min_workers, timeout=900, step=1.0)
    if scenario.warmup_s:
        await clock.advance(scenario.warmup_s)

    common: dict[str, Any] = {"cluster": CLUSTER, "namespace": NAMESPACE, "server_minor": cluster.store.server_minor}
    driver: RvaDriver | RayDriver | IdleDriver
    if policy == "none":
        driver = IdleDriver()
    elif policy == "rva":
        driver = RvaDriver(clock, cluster.store, ray, policy=scenario.policy(), loop_s=scenario.rva_loop_s,
                           skip_quiet=skip_quiet, verify_skips=verify_skips, **common)
    else:
        ippr = None
        if policy == "ray-ippr":
            ippr = IPPRSettings(max_per_group=scenario.pod_max(), resize_timeout_s=60)
        driver = RayDriver(clock, cluster.store, ray, ippr=ippr, idle_timeout_s=scenario.idle_timeout_s,
                           loop_s=scenario.ray_loop_s, **common)
    created_before = meter.pods_created
    nodes_before = sum(1 for _, act, _ in cluster.provisioner.log if act == "created")
    loop_task = asyncio.ensure_future(driver.run())
    ray.expected = len(trace)
    t0 = clock.now()
    driver.t0 = t0
    ray.schedule_trace(trace)
    try:
        next_report = 0.0
        while not ray.done() and clock.now() - t0 < scenario.horizon_s:
            if loop_task.done() and policy != "none":
                loop_task.result()  # re-raise a crash of the autoscaler loop
            meter.sample(clock.now() - t0)
            await clock.advance(sample_s)
            if progress is not None and clock.now() - t0 >= next_report:
                progress(clock.now() - t0)
                next_report += 60.0
        meter.sample(clock.now() - t0)
    finally:
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await loop_task
        await cluster.stop()

    finished = ray.done() and ray.stats.failed == 0
    first = ray.first_submit if ray.first_submit is not None else t0
    end = (ray.last_finish if ray.last_finish is not None else clock.now()) - first
    if not ray.done():
        end = clock.now() - first
    acc = meter.integrate(end)
    nodes_created = sum(1 for _, act, _ in cluster.provisioner.log if act == "created") - nodes_before
    samples = [s for s in meter.samples if s.t <= end + sample_s]
    return RunResult(
        scenario=scenario.name, policy=policy, seed=seed, tasks=len(trace), completed=ray.stats.completed,
        failed=ray.stats.failed, finished=finished, makespan_s=end,
        cpu_efficiency=acc["used_cpu"] / acc["alloc_cpu"] if acc["alloc_cpu"] else 0.0,
        memory_efficiency=acc["used_mem"] / acc["alloc_mem"] if acc["alloc_mem"] else 0.0,
        allocated_core_s=acc["alloc_cpu"], used_core_s=acc["used_cpu"],
        allocated_gib_s=acc["alloc_mem"] / GI, used_gib_s=acc["used_mem"] / GI,
        pods_created=meter.pods_created - created_before + min_workers, nodes_provisioned=nodes_created,
        ttc_p50_s=percentile(ray.waits, 0.5), ttc_p95_s=percentile(ray.waits, 0.95), oom_kills=ray.stats.oom_kills,
        peak_pods=max((s.pods for s in samples), default=0), peak_nodes=max((s.nodes for s in samples), default=0),
        wall_s=time.perf_counter() - wall0, driver=driver.stats.as_dict(), samples=samples,
        actions=driver.stats.actions,
    )


def run(scenario: Scenario, policy: str, seed: int, **kw: Any) -> RunResult:
    return asyncio.run(run_async(scenario, policy, seed, **kw))


def run_many(
    scenario: Scenario, policies: Sequence[str], seeds: Sequence[int],
    on_result: Callable[[RunResult], None] | None = None, **kw: Any,
) -> list[RunResult]:
    out = []
    for policy in policies:
        for seed in seeds:
            result = run(scenario, policy, seed, **kw)
            out.append(result)
            if on_result is not None:
                on_result(result)
    return out


def summarize(results: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """Per policy: the mean of each metric over its runs (and min/max of makespan and CPU efficiency)."""
    out: dict[str, dict[str, float]] = {}
    for policy in dict.fromkeys(r.policy for r in results):
        rs = [r for r in results if r.policy == policy]
        row: dict[str, float] = {"runs": len(rs), "finished": sum(1 for r in rs if r.finished)}
        for m in RunResult.METRICS:
            row[m] = sum(float(getattr(r, m)) for r in rs) / len(rs)
        row["cpu_efficiency_min"] = min(r.cpu_efficiency for r in rs)
        row["cpu_efficiency_max"] = max(r.cpu_efficiency for r in rs)
        row["makespan_s_max"] = max(r.makespan_s for r in rs)
        out[policy] = row
    return out
