"""Fault injection: deterministic from the seed, and each kind behaves as a client would see it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.faults import FaultInjector, FaultRule
from autoscaler.sim.store import ObjectStore


def _rules() -> list[FaultRule]:
    return [
        FaultRule("error", verb="patch", resource="pods/resize", probability=0.3, code=503),
        FaultRule("throttle", verb="get", resource="pods", probability=0.2, retry_after=2),
        FaultRule("error", verb="*", resource="*", probability=0.1, code=500),
    ]


async def _run(seed: int) -> tuple[list[tuple[int, str, str, str]], list[int]]:
    store = ObjectStore()
    store.create("pods", {"metadata": {"name": "w1"}, "spec": {"containers": [
        {"name": "c", "image": "i:1", "resources": {"requests": {"cpu": "1"}}}]}})
    faults = FaultInjector(_rules(), seed=seed)
    codes: list[int] = []
    async with SimApiServer(store, faults=faults) as api, aiohttp.ClientSession() as s:
        base = f"{api.url}/api/v1/namespaces/default/pods/w1"
        for i in range(40):
            if i % 2:
                async with s.get(base) as r:
                    codes.append(r.status)
            else:
                body = {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": f"{1000 + i}m"}}}]}}
                async with s.patch(f"{base}/resize", data=json.dumps(body),
                                   headers={"Content-Type": "application/strategic-merge-patch+json"}) as r:
                    codes.append(r.status)
    return [(f.seq, f.verb, f.resource, f.kind) for f in faults.log], codes


async def test_same_seed_same_fault_sequence() -> None:
    first, codes1 = await _run(42)
    second, codes2 = await _run(42)
    third, _ = await _run(7)
    assert first == second and codes1 == codes2
    assert first != third
    assert {503, 429, 500} <= set(codes1) and 200 in codes1


async def test_error_faults_do_not_touch_state() -> None:
    store = ObjectStore()
    store.create("configmaps", {"metadata": {"name": "a"}, "data": {"v": "1"}})
    faults = FaultInjector([FaultRule("error", verb="patch", code=500, times=1)])
    async with SimApiServer(store, faults=faults) as api, aiohttp.ClientSession() as s:
        url = f"{api.url}/api/v1/namespaces/default/configmaps/a"
        hdr = {"Content-Type": "application/merge-patch+json"}
        async with s.patch(url, data=b'{"data":{"v":"2"}}', headers=hdr) as r:
            body = await r.json()
            assert r.status == 500 and body["reason"] == "InternalError"
        assert store.get("configmaps", "default", "a")["data"] == {"v": "1"}
        async with s.patch(url, data=b'{"data":{"v":"2"}}', headers=hdr) as r:
            assert r.status == 200


async def test_throttle_sends_retry_after() -> None:
    faults = FaultInjector([FaultRule("throttle", verb="list", retry_after=3)])
    async with SimApiServer(ObjectStore(), faults=faults) as api, aiohttp.ClientSession() as s, \
            s.get(f"{api.url}/api/v1/namespaces/default/pods") as r:
        assert r.status == 429 and r.headers["Retry-After"] == "3"
        body = await r.json()
    assert body["reason"] == "TooManyRequests" and body["details"] == {"retryAfterSeconds": 3}


async def test_slow_and_timeout() -> None:
    faults = FaultInjector([FaultRule("slow", verb="get", resource="nodes", delay=0.3),
                            FaultRule("timeout", verb="list", resource="nodes", delay=5)])
    store = ObjectStore()
    store.create("nodes", {"metadata": {"name": "n1"}})
    async with SimApiServer(store, faults=faults) as api, aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(f"{api.url}/api/v1/nodes/n1") as r:
            assert r.status == 200
        assert time.monotonic() - t0 >= 0.3
        with pytest.raises(asyncio.TimeoutError):
            async with s.get(f"{api.url}/api/v1/nodes", timeout=aiohttp.ClientTimeout(total=0.3)) as r:
                await r.read()


async def _watch_lines(api: SimApiServer, params: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
    lines: list[dict[str, Any]] = []
    broken = False
    async with aiohttp.ClientSession() as s, s.get(f"{api.url}/api/v1/namespaces/default/configmaps",
                                                   params={"watch": "true", **params}) as r:
        try:
            async for raw in r.content:
                lines.append(json.loads(raw))
        except aiohttp.ClientPayloadError:
            broken = True
    return lines, broken


async def test_dropped_watch_and_forced_410() -> None:
    store = ObjectStore()
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}})
    faults = FaultInjector([FaultRule("drop_watch", verb="watch", after_events=2, times=1),
                            FaultRule("gone", verb="watch", times=1)])
    async with SimApiServer(store, faults=faults) as api:
        lines, broken = await _watch_lines(api, {"timeoutSeconds": "2"})
        assert [ev["type"] for ev in lines] == ["ADDED", "ADDED"] and broken
        lines, _ = await _watch_lines(api, {"timeoutSeconds": "2", "resourceVersion": "4"})
        assert lines == [{"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version: 4 (5)", "reason": "Expired", "code": 410}}]
        lines, _ = await _watch_lines(api, {"timeoutSeconds": "1", "resourceVersion": "4"})
        assert [ev["object"]["metadata"]["name"] for ev in lines] == ["c4"]


def test_kubelet_style_fault_points() -> None:
    faults = FaultInjector([FaultRule("stall", verb="kubelet", resource="node-*", probability=0.5, delay=30)],
                           seed=1)
    fired = [faults.decide("kubelet", f"node-{i}") is not None for i in range(20)]
    faults.reset()
    assert fired == [faults.decide("kubelet", f"node-{i}") is not None for i in range(20)]
    assert any(fired) and not all(fired)
    with pytest.raises(ValueError):
        FaultRule("explode")
