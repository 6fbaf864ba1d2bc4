"""Watch caches (informers) over the Kubernetes API: list once, then watch from the list's resourceVersion.

* Resumes a dropped watch from the last resourceVersion it saw (bookmarks included).
* ``410 Gone`` (history expired) → relist, diff against the cache, notify the changes.
* Errors back off with jitter; the cache keeps serving its last state meanwhile.
* Objects are plain dicts; an optional ``transform`` trims what is kept (e.g. other tenants' pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.kubeclient import read_json

log = logging.getLogger(__name__)

Key = tuple[str | None, str]
ListCall = Callable[..., Awaitable[Any]]
ChangeHandler = Callable[[str, dict[str, Any]], None]  # (ADDED|MODIFIED|DELETED, object)


def key_of(obj: dict[str, Any]) -> Key:
    md = obj.get("metadata", {})
    return md.get("namespace"), md["name"]


class Informer:
    """One resource's watch cache. ``run()`` forever; ``synced`` is set after the first list."""

    def __init__(
        self,
        kind: str,
        list_call: ListCall,
        *,
        on_change: ChangeHandler | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        watch_timeout_s: int = 290,
        max_backoff_s: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.kind = kind
        self._list_call = list_call
        self._on_change = on_change
        self._transform = transform or (lambda o: o)
        self._watch_timeout_s = watch_timeout_s
        self._max_backoff_s = max_backoff_s
        self._rng = random.Random(seed)
        self.items: dict[Key, dict[str, Any]] = {}
        self.resource_version: str | None = None
        self.synced = asyncio.Event()
        self.lists = 0  # how many LISTs were sent (one after start; more only after 410 / errors)
        self.watches = 0
        self.events = 0

    # ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._relist()
                await self._watch_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status == 410:
                    log.info("%s watch expired (410 Gone); relisting", self.kind)
                    self.resource_version = None
                    continue
                failures += 1
                await self._backoff(failures, f"HTTP {e.status}: {e.reason}")
            except Exception as e:  # connection drops, malformed streams: keep the cache, retry
                failures += 1
                await self._backoff(failures, f"{type(e).__name__}: {e}")

    async def _backoff(self, failures: int, why: str) -> None:
        delay = self._rng.uniform(0, min(self._max_backoff_s, 0.2 * 2**failures))
        log.warning("%s watch failed (%s); retrying in %.2fs", self.kind, why, delay)
        await asyncio.sleep(delay)

    async def _relist(self) -> None:
        resp = await self._list_call(_preload_content=False)
        body = await read_json(resp)
        self.lists += 1
        fresh = {key_of(o): self._transform(o) for o in body.get("items", [])}
        old = self.items
        self.items = fresh
        self.resource_version = body.get("metadata", {}).get("resourceVersion")
        for k, obj in fresh.items():
            prev = old.get(k)
            if prev is None:
                self._notify("ADDED", obj)
            elif _rv(prev) != _rv(obj):
                self._notify("MODIFIED", obj)
        for k, obj in old.items():
            if k not in fresh:
                self._notify("DELETED", obj)
        self.synced.set()

    async def _watch_once(self) -> None:
        self.watches += 1
        resp = await self._list_call(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout_s,
            _preload_content=False,
        )
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return  # server closed the watch (timeoutSeconds): resume from resource_version
                self._apply(json.loads(line))
        finally:
            resp.release()

    def _apply(self, event: dict[str, Any]) -> None:
        etype = event.get("type")
        obj = event.get("object") or {}
        if etype == "ERROR":
            code = obj.get("code", 500)
            raise ApiException(status=code, reason=f"{obj.get('reason')}: {obj.get('message')}")
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if etype == "BOOKMARK":
            return
        self.events += 1
        k = key_of(obj)
        if etype == "DELETED":
            gone = self.items.pop(k, None)
            self._notify("DELETED", gone or self._transform(obj))
        else:
            obj = self._transform(obj)
            self.items[k] = obj
            self._notify(etype or "MODIFIED", obj)

    def _notify(self, etype: str, obj: dict[str, Any]) -> None:
        if self._on_change is not None:
            try:
                self._on_change(etype, obj)
            except Exception:  # a handler bug must not kill the watch
                log.exception("%s change handler failed", self.kind)

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.items.get((namespace, name))

    def put(self, obj: dict[str, Any]) -> None:
        """Write-through after rva's own successful write, so the next plan sees it at once."""
        k = key_of(obj)
        current = self.items.get(k)
        if current is None or _newer_or_equal(_rv(obj), _rv(current)):
            self.items[k] = self._transform(obj)


def _rv(obj: dict[str, Any]) -> str | None:
    rv: str | None = obj.get("metadata", {}).get("resourceVersion")
    return rv


def _newer_or_equal(a: str | None, b: str | None) -> bool:
    # resourceVersions are opaque; etcd's (and the simulator's) are integers, so compare those.
    try:
        return int(a or 0) >= int(b or 0)
    except ValueError:
        return True


async def run_all(informers: list[Informer]) -> None:
    """Run informers together until cancelled."""
    tasks = [asyncio.create_task(i.run(), name=f"informer-{i.kind}") for i in informers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
