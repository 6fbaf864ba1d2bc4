"""Acceptance 1: pending demand → pod grown in place → raylet resized → the task runs."""

from __future__ import annotations

import pytest

from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import CPU
from autoscaler.observe.k8s_state import pod_state
from tests.e2e.conftest import run_tasks

pytestmark = [pytest.mark.ray, pytest.mark.slow]


async def test_pending_task_is_served_by_growing_the_pod_in_place(stack: LocalStack) -> None:
    stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu", cpu="1", memory="1Gi")]))
    assert await stack.wait_for(lambda: len(stack.workers("rc")) == 1
                                and stack.workers("rc")[0]["status"]["phase"] == "Running", 30)
    pod_name = stack.workers("rc")[0]["metadata"]["name"]
    assert await stack.wait_raylets("rc")
    daemon = await stack.start_daemon()

    results = await run_tasks(stack, cpus=3, timeout=90)  # 3 CPUs: only a grown pod can run it

    assert len(results) == 2 and "started" in results[1]
    pod = pod_state(stack.store.get("pods", "default", pod_name))
    assert pod.requests.get(CPU) >= 3000  # grown in place, same pod
    assert pod.actual_requests.get(CPU) >= 3000
    assert [p["metadata"]["name"] for p in stack.workers("rc")] == [pod_name]  # no new pod
    assert stack.cluster.raycluster("rc")["spec"]["workerGroupSpecs"][0]["replicas"] == 1
    kinds = [e["reason"] for e in stack.events()]
    assert "GrowPod" in kinds and "ResizeCompleted" in kinds
    resized = [r for r in stack.server.requests if r.path.endswith("/resize")]
    assert resized and all(r.code == 200 for r in resized)
    worker = daemon.worker("default", "rc")
    assert worker is not None and worker.ray is not None
    ray_node = next(n for n in worker.ray.nodes if n.instance_id == pod_name)
    assert ray_node.total.get(CPU) >= 3000  # the raylet was told its new size
