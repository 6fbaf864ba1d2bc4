"""Acceptance 6: idle → shrink in place (raylet first) → removed after a drain; a busy node is never removed."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import CPU
from autoscaler.observe.k8s_state import pod_state
from tests.e2e.conftest import TASK_DRIVER, run_tasks

pytestmark = [pytest.mark.ray, pytest.mark.slow]
POLICY = """
groups:
  '*':
    vertical: {cooldown: 1s}
    shrink: {idleWindow: 2s}
    horizontal: {idleTimeout: 8s}
"""


async def test_idle_pod_shrinks_then_is_removed_but_busy_pod_stays(stack: LocalStack) -> None:
    """Also acceptance 11: run with only the RBAC the manifests grant, and use every granted rule."""
    stack.put_policy(POLICY)
    stack.create_raycluster(stack.raycluster("rc", [worker_group("busy", cpu="1"), worker_group("burst", cpu="1")]))
    assert await stack.wait_for(lambda: len(stack.workers("rc")) == 2, 30)
    assert await stack.wait_raylets("rc")
    busy = stack.workers("rc", "busy")[0]["metadata"]["name"]
    burst = stack.workers("rc", "burst")[0]["metadata"]["name"]
    daemon = await stack.start_daemon(leader_election=True)
    assert await stack.wait_for(daemon.may_act, 10)
    long_task = await stack.driver(TASK_DRIVER, env={
        "TASK_CPUS": "1", "TASK_HOLD": "40", "TASK_TIMEOUT": "120",
        "TASK_OPTIONS": json.dumps({"label_selector": {"ray.io/node-group": "busy"}})})

    await run_tasks(stack, cpus=3, options={"label_selector": {"ray.io/node-group": "burst"}}, timeout=90)
    # judged from the completed resize, not the pod now: with a 2 s idle window it may already shrink back
    applied = [int(m) for e in stack.events("ResizeCompleted") if e["involvedObject"]["name"] == burst
               for m in re.findall(r"requests \{'cpu': (\d+)", e["message"])]
    assert applied and max(applied) >= 3000, applied

    # idle: shrink back to the template size, raylet first
    assert await stack.wait_for(lambda: bool(stack.events("ShrinkPod")), 30)
    worker = daemon.worker("default", "rc")
    assert worker is not None
    assert await stack.wait_for(
        lambda: pod_state(stack.store.get("pods", "default", burst)).actual_requests.get(CPU) == 1000, 20)
    for _ in range(40):  # the GCS shows a raylet's new total up to ~1 s after the resize RPC
        shrunk_raylet = next(n for n in await stack.ray_nodes() if n.instance_id == burst)
        if shrunk_raylet.total.get(CPU) == 1000:
            break
        await asyncio.sleep(0.1)
    assert shrunk_raylet.total.get(CPU) == 1000
    reasons = [e["reason"] for e in sorted(stack.events(), key=lambda e: int(e["metadata"]["resourceVersion"]))]
    assert "ResizeCompleted" in reasons[reasons.index("ShrinkPod"):]  # the shrink finished

    # idle past the timeout: drained, then deleted through workersToDelete with replicas lowered
    assert await stack.wait_for(lambda: any(burst in e["message"] for e in stack.events("RemovePod")), 40)
    removal = next(e for e in stack.events("RemovePod") if burst in e["message"])
    assert "[IdleTimeout]" in removal["message"]
    assert await stack.wait_for(lambda: stack.workers("rc", "burst", include_deleting=True) == [], 20)
    assert stack.cluster.raycluster("rc")["spec"]["workerGroupSpecs"][1]["replicas"] == 0
    assert burst not in {n.instance_id for n in await stack.ray_nodes()}  # drained raylet gone

    # the busy pod was never removed (its raylet kept running the long task)
    assert not any(busy in e["message"] for e in stack.events("RemovePod"))
    assert [p["metadata"]["name"] for p in stack.workers("rc", "busy")] == [busy]
    _out, err = await asyncio.wait_for(long_task.communicate(), 120)
    assert long_task.returncode == 0, err.decode()[-2000:]

    # least privilege, both ways: nothing was refused, and nothing granted went unused
    assert stack.rbac is not None
    assert [r for r in stack.server.requests if r.code in (401, 403)] == []
    assert stack.rbac.unused_permissions(stack.user) == []
