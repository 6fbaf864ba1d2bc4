"""End-to-end fixtures: a LocalStack (simulated Kubernetes over HTTP + real Ray) per test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from autoscaler.localstack import LocalStack
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.nodepools import NodePool

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def cpu_pool(**over: Any) -> NodePool:
    base: dict[str, Any] = dict(name="cpu", cpu="8", memory="16Gi", initial_nodes=1, max_nodes=3,
                                provisioning_delay=2.0)
    base.update(over)
    return NodePool(**base)


@pytest_asyncio.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[LocalStack]:
    marker = request.node.get_closest_marker("stack")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    kwargs.setdefault("pools", [cpu_pool()])
    kwargs.setdefault("kubelet", KubeletConfig(startup_delay=0.3, actuation_delay=0.5, termination_delay=0.3))
    async with LocalStack(**kwargs) as s:
        yield s


TASK_DRIVER = """
import json, os, sys, time
import ray
ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, include_dashboard=False)
cpus = float(sys.argv[1]) if len(sys.argv) > 1 else float(os.environ.get("TASK_CPUS", "1"))

@ray.remote
def work(hold):
    import ray, time
    started = time.time()
    time.sleep(hold)
    return {"started": started, "node": ray.get_runtime_context().get_node_id()}

opts = json.loads(os.environ.get("TASK_OPTIONS", "{}"))
hold = float(os.environ.get("TASK_HOLD", "0.5"))
print(json.dumps({"submitted": time.time()}), flush=True)
refs = [work.options(num_cpus=cpus, **opts).remote(hold) for _ in range(int(os.environ.get("TASK_COUNT", "1")))]
for r in ray.get(refs, timeout=float(os.environ.get("TASK_TIMEOUT", "120"))):
    print(json.dumps(r), flush=True)
"""


async def run_tasks(stack: LocalStack, cpus: float, *, count: int = 1, hold: float = 0.5,
                    options: dict[str, Any] | None = None, timeout: float = 120) -> list[dict[str, Any]]:
    """Submit ``count`` tasks of ``cpus`` CPUs and wait for them; returns their JSON lines."""
    proc = await stack.driver(TASK_DRIVER, env={
        "TASK_CPUS": str(cpus), "TASK_COUNT": str(count), "TASK_HOLD": str(hold),
        "TASK_OPTIONS": json.dumps(options or {}), "TASK_TIMEOUT": str(timeout)})
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"driver failed ({proc.returncode}): {err.decode()[-2000:]}"
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
