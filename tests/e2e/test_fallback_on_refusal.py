"""Acceptance 2 and 3: the kubelet refuses or defers a resize → rva reverts it and scales out instead."""

from __future__ import annotations

import pytest

from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import CPU, ResizeState
from autoscaler.observe.k8s_state import pod_state
from autoscaler.sim.faults import FaultInjector, FaultRule
from autoscaler.sim.kubelet import KubeletConfig
from tests.e2e.conftest import cpu_pool, run_tasks

pytestmark = [pytest.mark.ray, pytest.mark.slow]
FAST = KubeletConfig(startup_delay=0.3, actuation_delay=0.5, termination_delay=0.3)
POOL = "cloud.google.com/gke-nodepool"


def _groups() -> list[dict[str, object]]:
    return [
        worker_group("small", cpu="1", memory="1Gi", node_selector={POOL: "small"}),
        worker_group("big", cpu="4", memory="2Gi", replicas=0, max_replicas=2, node_selector={POOL: "big"}),
    ]


def _reasons(stack: LocalStack) -> list[str]:
    return [e["reason"] for e in sorted(stack.events(), key=lambda e: e["metadata"]["resourceVersion"])]


@pytest.mark.stack(pools=[
    cpu_pool(name="small", kubelet=KubeletConfig(startup_delay=0.3, actuation_delay=0.5, cpu_manager_policy="static")),
    cpu_pool(name="big", initial_nodes=0),
])
async def test_infeasible_resize_is_reverted_at_once_and_falls_back_to_scale_out(stack: LocalStack) -> None:
    stack.create_raycluster(stack.raycluster("rc", _groups()))
    assert await stack.wait_for(lambda: [p["status"]["phase"] for p in stack.workers("rc")] == ["Running"], 30)
    small = stack.workers("rc", "small")[0]["metadata"]["name"]
    assert await stack.wait_raylets("rc")
    await stack.start_daemon()

    results = await run_tasks(stack, cpus=3, timeout=120)

    reasons = _reasons(stack)
    assert "ResizeInfeasible" in reasons  # the kubelet (static CPU manager, Guaranteed pod) refused
    revert = next(e for e in stack.events("RevertResize") if e["involvedObject"]["name"] == small)
    assert "[ResizeInfeasible]" in revert["message"]
    assert reasons.index("ResizeInfeasible") < reasons.index("RevertResize") < reasons.index("ScaleOut")
    pod = pod_state(stack.store.get("pods", "default", small))
    assert pod.requests.get(CPU) == 1000 and pod.resize_state is ResizeState.NONE  # spec back to its allocation
    big = stack.workers("rc", "big")
    assert len(big) == 1  # one new pod, not more
    worker = next(n for n in stack.daemons[0].worker("default", "rc").ray.nodes  # type: ignore[union-attr]
                  if n.instance_id == big[0]["metadata"]["name"])
    assert results[1]["node"] == worker.node_id  # the task ran on the scaled-out pod


@pytest.mark.stack(pools=[cpu_pool(name="small", cpu="4"), cpu_pool(name="big", initial_nodes=0)],
                   faults=FaultInjector([FaultRule("slow", verb="patch", resource="pods/resize", delay=2.0, times=1)]),
                   kubelet=FAST)
async def test_deferred_resize_times_out_then_reverts_and_scales_out(stack: LocalStack) -> None:
    stack.put_policy("groups:\n  '*':\n    vertical:\n      resizeTimeouts: {deferred: 3s}\n")
    stack.create_raycluster(stack.raycluster("rc", _groups()))
    assert await stack.wait_for(lambda: [p["status"]["phase"] for p in stack.workers("rc")] == ["Running"], 30)
    small = stack.workers("rc", "small")[0]
    node = small["spec"]["nodeName"]
    assert await stack.wait_raylets("rc")
    await stack.start_daemon()
    driver = stack.driver  # submit, then race the resize with another tenant's pod (a real-life Deferred)
    from tests.e2e.conftest import TASK_DRIVER

    proc = await driver(TASK_DRIVER, env={"TASK_CPUS": "2", "TASK_TIMEOUT": "120"})
    assert stack.faults is not None
    assert await stack.wait_for(lambda: bool(stack.faults and stack.faults.log), 30)  # the resize PATCH is in flight
    stack.store.create("pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "other-tenant", "namespace": "default"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]},
    })
    _out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]

    reasons = _reasons(stack)
    assert "ResizeDeferred" in reasons
    revert = next(e for e in stack.events("RevertResize") if e["involvedObject"]["name"] == small["metadata"]["name"])
    assert "[ResizeDeferredTimeout]" in revert["message"]
    assert reasons.index("RevertResize") < reasons.index("ScaleOut")
    pod = pod_state(stack.store.get("pods", "default", small["metadata"]["name"]))
    assert pod.requests.get(CPU) == 1000 and pod.resize_state is ResizeState.NONE
    assert len(stack.workers("rc", "big")) == 1
