"""The GCS reader and the raylet actuator against a real local Ray 2.60 cluster.

Tests run in file order on one cluster: reads first, then the resize and drain tests that change it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.actuate.raylet import DrainOutcome, RayletActuator, UnitResourceResizeError
from autoscaler.bench.local_ray import LocalRayCluster, NodeSpec, eventually
from autoscaler.model import (
    Bundle,
    Demand,
    Gang,
    GangStrategy,
    LabelSelector,
    PodState,
    QoSClass,
    Resources,
)
from autoscaler.observe.ray_demand import RayClusterState
from autoscaler.observe.ray_gcs import GcsConnection, RayGcsReader, UnsupportedRayVersion
from autoscaler.observe.ray_pods import attach_ray_nodes

pytestmark = pytest.mark.ray

GiB = 1024**3
HEAD = NodeSpec("rc-head-h0001", "headgroup", num_cpus=0, labels={"tier": "head"})
CPU_WORKER = NodeSpec(
    "rc-cpu-workers-c0001", "cpu-workers", num_cpus=4, memory=8 * GiB,
    labels={"disk": "ssd", "team": "ml"}, env={"RAY_NODE_MARKET_TYPE": "spot"},
)  # fmt: skip
L4_WORKER = NodeSpec(
    "rc-l4-ondemand-l0001", "l4-ondemand", num_cpus=2, memory=4 * GiB,
    labels={"ray.io/accelerator-type": "L4"}, env={"RAY_NODE_MARKET_TYPE": "on-demand"},
)  # fmt: skip


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """A head (no CPUs) and two labelled workers; stopped at the end of the module, pass or fail."""
    with LocalRayCluster(HEAD, (CPU_WORKER, L4_WORKER)) as cluster:
        yield cluster


DEMAND_DRIVER = """
import time
import ray
from ray.autoscaler.v2.sdk import request_cluster_resources
from ray.util.placement_group import placement_group

ray.init(address=ADDRESS, log_to_driver=False, logging_level="ERROR")
GiB = 1024**3

@ray.remote
def f():
    time.sleep(3600)

@ray.remote
class A:
    pass

# Everything below can never run on this cluster, so every count is exact.
refs = [f.options(num_cpus=8).remote() for _ in range(3)]                       # plain tasks, too big
actors = [A.options(num_cpus=1, memory=64 * GiB).remote() for _ in range(2)]    # actors with memory
refs.append(f.options(num_cpus=1, label_selector={"ray.io/accelerator-type": "H100"}).remote())
refs.append(f.options(num_cpus=2, label_selector={"ray.io/market-type": "!spot", "disk": "in(nvme,optane)"}).remote())
refs.append(f.options(num_cpus=2, label_selector={"ray.io/market-type": "!spot", "disk": "in(optane,nvme)"}).remote())
l4_spot = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}
l4_on_demand = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}
refs += [f.options(num_cpus=1, resources={"l4_slot": 1}, label_selector=l4_spot,
                   fallback_strategy=[{"label_selector": l4_on_demand}]).remote() for _ in range(2)]
actors.append(A.options(num_cpus=1, label_selector={"zone": "a"},
                        fallback_strategy=[{"label_selector": {"zone": "b"}}]).remote())
pgs = [
    placement_group([{"CPU": 3}, {"CPU": 3, "memory": GiB}], strategy="PACK"),
    placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD", bundle_label_selector=[{"team": "ml"}] * 3),
    placement_group([{"CPU": 1, "l4_slot": 1}] * 2, strategy="STRICT_PACK",
                    bundle_label_selector=[{"ray.io/accelerator-type": "L4"}] * 2),
]
# Tasks waiting for a bundle of the pending PACK group: served by the gang, so not demand of their own.
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
refs += [f.options(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pgs[0])).remote() for _ in range(2)]
request_cluster_resources(ADDRESS, [
    {"resources": {"CPU": 16}}, {"resources": {"CPU": 16}},
    {"resources": {"CPU": 4, "l4_slot": 1}, "label_selector": {"ray.io/accelerator-type": "L4"}},
])
print("PGS", *(pg.id.hex() for pg in pgs), flush=True)
print("READY", flush=True)
time.sleep(3600)
"""

RESIZE_DRIVER = """
import os, time
import ray
ray.init(address=ADDRESS, log_to_driver=False, logging_level="ERROR")

@ray.remote
def hold(name, seconds):
    with open(os.path.join(MARKS, name), "w") as f:
        f.write(ray.get_runtime_context().get_node_id())
    time.sleep(seconds)

on_cpu_workers = {"ray.io/node-group": "cpu-workers"}
big = hold.options(num_cpus=8, label_selector=on_cpu_workers).remote("big", 0.5)
print("READY", flush=True)
ray.get(big)
six = hold.options(num_cpus=6, label_selector=on_cpu_workers).remote("six", 3600)
time.sleep(3600)
"""


def sel(expr: dict[str, str]) -> LabelSelector:
    return LabelSelector.parse(expr)


def reader_for(cluster: LocalRayCluster) -> tuple[GcsConnection, RayGcsReader]:
    conn = GcsConnection(cluster.address, env={}, default_token_path=None)
    return conn, RayGcsReader(conn, cluster="test")


def pod(name: str, group: str) -> PodState:
    r = Resources.of(cpu=1000)
    return PodState(name, "ray", group, "k8s-node", "Running", QoSClass.GUARANTEED, "ray-worker", r, r, r, r, r)


async def test_nodes_match_the_started_raylets(ray_cluster: LocalRayCluster) -> None:
    conn, reader = reader_for(ray_cluster)
    async with conn:
        state = await reader.read()
    assert conn.ray_version == "2.60.0"
    nodes = {n.instance_id: n for n in state.nodes}
    assert set(nodes) == {HEAD.instance_id, CPU_WORKER.instance_id, L4_WORKER.instance_id}
    cpu, l4, head = nodes[CPU_WORKER.instance_id], nodes[L4_WORKER.instance_id], nodes[HEAD.instance_id]
    assert (cpu.node_type, l4.node_type, head.node_type) == ("cpu-workers", "l4-ondemand", "headgroup")
    assert cpu.total == Resources.of(cpu=4000, memory=8 * GiB) and l4.total == Resources.of(cpu=2000, memory=4 * GiB)
    assert head.total.get("cpu") == 0
    assert cpu.labels["ray.io/market-type"] == "spot" and cpu.labels["disk"] == "ssd"
    assert cpu.labels["ray.io/node-group"] == "cpu-workers" and cpu.labels["ray.io/node-id"] == cpu.node_id
    assert l4.labels["ray.io/accelerator-type"] == "L4" and l4.labels["ray.io/market-type"] == "on-demand"
    assert {n.status for n in state.nodes} <= {"RUNNING", "IDLE"}
    assert len(cpu.node_id) == 56 and not state.truncated

    match = attach_ray_nodes(
        [pod(CPU_WORKER.instance_id, "cpu-workers"), pod(L4_WORKER.instance_id, "l4-ondemand"),
         pod("rc-cpu-workers-starting", "cpu-workers")],
        state.nodes,
    )  # fmt: skip
    assert [p.ray.node_id if p.ray else None for p in match.pods] == [cpu.node_id, l4.node_id, None]
    assert match.unregistered == ("rc-cpu-workers-starting",)
    assert match.unmatched_nodes == (head.node_id,)


async def test_unsupported_version_is_refused(ray_cluster: LocalRayCluster) -> None:
    conn = GcsConnection(ray_cluster.address, supported_versions=((2, 61, 0), (2, 62, 0)), default_token_path=None)
    async with conn:
        with pytest.raises(UnsupportedRayVersion, match=r"runs Ray '2.60.0'; rva supports Ray >= 2.61.0"):
            await RayGcsReader(conn).read()


async def test_demand_matches_what_the_driver_submitted(ray_cluster: LocalRayCluster) -> None:
    l4_chain = (
        sel({"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}),
        sel({"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}),
    )
    expected_demands = {
        Demand(Resources.of(cpu=8000), 3),
        Demand(Resources.of(cpu=1000, memory=64 * GiB), 2),
        Demand(Resources.of(cpu=1000), 1, (sel({"ray.io/accelerator-type": "H100"}),)),
        # submitted as in(nvme,optane) and in(optane,nvme): one shape after normalisation
        Demand(Resources.of(cpu=2000), 2, (sel({"ray.io/market-type": "!spot", "disk": "in(nvme,optane)"}),)),
        Demand(Resources.of(cpu=1000, l4_slot=1000), 2, l4_chain),
        Demand(Resources.of(cpu=1000), 1, (sel({"zone": "a"}), sel({"zone": "b"}))),
    }
    expected_constraints = {
        Demand(Resources.of(cpu=16000), 2),
        Demand(Resources.of(cpu=4000, l4_slot=1000), 1, (sel({"ray.io/accelerator-type": "L4"}),)),
    }
    conn, reader = reader_for(ray_cluster)
    async with conn:
        with ray_cluster.driver(DEMAND_DRIVER) as driver:
            pg_ids = next(line for line in driver.output if line.startswith("PGS")).split()[1:]
            state: RayClusterState = await eventually(
                reader.read,
                lambda s: (
                    set(s.demands) == expected_demands
                    and len(s.gangs) == 3
                    and bool(s.constraints)
                    and s.pg_bound_tasks == 2
                ),
            )
            assert set(state.demands) == expected_demands
            assert set(state.constraints) == expected_constraints
            gangs = {g.id: g for g in state.gangs}
            assert set(gangs) == set(pg_ids)
            pack, spread, strict_pack = (gangs[i] for i in pg_ids)
            assert pack == Gang(pg_ids[0], GangStrategy.PACK, (
                Bundle(Resources.of(cpu=3000)), Bundle(Resources.of(cpu=3000, memory=GiB))))  # fmt: skip
            assert spread == Gang(pg_ids[1], GangStrategy.STRICT_SPREAD,
                                  (Bundle(Resources.of(cpu=1000), (sel({"team": "ml"}),)),) * 3)  # fmt: skip
            l4_bundle = Bundle(Resources.of(cpu=1000, l4_slot=1000), (sel({"ray.io/accelerator-type": "L4"}),))
            assert strict_pack == Gang(pg_ids[2], GangStrategy.STRICT_PACK, (l4_bundle,) * 2)
            assert {g.state for g in state.gangs} == {"PENDING"}
            assert state.pg_bound_tasks == 2 and state.tasks_reported == 11 + 2 and not state.truncated
        # The driver is gone: its tasks, actors and placement groups go with it.
        cleared = await eventually(reader.read, lambda s: not s.demands and not s.gangs)
        assert not cleared.demands and not cleared.gangs


async def test_resize_drain_and_refusals(ray_cluster: LocalRayCluster) -> None:
    marks = Path(tempfile.mkdtemp(prefix="rvam", dir="/tmp"))
    conn, reader = reader_for(ray_cluster)
    ids = ray_cluster.node_ids()
    cpu_node, l4_node = ids[CPU_WORKER.instance_id], ids[L4_WORKER.instance_id]
    actuator = RayletActuator(conn)

    def node(state: RayClusterState, node_id: str):  # type: ignore[no-untyped-def]
        return next(n for n in state.nodes if n.node_id == node_id)

    async with conn:
        with ray_cluster.driver(f"MARKS = {str(marks)!r}\n" + RESIZE_DRIVER):
            eight = Demand(Resources.of(cpu=8000), 1, (sel({"ray.io/node-group": "cpu-workers"}),))
            pending = await eventually(reader.read, lambda s: eight in s.demands)
            assert eight in pending.demands and not (marks / "big").exists()

            # Grow 4 → 8 CPUs: the pending 8-CPU task starts on that raylet.
            applied = await actuator.resize(cpu_node, Resources.of(cpu=8000))
            assert applied.get("cpu") == 8000 and applied.get("memory") == 8 * GiB
            assert _wait_for_file(marks / "big") == cpu_node

            # A 6-CPU task now holds 6 of 8; shrinking to 2 is clamped to 6 and the reply says so.
            assert _wait_for_file(marks / "six") == cpu_node
            applied = await actuator.resize(cpu_node, Resources.of(cpu=2000))
            assert applied.get("cpu") == 6000
            seen = await eventually(reader.read, lambda s: node(s, cpu_node).total.get("cpu") == 6000)
            assert node(seen, cpu_node).total.get("cpu") == 6000

            # GPUs are refused before anything is sent.
            calls: list[str] = []
            real_call = conn.call

            async def spy(service: str, method: str, request: object, **kw: object) -> object:
                calls.append(method)
                return await real_call(service, method, request, **kw)  # type: ignore[arg-type]

            conn.call = spy  # type: ignore[method-assign]
            with pytest.raises(UnitResourceResizeError, match="cannot resize Ray resource 'GPU'"):
                await actuator.resize(cpu_node, Resources.of(cpu=8000, gpu=1000))
            assert calls == []
            conn.call = real_call  # type: ignore[method-assign]

            # A busy raylet is not drained; the refusal is a result, not an exception.
            busy = await actuator.drain_idle(cpu_node, "rva: idle for 60s")
            assert busy.outcome is DrainOutcome.NOT_IDLE and "no longer idle" in busy.message

        # Driver gone: the raylet is free again and goes back to its pod size.
        await eventually(reader.read, lambda s: node(s, cpu_node).available.get("cpu") == 6000)
        assert (await actuator.resize(cpu_node, Resources.of(cpu=4000))).get("cpu") == 4000

        # An idle raylet drains and shuts itself down.
        idle = await actuator.drain_idle(l4_node, "rva: idle for 60s")
        assert idle.outcome is DrainOutcome.ACCEPTED
        gone = await eventually(reader.read, lambda s: node(s, l4_node).status == "DEAD", timeout_s=15)
        assert node(gone, l4_node).status == "DEAD"
        match = attach_ray_nodes([pod(L4_WORKER.instance_id, "l4-ondemand")], gone.nodes)
        assert match.unregistered == (L4_WORKER.instance_id,)
    for f in marks.iterdir():
        f.unlink()
    os.rmdir(marks)


def _wait_for_file(path: Path, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never started")
