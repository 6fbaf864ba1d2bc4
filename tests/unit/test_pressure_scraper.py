"""The controller's agent scraper and the daemon's pressure source, against real agents and bad servers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from autoscaler.agent import Agent, AgentConfig
from autoscaler.annotations import IN_FLIGHT, encode_in_flight
from autoscaler.model import InFlightResize, Resources
from autoscaler.observe.pressure import (
    AgentEndpoint,
    AgentScraper,
    PodContext,
    Thresholds,
    agent_endpoint,
    detect_series,
    parse_agent_document,
)
from autoscaler.observe.pressure_source import AgentPressureSource
from autoscaler.policy import Policy
from tests.unit.cgroup_fixtures import psi, v2_root, write_v2

CTR = "/kubepods/pod1/ctr"


def pod(ip: str | None = "10.0.0.7", annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "w-1", "namespace": "ray", "annotations": annotations or {}},
            "spec": spec, "status": {"podIP": ip} if ip else {}}


def test_agent_endpoint_from_annotation_or_named_port() -> None:
    ep = agent_endpoint(pod(annotations={"rva.ray.io/agent-port": "9464"}))
    assert ep == AgentEndpoint("w-1", "ray", "http://10.0.0.7:9464")
    named = {"name": "rva-agent", "containerPort": 9100}
    assert agent_endpoint(pod(containers=[{"name": "ray", "ports": [{"name": "gcs", "containerPort": 6379}, named]}]))\
        == AgentEndpoint("w-1", "ray", "http://10.0.0.7:9100")
    sidecar = {"name": "agent", "restartPolicy": "Always", "ports": [named]}
    assert agent_endpoint(pod(initContainers=[sidecar])) == AgentEndpoint("w-1", "ray", "http://10.0.0.7:9100")
    v6 = agent_endpoint(pod(ip="fd00::7", annotations={"rva.ray.io/agent-port": "9464"}))
    assert v6 is not None and v6.url == "http://[fd00::7]:9464"
    assert agent_endpoint(pod(ip=None, annotations={"rva.ray.io/agent-port": "9464"})) is None  # not scheduled yet
    assert agent_endpoint(pod()) is None  # no agent
    assert agent_endpoint(pod(annotations={"rva.ray.io/agent-port": "lots"})) is None


def test_parse_agent_document_moves_samples_onto_the_controller_clock() -> None:
    doc = {"version": 1, "now": 500.0, "agent": {"instance": "i1"},
           "samples": [{"sampled_at": 499.0, "identity": "x", "psi_some_avg10": 3.5, "usage_bytes": 10,
                        "limit_bytes": None, "oom_kills_total": 2},
                       {"sampled_at": 498.0, "identity": "x"}]}
    a, b = parse_agent_document("w-1", doc, received_at=1000.0)
    assert (a.sampled_at, a.agent_sampled_at, b.sampled_at) == (998.0, 498.0, 999.0)
    assert b.psi_some_avg10 == 3.5 and b.limit_bytes is None and b.oom_kills_total == 2 and b.agent_instance == "i1"
    with pytest.raises(ValueError):
        parse_agent_document("w-1", {**doc, "version": 2}, 0.0)


@pytest.fixture
async def agent(tmp_path: Path) -> Any:
    root = v2_root(tmp_path / "cg")
    write_v2(root / CTR.lstrip("/"), some=40.0, usage=900 << 20, limit=str(1 << 30))
    a = Agent(AgentConfig(cgroup_root=root, cgroup_path=CTR, interval_s=0.05, psi_trigger=None))
    port = await a.start("127.0.0.1", 0)
    a.test_dir = root / CTR.lstrip("/")  # type: ignore[attr-defined]
    yield a, AgentEndpoint("w-1", "ray", f"http://127.0.0.1:{port}")
    await a.stop()


async def test_scrape_a_real_agent_then_only_new_samples(agent: Any) -> None:
    a, ep = agent
    async with aiohttp.ClientSession() as session:
        scraper = AgentScraper(session, timeout_s=2.0)
        first = (await scraper.scrape([ep]))["w-1"]
        assert first.error == "" and not first.stale and first.samples
        assert first.latest is not None and first.latest.identity == a.sampler.latest.identity
        assert first.latest.psi_some_avg10 == 40.0 and first.latest.limit_bytes == 1 << 30
        assert abs(first.latest.sampled_at - time.time()) < 2
        await asyncio.sleep(0.2)
        second = (await scraper.scrape([ep]))["w-1"]
        assert second.samples and second.samples[0].agent_sampled_at > first.samples[-1].agent_sampled_at
        assert len(second.samples) < len(first.samples) + 10  # not the whole history again

        # The detector, fed from the scrapes, fires on the agent's 40 % PSI.
        th = Thresholds(window_s=0.05, consecutive_windows=3)
        det = detect_series(None, first.for_detector() + second.for_detector(), PodContext(), th, time.time())
        assert det.fired(th) and det.pressure is not None and det.pressure.pod == "w-1"


async def test_a_stopped_agent_is_an_error_then_stale(agent: Any) -> None:
    a, ep = agent
    now = [time.time()]
    async with aiohttp.ClientSession() as session:
        scraper = AgentScraper(session, timeout_s=1.0, stale_after_s=15, clock=lambda: now[0])
        assert (await scraper.scrape([ep]))["w-1"].error == ""
        await a.stop()
        down = (await scraper.scrape([ep]))["w-1"]
        assert down.error and not down.stale and down.latest is not None and down.samples == ()
        assert down.for_detector() == (down.latest,)
        now[0] += 30
        assert (await scraper.scrape([ep]))["w-1"].stale


async def serve(handler: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_timeout_and_garbage_are_errors_not_crashes() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops")
        await writer.drain()
        writer.close()

    s1, p1 = await serve(silent)
    s2, p2 = await serve(garbage)
    try:
        async with aiohttp.ClientSession() as session:
            scraper = AgentScraper(session, timeout_s=0.3)
            started = time.monotonic()
            res = await scraper.scrape([AgentEndpoint("slow", "ns", f"http://127.0.0.1:{p1}"),
                                        AgentEndpoint("bad", "ns", f"http://127.0.0.1:{p2}"),
                                        AgentEndpoint("closed", "ns", "http://127.0.0.1:1")])
            assert time.monotonic() - started < 3
            assert "Timeout" in res["slow"].error and res["slow"].stale and res["slow"].latest is None
            assert res["bad"].error and res["closed"].error
    finally:
        for s in (s1, s2):
            s.close()


async def test_concurrency_is_bounded() -> None:
    active, peak = 0, 0
    doc = json.dumps({"version": 1, "now": time.time(), "agent": {"instance": "i"}, "samples": []}).encode()

    async def slow_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active, peak
        await reader.readuntil(b"\r\n\r\n")
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.1)
        active -= 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(doc), doc))
        await writer.drain()
        writer.close()

    server, port = await serve(slow_ok)
    try:
        async with aiohttp.ClientSession() as session:
            scraper = AgentScraper(session, concurrency=2, timeout_s=5)
            eps = [AgentEndpoint(f"w-{i}", "ns", f"http://127.0.0.1:{port}") for i in range(6)]
            res = await scraper.scrape(eps)
            assert all(r.error == "" for r in res.values()) and len(res) == 6
            assert peak == 2
    finally:
        server.close()


async def test_forgets_pods_no_longer_scraped(agent: Any) -> None:
    a, ep = agent
    (a.test_dir / "memory.pressure").write_text(psi(1.0))
    async with aiohttp.ClientSession() as session:
        scraper = AgentScraper(session)
        first = (await scraper.scrape([ep]))["w-1"]
        await asyncio.sleep(0.2)
        await scraper.scrape([])
        again = (await scraper.scrape([ep]))["w-1"]
        assert first.latest is not None
        # The whole history again (nothing remembered for the pod), not just what is newer.
        assert again.samples[0].agent_sampled_at <= first.latest.agent_sampled_at


def k8s_pod(name: str, port: int, *, ready_at: str = "2020-01-01T00:00:00Z",
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ray", "labels": {"ray.io/group": "cpu"},
                     "annotations": {"rva.ray.io/agent-port": str(port), **(annotations or {})}},
        "spec": {"containers": [{"name": "ray-worker", "resources": {"limits": {"memory": "1Gi"}}}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]},
    }


async def test_daemon_pressure_source_maps_policy_and_pods(agent: Any) -> None:
    _, ep = agent
    port = int(ep.url.rsplit(":", 1)[1])
    resize = encode_in_flight(InFlightResize(Resources(), Resources(), Resources(), Resources(), time.time(), 2, "x"))
    pods = [k8s_pod("w-1", port), k8s_pod("w-young", port, ready_at="2100-01-01T00:00:00Z"),
            k8s_pod("w-resizing", port, annotations={IN_FLIGHT: resize}),
            {"metadata": {"name": "no-agent"}, "spec": {}, "status": {"podIP": "10.0.0.1"}}]
    source = AgentPressureSource(timeout_s=2.0)
    try:
        await asyncio.sleep(1.1)  # > one 1 s window of agent history at 40 % PSI
        out = await source.sample(pods, Policy.default(), time.time())
        assert set(out) == {"w-1", "w-young", "w-resizing"}
        assert out["w-1"].consecutive_windows >= 2 and out["w-1"].psi_some_avg10 == 40.0
        assert out["w-young"].skip_reason == "startup_grace" and out["w-young"].consecutive_windows == 0
        assert out["w-resizing"].skip_reason == "resize_in_flight"
        again = await source.sample(pods[:1], Policy.default(), time.time())
        assert set(again) == {"w-1"} and set(source.last_detections) == {"w-1"}
    finally:
        await source.close()
