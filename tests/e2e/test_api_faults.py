"""Acceptance 12: API faults (500, 429, 410, dropped watches) lose no action and double none."""

from __future__ import annotations

import asyncio
import json

import pytest

from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import CPU
from autoscaler.observe.k8s_state import pod_state
from autoscaler.sim.faults import FaultInjector, FaultRule
from tests.e2e.conftest import TASK_DRIVER

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FAULTS = [
    FaultRule("error", verb="patch", resource="pods/resize", code=500, times=1),
    FaultRule("error", verb="patch", resource="pods", code=503, times=1),
    FaultRule("throttle", verb="patch", resource="rayclusters", retry_after=1, times=1),
    FaultRule("gone", verb="watch", resource="pods", times=1),
    FaultRule("drop_watch", verb="watch", resource="rayclusters", after_events=1, times=2),
    FaultRule("error", verb="create", resource="events", code=500, probability=0.3),
]
POLICY = "groups:\n  scale:\n    vertical: {maxPod: {cpu: '1'}}\n"


@pytest.mark.stack(faults=FaultInjector(FAULTS, seed=7))
async def test_faults_neither_lose_nor_double_actions(stack: LocalStack) -> None:
    stack.put_policy(POLICY)
    stack.create_raycluster(stack.raycluster("rc", [worker_group("grow"), worker_group("scale")]))
    assert await stack.wait_for(lambda: len(stack.workers("rc")) == 2, 30)
    assert await stack.wait_raylets("rc")
    grow_pod = stack.workers("rc", "grow")[0]["metadata"]["name"]
    daemon = await stack.start_daemon()

    grow = await stack.driver(TASK_DRIVER, env={"TASK_CPUS": "3", "TASK_TIMEOUT": "120", "TASK_OPTIONS": json.dumps(
        {"label_selector": {"ray.io/node-group": "grow"}})})
    scale = await stack.driver(TASK_DRIVER, env={"TASK_CPUS": "1", "TASK_COUNT": "3", "TASK_HOLD": "10",
                                                 "TASK_TIMEOUT": "120", "TASK_OPTIONS": json.dumps(
        {"label_selector": {"ray.io/node-group": "scale"}})})
    for proc in (grow, scale):
        _out, err = await asyncio.wait_for(proc.communicate(), 150)
        assert proc.returncode == 0, err.decode()[-2000:]

    kinds = {f.kind for f in stack.faults.log} if stack.faults else set()
    assert {"error", "throttle", "gone", "drop_watch"} <= kinds  # every fault kind really happened
    # the resize was applied exactly once (the 500 was retried, never doubled)
    pod = stack.store.get("pods", "default", grow_pod)
    assert pod["metadata"]["generation"] == 2 and pod_state(pod).requests.get(CPU) >= 3000
    # the scale-out asked for exactly the pods the demand needed, once
    replicas = stack.cluster.raycluster("rc")["spec"]["workerGroupSpecs"][1]["replicas"]
    assert replicas == 3 and len(stack.workers("rc", "scale")) == 3
    assert daemon.pod_informer.lists >= 2  # the 410 forced a relist, and the cache recovered
