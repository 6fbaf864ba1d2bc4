"""The daemon's Kubernetes client: ``kubernetes_asyncio`` with client-side rate limiting and retries.

* A token bucket (default 20 QPS, burst 30 — client-go's etiquette, see the peers reference) gates
  every request, watches included.
* 429 honours ``Retry-After``; 5xx, connection errors and timeouts back off with jitter. Only
  requests that are safe to repeat are retried (everything rva sends sets absolute values).
* Every response is counted by verb and code for ``rva_kube_api_requests_total``.
* Objects are read as plain dicts (``_preload_content=False``): no model deserialisation on the
  hot path.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

RequestObserver = Callable[[str, str, str, float], None]  # (verb, resource, code, seconds)


class TokenBucket:
    """Classic token bucket; ``acquire`` waits until a token is available."""

    def __init__(self, qps: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst <= 0:
            raise ValueError("qps and burst must be positive")
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._now = now
        self._last = now()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        t = self._now()
        self._tokens = min(self.burst, self._tokens + (t - self._last) * self.qps)
        self._last = t

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            while self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.qps)
                self._refill()
            self._tokens -= 1


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    request_timeout: float = 15.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        # Full jitter (AWS architecture blog): uniform in [0, min(max, base·2^attempt)].
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def _verb(method: str, url: str, query: Any) -> str:
    q = dict(query or [])
    if method == "GET":
        if str(q.get("watch", "")).lower() in ("true", "1"):
            return "WATCH"
        return "GET"
    return method


def _resource(url: str) -> str:
    parts = [p for p in url.split("?")[0].split("/") if p]
    # …/namespaces/<ns>/<plural>[/<name>[/<sub>]] or …/<plural>[/<name>[/<sub>]]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :] if len(parts) > i + 2 else ["namespaces"]
    else:
        known = {"api", "apis", "v1"}
        rest = [p for p in parts if p not in known]
        rest = rest[2:] if len(rest) > 2 and "." in rest[0] else rest
    if not rest:
        return "unknown"
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")


class RateLimitedApiClient(client.ApiClient):  # type: ignore[misc]
    """An ``ApiClient`` whose every request passes the token bucket and the retry policy."""

    def __init__(
        self,
        configuration: client.Configuration,
        bucket: TokenBucket,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(configuration)
        self.bucket = bucket
        self.retry = retry or RetryPolicy()
        self.observer = observer
        self._rng = random.Random(seed)

    async def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Any:
        verb = _verb(method, url, query_params)
        resource = _resource(url)
        streaming = verb == "WATCH"
        timeout = _request_timeout if _request_timeout is not None else (
            None if streaming else self.retry.request_timeout
        )
        attempt = 0
        while True:
            await self.bucket.acquire()
            started = time.monotonic()
            try:
                resp = await super().request(
                    method, url, query_params=query_params, headers=headers, post_params=post_params,
                    body=body, _preload_content=_preload_content, _request_timeout=timeout,
                )
            except ApiException as e:
                self._observe(verb, resource, str(e.status), started)
                delay = self._retry_delay(e, attempt, streaming)
                if delay is None:
                    raise
            except (TimeoutError, aiohttp.ClientError) as e:
                self._observe(verb, resource, "error", started)
                if streaming or attempt + 1 >= self.retry.attempts:
                    raise ApiException(status=0, reason=f"{type(e).__name__}: {e}") from e
                delay = self.retry.backoff(attempt, self._rng)
            else:
                status = getattr(resp, "status", 200)
                if not _preload_content and isinstance(status, int) and status >= 400:
                    # Streaming/raw responses are not raised by the REST client; do it here.
                    data = await resp.read()
                    self._observe(verb, resource, str(status), started)
                    err = ApiException(status=status, reason=resp.reason)
                    err.body = data
                    err.headers = resp.headers
                    delay = self._retry_delay(err, attempt, streaming)
                    if delay is None:
                        raise err
                else:
                    self._observe(verb, resource, str(status), started)
                    return resp
            attempt += 1
            await asyncio.sleep(delay)

    def _retry_delay(self, e: ApiException, attempt: int, streaming: bool) -> float | None:
        if streaming or attempt + 1 >= self.retry.attempts:
            return None
        if e.status == 429:
            headers: Any = e.headers or {}
            retry_after = headers.get("Retry-After")
            try:
                return min(float(retry_after), 60.0) if retry_after else self.retry.backoff(attempt, self._rng)
            except ValueError:
                return self.retry.backoff(attempt, self._rng)
        if e.status in (500, 502, 503, 504) or e.status == 0:
            return self.retry.backoff(attempt, self._rng)
        return None

    def _observe(self, verb: str, resource: str, code: str, started: float) -> None:
        if self.observer is not None:
            self.observer(verb, resource, code, time.monotonic() - started)


@dataclass(frozen=True)
class KubeSettings:
    """Where the API server is and how to talk to it."""

    server: str | None = None  # explicit URL (tests, simulated API); else kubeconfig / in-cluster
    token: str | None = None
    kubeconfig: str | None = None
    in_cluster: bool = False
    qps: float = 20.0
    burst: int = 30


async def make_api_client(
    settings: KubeSettings, observer: RequestObserver | None = None, retry: RetryPolicy | None = None
) -> RateLimitedApiClient:
    """An API client for an explicit server, in-cluster service account, or kubeconfig."""
    cfg = client.Configuration()
    if settings.server:
        cfg.host = settings.server
        if settings.token:
            cfg.api_key = {"BearerToken": settings.token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
    elif settings.in_cluster:
        config.load_incluster_config(client_configuration=cfg)
    else:
        await config.load_kube_config(config_file=settings.kubeconfig, client_configuration=cfg)
    return RateLimitedApiClient(cfg, TokenBucket(settings.qps, settings.burst), retry=retry, observer=observer)


async def read_json(resp: Any) -> Any:
    """Body of a ``_preload_content=False`` response as JSON."""
    data = await resp.read()
    resp.release()
    return json.loads(data)


def api_status(e: ApiException) -> dict[str, Any]:
    """The Kubernetes ``Status`` body of an API error, or a minimal one."""
    try:
        body = json.loads(e.body) if e.body else {}
        if isinstance(body, dict):
            return body
    except (ValueError, TypeError):
        pass
    return {"code": e.status, "message": str(e.reason)}
