"""The client's rate limit and retries, against a real HTTP server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.kubeclient import KubeSettings, RetryPolicy, TokenBucket, make_api_client, read_json


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str], list[int]]]:
    script: list[int] = []  # status codes to answer, in order; then 200
    seen: list[str] = []

    async def pod(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        status = script.pop(0) if script else 200
        if status == 429:
            return web.json_response({"kind": "Status", "code": 429}, status=429, headers={"Retry-After": "0.2"})
        if status != 200:
            return web.json_response({"kind": "Status", "code": status, "message": "boom"}, status=status)
        return web.json_response({"kind": "Pod", "metadata": {"name": request.match_info["name"]}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", pod)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen, script
    await runner.cleanup()


async def test_429_honours_retry_after_and_5xx_is_retried(server: tuple[str, list[str], list[int]]) -> None:
    url, seen, script = server
    observed: list[tuple[str, str, str]] = []
    api = await make_api_client(KubeSettings(server=url, token="t0k"),
                                observer=lambda v, r, c, s: observed.append((v, r, c)),
                                retry=RetryPolicy(attempts=4, base_delay=0.01))
    script += [429, 503]
    t0 = time.monotonic()
    resp = await client.CoreV1Api(api).read_namespaced_pod("p", "ns", _preload_content=False)
    body = await read_json(resp)
    assert body["metadata"]["name"] == "p"
    assert time.monotonic() - t0 >= 0.2  # waited for Retry-After
    assert [c for _, _, c in observed] == ["429", "503", "200"]
    assert observed[0][:2] == ("GET", "pods")
    assert seen[0] == "Bearer t0k"
    await api.close()


async def test_client_errors_are_not_retried(server: tuple[str, list[str], list[int]]) -> None:
    url, seen, script = server
    api = await make_api_client(KubeSettings(server=url), retry=RetryPolicy(attempts=4, base_delay=0.01))
    script += [404]
    with pytest.raises(ApiException) as e:
        await client.CoreV1Api(api).read_namespaced_pod("p", "ns", _preload_content=False)
    assert e.value.status == 404 and len(seen) == 1
    await api.close()


async def test_retries_give_up_after_the_budget(server: tuple[str, list[str], list[int]]) -> None:
    url, seen, script = server
    api = await make_api_client(KubeSettings(server=url), retry=RetryPolicy(attempts=3, base_delay=0.01))
    script += [500, 500, 500, 500]
    with pytest.raises(ApiException) as e:
        await client.CoreV1Api(api).read_namespaced_pod("p", "ns", _preload_content=False)
    assert e.value.status == 500 and len(seen) == 3
    await api.close()


async def test_token_bucket_limits_the_rate() -> None:
    bucket = TokenBucket(qps=50, burst=5)
    t0 = time.monotonic()
    for _ in range(15):  # 5 from the burst, 10 more at 50/s ≈ 0.2 s
        await bucket.acquire()
    elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < 0.6
    with pytest.raises(ValueError):
        TokenBucket(qps=0, burst=1)
