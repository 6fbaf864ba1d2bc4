"""The agent's HTTP surface on fixture cgroup trees: /metrics (promtool), /v1/pressure, /healthz, identity."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from autoscaler.agent import Agent, AgentConfig, config_from_args, configure
from tests.unit.cgroup_fixtures import CID_A, CID_B, UID, hybrid_root, v2_root, write_v1, write_v2

MiB = 1 << 20
CTR = "/kubepods/burstable/pod1/ctr"


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Running:
    def __init__(self, agent: Agent, port: int, session: aiohttp.ClientSession) -> None:
        self.agent, self.port, self.session = agent, port, session
        self.base = f"http://127.0.0.1:{port}"

    async def get(self, path: str) -> tuple[int, str, bytes]:
        async with self.session.get(self.base + path) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()

    async def json(self, path: str = "/v1/pressure") -> Any:
        async with self.session.get(self.base + path) as r:
            assert r.status == 200
            return await r.json()

    async def next_round(self) -> None:
        n = sum(self.agent.sampler.samples_total.values())
        await wait_for(lambda: sum(self.agent.sampler.samples_total.values()) > n)


async def start(config: AgentConfig, clock: Callable[[], float] | None = None) -> AsyncIterator[Running]:
    agent = Agent(config, clock=clock) if clock else Agent(config)
    port = await agent.start("127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        try:
            yield Running(agent, port, session)
        finally:
            await agent.stop()


@pytest.fixture
def v2_tree(tmp_path: Path) -> Path:
    root = v2_root(tmp_path / "cg")
    write_v2(root / CTR.lstrip("/"), usage=100 * MiB, limit=str(512 * MiB), some=12.5, full=3.0, some_total=777)
    return root


@pytest.fixture
async def running(v2_tree: Path) -> AsyncIterator[Running]:
    cfg = AgentConfig(cgroup_root=v2_tree, cgroup_path=CTR, interval_s=0.05, psi_trigger=None, pod_name="w-1")
    async for r in start(cfg):
        yield r


def promtool_check(body: bytes) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


async def test_healthz(running: Running) -> None:
    assert await running.get("/healthz") == (200, "text/plain", b"ok\n")


async def test_metrics_are_promtool_clean_and_in_base_units(running: Running) -> None:
    status, ctype, body = await running.get("/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    text = body.decode()
    assert 'rva_agent_memory_usage_bytes{cgroup="",scope="self"} 1.048576e+08' in text
    assert 'rva_agent_memory_limit_bytes{cgroup="",scope="self"} 5.36870912e+08' in text
    assert 'rva_agent_pressure_ratio{cgroup="",kind="some",resource="memory",scope="self",window="10s"} 0.125' in text
    stall = 'rva_agent_pressure_stall_seconds_total{cgroup="",kind="some",resource="memory",scope="self"} 0.000777'
    assert stall in text
    assert 'rva_agent_memory_events_total{cgroup="",event="oom_kill",scope="self"} 0.0' in text
    assert 'rva_agent_cpu_throttled_seconds_total{cgroup="",scope="self"} 0.35' in text
    assert "rva_agent_memory_high_bytes{" not in text  # memory.high is "max": absent, not +Inf
    assert 'rva_agent_info{cgroup_version="v2",mode="in-container"' in text
    promtool_check(body)


async def test_pressure_document(running: Running) -> None:
    await running.next_round()
    doc = await running.json()
    assert doc["version"] == 1 and doc["pod"]["name"] == "w-1" and doc["agent"]["mode"] == "in-container"
    p = doc["primary"]
    assert p["scope"] == "self" and p["cgroup_version"] == "v2"
    assert p["memory"]["usage_bytes"] == 100 * MiB and p["memory"]["limit_bytes"] == 512 * MiB
    assert p["memory"]["working_set_bytes"] == 70 * MiB and p["memory"]["events"]["oom_kill"] == 0
    assert p["psi"]["memory"]["some"] == {"avg10": 12.5, "avg60": 1.0, "avg300": 0.5, "total_us": 777}
    assert p["psi"]["memory"]["full"]["avg10"] == 3.0
    assert p["cpu"]["nr_throttled"] == 7 and p["errors"] == []
    hist = doc["samples"]
    assert len(hist) >= 2 and all(a["sampled_at"] < b["sampled_at"] for a, b in itertools.pairwise(hist))
    assert hist[-1]["identity"] == doc["identity"]["id"] and hist[-1]["psi_some_avg10"] == 12.5
    assert abs(doc["now"] - hist[-1]["sampled_at"]) < 5
    since = hist[-2]["sampled_at"]
    newer = (await running.json(f"/v1/pressure?since={since!r}"))["samples"]
    assert newer and all(h["sampled_at"] > since for h in newer)
    assert (await running.get("/v1/pressure?since=abc"))[0] == 400


async def test_identity_changes_on_limit_change_and_restart_and_ooms_count(running: Running, v2_tree: Path) -> None:
    d = v2_tree / CTR.lstrip("/")
    first = (await running.json())["identity"]["id"]
    await running.next_round()
    assert (await running.json())["identity"]["id"] == first  # stable while nothing changes

    (d / "memory.max").write_text(f"{1024 * MiB}\n")  # an in-place resize
    await running.next_round()
    await running.next_round()
    doc = await running.json()
    resized = doc["identity"]["id"]
    assert resized != first and doc["primary"]["memory"]["limit_bytes"] == 1024 * MiB

    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n")
    await running.next_round()
    await running.next_round()
    assert (await running.json())["oom_kills_total"] == 2

    # Container restart: a new cgroup directory (new inode; made before the old one goes, as tmpfs reuses
    # inode numbers and kernfs does not), with a fresh oom_kill counter.
    write_v2(Path(str(d) + ".new"), limit=str(1024 * MiB), oom_kill=1)
    shutil.rmtree(d)
    os.rename(str(d) + ".new", d)
    await running.next_round()
    await running.next_round()
    doc = await running.json()
    assert doc["identity"]["id"] not in (first, resized)
    assert doc["oom_kills_total"] == 3
    _status, _, body = await running.get("/metrics")
    assert b"rva_agent_oom_kills_total 3.0" in body


async def test_unknown_paths_and_methods(running: Running) -> None:
    assert (await running.get("/nope"))[0] == 404
    async with running.session.post(running.base + "/metrics") as r:
        assert r.status == 405
    async with running.session.head(running.base + "/metrics") as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) > 0 and await r.read() == b""


async def test_garbage_and_oversized_requests_are_closed(running: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(b"X" * 40000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    assert (await running.get("/healthz"))[0] == 200


async def test_healthz_fails_when_sampling_stops(v2_tree: Path) -> None:
    now = [1000.0]
    cfg = AgentConfig(cgroup_root=v2_tree, cgroup_path=CTR, interval_s=5, psi_trigger=None)
    async for r in start(cfg, clock=lambda: now[0]):
        assert (await r.get("/healthz"))[0] == 200
        now[0] += 60
        status, _, body = await r.get("/healthz")
        assert status == 503 and b"old" in body


async def test_psi_trigger_that_cannot_arm_falls_back_to_interval_sampling(v2_tree: Path) -> None:
    # A fixture memory.pressure is a regular file: epoll refuses it (EPERM), like EROFS/EINVAL on nodes.
    cfg = AgentConfig(cgroup_root=v2_tree, cgroup_path=CTR, interval_s=0.05, psi_trigger="some 150000 2000000")
    async for r in start(cfg):
        doc = await r.json()
        assert doc["agent"]["psi_trigger"]["armed"] is False and doc["agent"]["psi_trigger"]["error"]
        await r.next_round()
        assert (await r.get("/healthz"))[0] == 200
        assert b"rva_agent_psi_trigger_armed 0.0" in (await r.get("/metrics"))[2]


def sidecar_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = hybrid_root(tmp_path / "node")
    rel = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
    pod_v2 = write_v2(root / "unified" / rel, memory=False, some=30.0)
    write_v1(root / "memory" / rel, usage=900 * MiB, limit=str(1024 * MiB))
    for cid in (CID_A, CID_B):
        write_v2(pod_v2 / f"cri-containerd-{cid}.scope", memory=False)
        write_v1(root / "memory" / rel / f"cri-containerd-{cid}.scope", usage=450 * MiB, limit=str(1000 * MiB))
    ray = pod_v2 / f"cri-containerd-{CID_A}.scope" / "ray-node_deadbeef"
    for sub in ("system", "user", "user/workers"):
        write_v2(ray / sub, memory=False, some=40.0)
    return root, pod_v2


async def test_sidecar_reports_pod_containers_and_ray_subtrees(tmp_path: Path) -> None:
    root, _ = sidecar_tree(tmp_path)
    cfg = AgentConfig(mode="sidecar", cgroup_root=root, pod_uid=UID, interval_s=0.05, psi_trigger=None)
    async for r in start(cfg):
        doc = await r.json()
        assert doc["pod"]["qos"] == "burstable" and doc["pod"]["cgroup_driver"] == "systemd"
        assert doc["primary"]["scope"] == "pod" and doc["primary"]["cgroup_version"] == "hybrid"
        assert doc["primary"]["memory"]["usage_bytes"] == 900 * MiB
        assert doc["primary"]["psi"]["memory"]["some"]["avg10"] == 30.0
        assert sorted(c["id"] for c in doc["containers"]) == sorted([CID_A, CID_B])
        assert {c["memory"]["limit_bytes"] for c in doc["containers"]} == {1000 * MiB}
        ray = {x["cgroup"]: x for x in doc["ray"]}
        assert set(ray) == {"ray-node_deadbeef/system", "ray-node_deadbeef/user", "ray-node_deadbeef/user/workers"}
        assert ray["ray-node_deadbeef/user/workers"]["psi"]["memory"]["some"]["avg10"] == 40.0
        body = (await r.get("/metrics"))[2]
        text = body.decode()
        assert f'rva_agent_memory_usage_bytes{{cgroup="{CID_A}",scope="container"}}' in text
        assert ('rva_agent_pressure_ratio{cgroup="ray-node_deadbeef/user/workers",kind="some",resource="memory",'
                'scope="ray",window="10s"} 0.4') in text
        promtool_check(body)


async def test_sidecar_identity_changes_when_a_container_restarts(tmp_path: Path) -> None:
    root, pod_v2 = sidecar_tree(tmp_path)
    cfg = AgentConfig(mode="sidecar", cgroup_root=root, pod_uid=UID, interval_s=0.05, psi_trigger=None)
    async for r in start(cfg):
        before = (await r.json())["identity"]["id"]
        shutil.rmtree(pod_v2 / f"cri-containerd-{CID_B}.scope")
        write_v2(pod_v2 / f"cri-containerd-{'c' * 64}.scope", memory=False)
        await r.next_round()
        await r.next_round()
        doc = await r.json()
        assert doc["identity"]["id"] != before and "c" * 64 in [c["id"] for c in doc["containers"]]


async def test_sidecar_waits_for_its_pod_cgroup(tmp_path: Path) -> None:
    root = hybrid_root(tmp_path / "node")
    cfg = AgentConfig(mode="sidecar", cgroup_root=root, pod_uid=UID, interval_s=0.05, psi_trigger=None)
    async for r in start(cfg):
        status, _, body = await r.get("/healthz")
        assert status == 503 and b"no cgroup for pod" in body
        write_v2(root / "unified" / f"kubepods/pod{UID}", memory=False)
        write_v1(root / "memory" / f"kubepods/pod{UID}")
        await r.next_round()
        assert (await r.get("/healthz"))[0] == 200


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    configure(p)
    return p.parse_args(argv)


def test_cli_validation() -> None:
    assert config_from_args(parse(["--psi-trigger", "off"])).psi_trigger is None
    cfg = config_from_args(parse(["--mode", "sidecar", "--pod-uid", UID, "--interval", "2"]))
    assert cfg.mode == "sidecar" and cfg.interval_s == 2.0 and cfg.psi_trigger == "some 150000 2000000"
    with pytest.raises(ValueError, match="pod-uid"):
        config_from_args(parse(["--mode", "sidecar", "--pod-uid", ""]))
    with pytest.raises(ValueError, match="PSI trigger"):
        config_from_args(parse(["--psi-trigger", "some 1"]))
    with pytest.raises(ValueError, match="window"):
        config_from_args(parse(["--psi-trigger", "some 100 100000000"]))


def test_agent_import_graph_stays_small() -> None:
    code = ("import sys, autoscaler.agent; bad = [m for m in ('ray', 'aiohttp', 'numpy', 'grpc', 'autoscaler.model') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
