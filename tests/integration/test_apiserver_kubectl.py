"""The real kubectl (1.32+) against the simulated apiserver: discovery, get, resize patch, errors."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator

import pytest

from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.store import ObjectStore

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


@pytest.fixture
async def api() -> AsyncIterator[SimApiServer]:
    store = ObjectStore(server_minor=33)
    store.create("pods", {"metadata": {"name": "w1", "namespace": "default"}, "spec": {"containers": [{
        "name": "ray", "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}}]}})
    async with SimApiServer(store) as server:
        yield server


async def _kubectl(api: SimApiServer, *args: str) -> tuple[int, str, str]:
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--server", api.url, "--request-timeout", "20s", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_get_pods(api: SimApiServer) -> None:
    code, out, err = await _kubectl(api, "get", "pods")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:4] == ["w1", "0/1", "Pending", "0"]
    code, out, err = await _kubectl(api, "get", "pod", "w1", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["status"]["qosClass"] == "Burstable"


async def test_kubectl_patch_subresource_resize(api: SimApiServer) -> None:
    patch = '{"spec":{"containers":[{"name":"ray","resources":{"requests":{"cpu":"800m"}}}]}}'
    code, out, err = await _kubectl(api, "patch", "pod", "w1", "--subresource", "resize", "--patch", patch)
    assert code == 0, err
    assert "pod/w1 patched" in out
    pod = api.store.get("pods", "default", "w1")
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "800m"
    assert pod["spec"]["containers"][0]["image"] == "rayproject/ray:2.60.0"
    assert pod["metadata"]["generation"] == 2
    assert any(r.method == "PATCH" and r.resource == "pods/resize" for r in api.requests)


async def test_kubectl_shows_the_resize_error(api: SimApiServer) -> None:
    patch = '{"spec":{"containers":[{"name":"ray","resources":{"limits":{"memory":"1Gi"}}}]}}'
    code, _, err = await _kubectl(api, "patch", "pod", "w1", "--subresource", "resize", "--patch", patch)
    assert code != 0
    assert 'The Pod "w1" is invalid: spec.containers[0].resources.limits[memory]: Forbidden: memory limits cannot ' \
           "be decreased unless resizePolicy is RestartContainer" in err


async def test_kubectl_custom_resources_and_nodes(api: SimApiServer) -> None:
    api.store.create("nodes", {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}})
    code, out, err = await _kubectl(api, "get", "nodes", "-o", "name")
    assert code == 0, err
    assert out.strip() == "node/n1"
    code, out, err = await _kubectl(api, "get", "rayclusters", "-A")
    assert code == 0, err


async def test_kubectl_get_watch_streams_table_rows(api: SimApiServer) -> None:
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(KUBECTL, "--server", api.url, "get", "pods", "-w",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert first.split()[:3] == [b"NAME", b"READY", b"STATUS"]
    await asyncio.wait_for(proc.stdout.readline(), 20)  # the existing pod
    api.store.create("pods", {"metadata": {"name": "w2"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}})
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    proc.terminate()
    await proc.wait()
    assert line.split()[:3] == [b"w2", b"0/1", b"Pending"]
