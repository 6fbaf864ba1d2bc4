"""Acceptance 8 and 9: a killed daemon's resize is resumed from the pod annotation; only the leader acts."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler import annotations as ann
from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import CPU
from autoscaler.observe.k8s_state import pod_state
from autoscaler.sim.kubelet import KubeletConfig
from tests.e2e.conftest import TASK_DRIVER, cpu_pool

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SLOW_KUBELET = KubeletConfig(startup_delay=0.3, actuation_delay=4.0, termination_delay=0.3)


def _resize_patches(stack: LocalStack) -> int:
    return sum(1 for r in stack.server.requests if r.method == "PATCH" and r.path.endswith("/resize"))


@pytest.mark.stack(pools=[cpu_pool()], kubelet=SLOW_KUBELET)
async def test_daemon_killed_mid_resize_is_resumed_without_doubling(stack: LocalStack) -> None:
    stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu", cpu="1")]))
    assert await stack.wait_for(lambda: len(stack.workers("rc")) == 1, 30)
    assert await stack.wait_raylets("rc")
    name = stack.workers("rc")[0]["metadata"]["name"]
    first = await stack.start_daemon(identity="first")
    driver = await stack.driver(TASK_DRIVER, env={"TASK_CPUS": "3", "TASK_TIMEOUT": "120"})

    # the resize is recorded on the pod; the kubelet is still actuating it (4 s) when the daemon dies
    assert await stack.wait_for(
        lambda: ann.IN_FLIGHT in (stack.store.get("pods", "default", name)["metadata"].get("annotations") or {}), 30)
    await first.abort()
    assert _resize_patches(stack) == 1
    await stack.start_daemon(identity="second")

    _out, err = await driver.communicate()
    assert driver.returncode == 0, err.decode()[-2000:]
    pod = stack.store.get("pods", "default", name)
    assert ann.IN_FLIGHT not in (pod["metadata"].get("annotations") or {})  # finished by the second daemon
    assert pod_state(pod).actual_requests.get(CPU) >= 3000
    assert _resize_patches(stack) == 1  # resumed, not redone
    # one decision, by the first daemon; the second only finished it
    assert {e["reportingInstance"] for e in stack.events("GrowPod")} == {"first"}
    completed = [e for e in stack.events("ResizeCompleted") if e.get("reportingComponent") == "rva"]
    assert len(completed) == 1 and completed[0]["reportingInstance"] == "second"
    for _ in range(40):  # the GCS shows a raylet's new total up to ~1 s after the resize RPC
        raylet = next(n for n in await stack.ray_nodes() if n.instance_id == name)
        if raylet.total.get(CPU) == pod_state(pod).limits.get(CPU):
            break
        await asyncio.sleep(0.1)
    assert raylet.total.get(CPU) == pod_state(pod).limits.get(CPU)  # raylet grown once, to the pod's size
    assert len(stack.workers("rc")) == 1


@pytest.mark.stack(pools=[cpu_pool()])
async def test_only_the_leader_acts_and_a_standby_takes_over(stack: LocalStack) -> None:
    stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu", cpu="1")]))
    assert await stack.wait_for(lambda: len(stack.workers("rc")) == 1, 30)
    assert await stack.wait_raylets("rc")
    a = await stack.start_daemon(identity="a", leader_election=True)
    assert await stack.wait_for(a.may_act, 10)
    b = await stack.start_daemon(identity="b", leader_election=True)
    assert not b.may_act()
    lease = stack.store.get("leases", "default", "rva-leader")
    assert lease["spec"]["holderIdentity"] == "a"

    driver = await stack.driver(TASK_DRIVER, env={"TASK_CPUS": "2", "TASK_TIMEOUT": "90"})
    _out, err = await driver.communicate()
    assert driver.returncode == 0, err.decode()[-2000:]
    assert {e["reportingInstance"] for e in stack.events() if e.get("reportingComponent") == "rva"} == {"a"}
    assert b.worker("default", "rc") is not None and not b.may_act()  # b watches and plans, but never writes

    # the leader dies without releasing its lease; b takes over within one lease period (4 s here)
    await a.abort()
    assert await stack.wait_for(b.may_act, 4.0 + 1.0)
    lease = stack.store.get("leases", "default", "rva-leader")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] >= 1
    driver = await stack.driver(TASK_DRIVER, env={"TASK_CPUS": "4", "TASK_TIMEOUT": "90"})
    _out, err = await driver.communicate()
    assert driver.returncode == 0, err.decode()[-2000:]
    assert "b" in {e["reportingInstance"] for e in stack.events("GrowPod")}

    # a graceful stop releases the lease at once
    await b.stop()
    assert stack.store.get("leases", "default", "rva-leader")["spec"]["holderIdentity"] == ""
