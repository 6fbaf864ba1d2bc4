"""Issue 7: every dashboard panel and variable has data from a real daemon run, and its /metrics is clean.

A real Prometheus scrapes the real daemon (``LocalStack``: simulated Kubernetes over HTTP, real Ray)
and a real ``rva agent`` (sidecar mode on the simulated kernel's cgroup files, scraped at its pod's
IP with the labels the PodMonitor's relabelings add) while a scripted workload makes the daemon do
everything the dashboards show: an in-place grow that completes, a spot stockout with label fallback
to on-demand and the stuck pod's removal, memory pressure grown through the agent, a broken policy
edit then its fix, API errors outlasting the client's retries, a RayCluster whose GCS is unreachable,
a refused RayCluster, and leader election. No metric is filled by hand: an empty query is a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler import annotations as ann
from autoscaler.kubeclient import RetryPolicy
from autoscaler.localstack import LocalStack, worker_group
from autoscaler.model import MEMORY
from autoscaler.observe.k8s_state import pod_state
from autoscaler.sim.cgroupfs import SimCgroupFs
from autoscaler.sim.faults import FaultInjector, FaultRule
from autoscaler.testing import prometheus as promtest
from autoscaler.testing.prometheus import ScrapeTarget, check_dashboard_queries, load_dashboards, start_prometheus
from tests.e2e.conftest import TASK_DRIVER, cpu_pool, run_tasks

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GI, MI = 2**30, 2**20
POOL = "cloud.google.com/gke-nodepool"
SPOT = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}
ON_DEMAND = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}
POLICY = """
groups:
  '*':
    vertical: {cooldown: 1s}
    memoryPressure: {consecutiveWindows: 2, startupGrace: 0s, psiSomeAvg10: 20}
  # Only the spot group gets a short stockout time: an on-demand pod waits for its node to be provisioned
  # (provisioning delay + scheduler scan), which must not read as a stockout.
  l4-spot:
    horizontal: {stockoutTime: 3s, stockoutBackoff: 10m}
"""
BROKEN_POLICY = POLICY.replace("cooldown: 1s", "cooldown: soon")
# The first scale-out PATCH meets an API server that keeps answering 503 past the client's retries.
FAULTS = [FaultRule("error", verb="patch", resource="rayclusters", code=503, times=RetryPolicy().attempts)]


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        text: str = r.read().decode()
        return text


async def _wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"rva agent exited with {proc.returncode}")
        try:
            await asyncio.to_thread(_fetch, url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _wait_text(url: str, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
    """The /metrics text at ``url`` once ``predicate`` holds for it (the daemon serves on this event loop)."""
    deadline = time.monotonic() + timeout
    while True:
        text = await asyncio.to_thread(_fetch, url)
        if predicate(text) or time.monotonic() > deadline:
            assert predicate(text), text
            return text
        await asyncio.sleep(0.5)


async def _dashboard_problems(url: str, timeout: float) -> list[str]:
    """Every panel query and variable, retried until all have data (late counters need two scrapes)."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await asyncio.to_thread(check_dashboard_queries, load_dashboards(), url)
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(1.0)


@pytest.mark.stack(
    pools=[
        cpu_pool(),
        cpu_pool(name="l4-spot", gpus=1, accelerator="nvidia-l4", spot=True, initial_nodes=0),
        cpu_pool(name="l4-od", gpus=1, accelerator="nvidia-l4", initial_nodes=0, provisioning_delay=1.0),
    ],
    faults=FaultInjector(FAULTS, seed=7),
)
async def test_every_dashboard_query_has_data_from_a_real_daemon_and_agent(
    stack: LocalStack, tmp_path: Path
) -> None:
    try:
        promtest.prometheus_path()
    except promtest.PrometheusMissing as e:
        pytest.skip(str(e))
    if promtest.promtool_path() is None:
        pytest.skip("promtool not installed")

    agent_port = promtest.free_port()
    stack.cluster.open_stockout("l4-spot")
    stack.put_policy(POLICY)
    stack.create_raycluster(stack.raycluster("rc", [
        worker_group("cpu", cpu="1", memory="1Gi", agent_port=agent_port),
        worker_group("l4-spot", gpus=1, replicas=0, labels=SPOT, node_selector={POOL: "l4-spot"}),
        worker_group("l4-ondemand", gpus=1, replicas=0, labels=ON_DEMAND, node_selector={POOL: "l4-od"}),
    ]))
    # A managed cluster whose head is down (GCS errors), and one rva refuses (Ray's own autoscaler is on).
    stack.create_raycluster(stack.raycluster(
        "rc-down", [worker_group("cpu", replicas=0)],
        annotations={ann.GCS_ADDRESS: f"127.0.0.1:{promtest.free_port()}"}))
    stack.create_raycluster(stack.raycluster("rc-intree", [worker_group("cpu", replicas=0)], in_tree_autoscaling=True))

    assert await stack.wait_for(lambda: [p["status"].get("phase") for p in stack.workers("rc")] == ["Running"], 30)
    pod = stack.workers("rc")[0]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    pod_ip, node = pod["status"]["podIP"], pod["spec"]["nodeName"]
    cgroups = SimCgroupFs(tmp_path / "cgroup")
    cgroups.write(uid, "Guaranteed", usage=400 * MI, limit=GI)
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", "agent", "--mode", "sidecar", "--cgroup-root", str(tmp_path / "cgroup"),
        "--pod-uid", uid, "--pod-name", name, "--pod-namespace", "default", "--host", "0.0.0.0",
        "--port", str(agent_port), "--interval", "0.5", "--psi-trigger", "off",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    exits = contextlib.ExitStack()
    try:
        agent_url = f"http://{pod_ip}:{agent_port}/metrics"
        await _wait_http(agent_url, agent)
        assert await stack.wait_raylets("rc")
        daemon = await stack.start_daemon(pressure=True, leader_election=True)  # /metrics on a real port
        assert await stack.wait_for(daemon.may_act, 10)
        assert daemon.http_port
        daemon_url = f"http://127.0.0.1:{daemon.http_port}/metrics"
        targets = [
            ScrapeTarget(f"127.0.0.1:{daemon.http_port}", job="rva"),
            # What the PodMonitor's relabelings (and the operator) add to the agent's series in a cluster.
            ScrapeTarget(f"{pod_ip}:{agent_port}", job="rva-agent",
                         labels={"namespace": "default", "cluster": "default/rc", "group": "cpu", "pod": name,
                                 "node": node}),
        ]
        prom = await asyncio.to_thread(exits.enter_context, start_prometheus(targets, tmp_path / "prom"))

        # A broken policy edit is rejected (the last good policy stays), then fixed.
        stack.put_policy(BROKEN_POLICY)
        assert await stack.wait_for(lambda: bool(stack.events("InvalidPolicy")), 10)
        stack.put_policy(POLICY)

        # GPU demand for L4 spot with an on-demand fallback, in the background: the spot pool is
        # stocked out, so the spot pod stays Unschedulable, the group is marked stocked out, the
        # on-demand group is scaled out and the stuck spot pod removed.
        gpu = await stack.driver(TASK_DRIVER, env={
            "TASK_CPUS": "1", "TASK_TIMEOUT": "150",
            "TASK_OPTIONS": json.dumps({"num_gpus": 1, "label_selector": SPOT,
                                        "fallback_strategy": [{"label_selector": ON_DEMAND}]})})

        # CPU demand only the cpu pod can serve once grown: grown in place, raylet resized, task runs.
        await run_tasks(stack, cpus=2, options={"label_selector": {"ray.io/node-group": "cpu"}}, timeout=90)
        assert any(e["involvedObject"]["name"] == name for e in stack.events("ResizeCompleted"))

        # The agent reports memory stalls near the limit, window after window: memory grown in place.
        await asyncio.sleep(1.2)  # past the cooldown of the CPU grow
        for _ in range(30):
            cgroups.write(uid, "Guaranteed", usage=1000 * MI, limit=GI, psi_some=35.0)
            if any("[MemoryPressure]" in e["message"] for e in stack.events("GrowPod")):
                break
            await asyncio.sleep(0.5)
        assert any("[MemoryPressure]" in e["message"] for e in stack.events("GrowPod"))
        assert await stack.wait_for(
            lambda: pod_state(stack.store.get("pods", "default", name)).actual_limits.get(MEMORY) > GI, 15)
        cgroups.write(uid, "Guaranteed", usage=500 * MI, limit=GI + 256 * MI)  # relieved

        _out, err = await asyncio.wait_for(gpu.communicate(), 150)
        assert gpu.returncode == 0, err.decode()[-2000:]
        assert await stack.wait_for(
            lambda: any("[StockoutCleanup]" in e["message"] for e in stack.events("RemovePod")), 20)
        assert stack.faults is not None and len(stack.faults.log) == RetryPolicy().attempts  # the 503s happened

        problems = await _dashboard_problems(prom.url, timeout=30)
        assert problems == [], "\n".join(problems)

        # What the daemon exports follows the cluster: the removed spot pod's series are gone, and
        # the unserved demand of the stockout went back to 0 once served (else RvaDemandUnserved fires).
        removed = next(e["message"].split(":")[0] for e in stack.events("RemovePod") if "[StockoutCleanup]" in
                       e["message"])
        daemon_text = await _wait_text(daemon_url, lambda text: f'pod="{removed}"' not in text and not any(
            line.startswith('rva_unserved_demand_tasks{cluster="default/rc",') and not line.endswith(" 0.0")
            for line in text.splitlines()))
        agent_text = await asyncio.to_thread(_fetch, agent_url)
        assert await asyncio.to_thread(promtest.promtool_check_metrics, daemon_text) == []
        assert await asyncio.to_thread(promtest.promtool_check_metrics, agent_text) == []
    finally:
        await asyncio.to_thread(exits.close)
        with contextlib.suppress(ProcessLookupError):
            agent.terminate()
        await agent.wait()
