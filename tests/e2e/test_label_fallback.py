"""Acceptance 4: L4 spot stocked out → the on-demand L4 group is scaled, the stuck spot pods removed."""

from __future__ import annotations

import pytest

from autoscaler.localstack import LocalStack, worker_group
from tests.e2e.conftest import cpu_pool, run_tasks

pytestmark = [pytest.mark.ray, pytest.mark.slow]
POOL = "cloud.google.com/gke-nodepool"
SPOT = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}
ON_DEMAND = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}


@pytest.mark.stack(pools=[
    cpu_pool(name="l4-spot", gpus=1, accelerator="nvidia-l4", spot=True, initial_nodes=0),
    cpu_pool(name="l4-od", gpus=1, accelerator="nvidia-l4", initial_nodes=0),
])
async def test_spot_stockout_falls_back_to_on_demand_and_cleans_up(stack: LocalStack) -> None:
    stack.cluster.open_stockout("l4-spot")
    # longer than the on-demand pool's provisioning (2 s) plus a scheduler pass, or it would look stocked out too
    stack.put_policy("groups:\n  '*':\n    horizontal: {stockoutTime: 8s, stockoutBackoff: 10m}\n")
    stack.create_raycluster(stack.raycluster("rc", [
        worker_group("l4-spot", gpus=1, replicas=0, labels=SPOT, node_selector={POOL: "l4-spot"}),
        worker_group("l4-ondemand", gpus=1, replicas=0, labels=ON_DEMAND, node_selector={POOL: "l4-od"}),
    ]))
    daemon = await stack.start_daemon()

    results = await run_tasks(stack, cpus=1, timeout=150, options={
        "num_gpus": 1, "label_selector": SPOT, "fallback_strategy": [{"label_selector": ON_DEMAND}]})

    worker = daemon.worker("default", "rc")
    assert worker is not None and worker.ray is not None
    node = next(n for n in worker.ray.nodes if n.node_id == results[1]["node"])
    assert node.node_type == "l4-ondemand" and node.labels["ray.io/market-type"] == "on-demand"
    scale_outs = [e["message"] for e in stack.events("ScaleOut")]
    assert any(m.startswith("l4-spot +1") for m in scale_outs)  # the primary was tried first
    assert any(m.startswith("l4-ondemand +1") and "[FallbackGroup]" in m for m in scale_outs)
    removed = [e["message"] for e in stack.events("RemovePod")]
    assert any("[StockoutCleanup]" in m for m in removed)
    # the stuck spot pod is gone and its replica given back, so capacity is not doubled on recovery
    assert await stack.wait_for(lambda: stack.workers("rc", "l4-spot", include_deleting=True) == [], 10)
    rc = stack.cluster.raycluster("rc")
    assert rc["spec"]["workerGroupSpecs"][0]["replicas"] == 0
    assert len(stack.workers("rc", "l4-ondemand")) == 1
    assert daemon.metrics.stockouts.labels("default/rc", "l4-spot")._value.get() == 1
    assert daemon.metrics.scale_outs.labels("default/rc", "l4-ondemand", "true")._value.get() == 1
