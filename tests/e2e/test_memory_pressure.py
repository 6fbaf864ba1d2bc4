"""Acceptance 5: memory pressure reported by the agent → memory grown; an OOM kill → VPA-style bump."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import MEMORY
from autoscaler.observe.k8s_state import pod_state
from autoscaler.sim.cgroupfs import SimCgroupFs

pytestmark = [pytest.mark.ray, pytest.mark.slow]
GI, MI = 2**30, 2**20
POLICY = """
groups:
  '*':
    vertical: {cooldown: 1s}
    memoryPressure: {consecutiveWindows: 2, startupGrace: 0s, psiSomeAvg10: 20}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def agent_port() -> AsyncIterator[int]:
    yield _free_port()


async def test_agent_pressure_grows_memory_and_an_oom_kill_bumps_it(
    stack: LocalStack, tmp_path: Path, agent_port: int
) -> None:
    stack.put_policy(POLICY)
    stack.create_raycluster(stack.raycluster("rc", [worker_group("mem", cpu="1", memory="1Gi", agent_port=agent_port)]))
    assert await stack.wait_for(lambda: [p["status"].get("phase") for p in stack.workers("rc")] == ["Running"], 30)
    pod = stack.workers("rc")[0]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    cgroups = SimCgroupFs(tmp_path / "cgroup")
    cgroups.write(uid, "Guaranteed", usage=400 * MI, limit=GI)
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", "agent", "--mode", "sidecar", "--cgroup-root", str(tmp_path / "cgroup"),
        "--pod-uid", uid, "--pod-name", name, "--host", "0.0.0.0", "--port", str(agent_port), "--interval", "0.5",
        "--psi-trigger", "off", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await stack.start_daemon(pressure=True)
        await asyncio.sleep(2)
        assert stack.events("GrowPod") == []  # calm: nothing to do

        # the kernel reports stalls and the working set nears the limit, window after window
        for _ in range(12):
            cgroups.write(uid, "Guaranteed", usage=1000 * MI, limit=GI, psi_some=35.0)
            if stack.events("GrowPod"):
                break
            await asyncio.sleep(0.5)
        grow = next(e for e in stack.events("GrowPod") if e["involvedObject"]["kind"] == "Pod")
        assert "[MemoryPressure]" in grow["message"]
        assert await stack.wait_for(
            lambda: pod_state(stack.store.get("pods", "default", name)).actual_limits.get(MEMORY) == GI + 256 * MI, 15)
        cgroups.write(uid, "Guaranteed", usage=500 * MI, limit=GI + 256 * MI)  # relieved

        # a burst past the new limit: the kubelet OOM-kills the container; rva bumps memory at once
        await asyncio.sleep(1.5)  # past the cooldown
        stack.cluster.set_memory_usage(name, GI + 300 * MI)
        assert await stack.wait_for(lambda: any("[OOMKilled]" in e["message"] for e in stack.events("GrowPod")), 20)
        bumped = pod_state(stack.store.get("pods", "default", name))
        # VPA's rule: max(used + 100Mi, used × 1.2) with used = the limit it was killed at (1.25 GiB) → 1.5 GiB
        assert bumped.requests.get(MEMORY) == 1536 * MI and bumped.limits.get(MEMORY) == 1536 * MI
        assert bumped.restart_count == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            agent.terminate()
        await agent.wait()
