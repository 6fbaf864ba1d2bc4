"""Watch semantics over real HTTP: resume, 410 relist, bookmarks, timeouts, selectors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.store import ObjectStore


@pytest.fixture
async def api() -> AsyncIterator[SimApiServer]:
    async with SimApiServer(ObjectStore(history_size=20), bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
async def v1(api: SimApiServer) -> AsyncIterator[client.CoreV1Api]:
    async with ApiClient(Configuration(host=api.url)) as ac:
        yield client.CoreV1Api(ac)


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ray", "labels": labels}, "data": {"v": "0"}}


async def _collect(v1: client.CoreV1Api, n: int, **kw: Any) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    async with watch.Watch() as w:
        async for ev in w.stream(v1.list_namespaced_config_map, "ray", timeout_seconds=5, **kw):
            out.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version))
            if len(out) == n:
                break
    return out


async def test_watch_resumes_from_a_list_resource_version(api: SimApiServer, v1: client.CoreV1Api) -> None:
    store = api.store
    store.create("configmaps", _cm("a"))
    listed = await v1.list_namespaced_config_map("ray")
    store.create("configmaps", _cm("b"))
    store.patch("configmaps", "ray", "a", {"data": {"v": "1"}}, "application/merge-patch+json")
    store.delete("configmaps", "ray", "b")
    events = await _collect(v1, 3, resource_version=listed.metadata.resource_version)
    assert events == [("ADDED", "b", "2"), ("MODIFIED", "a", "3"), ("DELETED", "b", "4")]


async def test_watch_without_resource_version_starts_with_synthetic_adds(
    api: SimApiServer, v1: client.CoreV1Api
) -> None:
    api.store.create("configmaps", _cm("a"))
    api.store.create("configmaps", _cm("b"))

    async def later() -> None:
        await asyncio.sleep(0.05)
        api.store.patch("configmaps", "ray", "b", {"data": {"v": "2"}}, "application/merge-patch+json")

    task = asyncio.create_task(later())
    events = await _collect(v1, 3)
    await task
    assert events == [("ADDED", "a", "1"), ("ADDED", "b", "2"), ("MODIFIED", "b", "3")]


async def test_expired_resource_version_gives_410_and_a_relist_recovers(
    api: SimApiServer, v1: client.CoreV1Api
) -> None:
    for i in range(30):  # more than the 20-event history
        api.store.create("configmaps", _cm(f"c{i}"))
    with pytest.raises(ApiException) as e:
        await _collect(v1, 1, resource_version="3")
    assert e.value.status == 410 and "Expired: too old resource version: 3 (10)" in str(e.value.reason)
    relisted = await v1.list_namespaced_config_map("ray")
    assert len(relisted.items) == 30
    api.store.delete("configmaps", "ray", "c0")
    assert await _collect(v1, 1, resource_version=relisted.metadata.resource_version) == [("DELETED", "c0", "31")]


async def test_label_selected_watch(api: SimApiServer, v1: client.CoreV1Api) -> None:
    api.store.create("configmaps", _cm("a", role="policy"))
    api.store.create("configmaps", _cm("b", role="other"))
    api.store.patch("configmaps", "ray", "b", {"metadata": {"labels": {"role": "policy"}}},
                    "application/merge-patch+json")
    events = await _collect(v1, 2, label_selector="role=policy", resource_version="0")
    assert [(t, n) for t, n, _ in events] == [("ADDED", "a"), ("ADDED", "b")]


async def test_bookmarks_and_timeout_seconds_with_raw_http(api: SimApiServer) -> None:
    api.store.create("configmaps", _cm("a"))
    url = f"{api.url}/api/v1/namespaces/ray/configmaps"
    lines: list[dict[str, Any]] = []
    start = time.monotonic()
    async with aiohttp.ClientSession() as s, s.get(url, params={
        "watch": "1", "resourceVersion": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "1"}) as r:
        assert r.status == 200
        async for raw in r.content:
            lines.append(json.loads(raw))
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 3
    assert lines and all(ev["type"] == "BOOKMARK" for ev in lines)
    assert lines[0]["object"] == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}}


@pytest.mark.parametrize("flag", ["true", "True", "1"])
async def test_watch_flag_spellings(api: SimApiServer, flag: str) -> None:
    api.store.create("configmaps", _cm("a"))
    async with aiohttp.ClientSession() as s, s.get(f"{api.url}/api/v1/namespaces/ray/configmaps",
                                                   params={"watch": flag, "timeoutSeconds": "1"}) as r:
        first = json.loads(await r.content.readline())
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "a"


async def test_cluster_scoped_watch_of_nodes(api: SimApiServer) -> None:
    async with ApiClient(Configuration(host=api.url)) as ac:
        v1 = client.CoreV1Api(ac)

        async def later() -> None:
            await asyncio.sleep(0.05)
            api.store.create("nodes", {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}})

        task = asyncio.create_task(later())
        async with watch.Watch() as w:
            async for ev in w.stream(v1.list_node, timeout_seconds=3):
                assert ev["type"] == "ADDED" and ev["object"].metadata.name == "n1"
                break
        await task
