"""Writing core/v1 Events and RFC 3339 timestamps for the simulated controllers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from autoscaler.sim.clock import Clock


class Store(Protocol):
    """The slice of ``autoscaler.sim.store.ObjectStore`` the simulated components use. Objects read with
    ``copy=False`` are the stored ones: never mutate them."""

    def get(self, resource: str, namespace: str | None, name: str, *, copy: bool = True) -> dict[str, Any]: ...

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        copy: bool = True,
    ) -> tuple[list[dict[str, Any]], str]: ...

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]: ...

    def update(self, resource: str, obj: dict[str, Any], subresource: str | None = None) -> dict[str, Any]: ...

    def delete(
        self, resource: str, namespace: str | None, name: str, *, grace_period_seconds: int | None = None
    ) -> Any: ...

    def add_listener(self, fn: Any) -> Any: ...


# One counter for every recorder: two components may report on the same object at the same instant.
_SEQ = itertools.count(1)


def rfc3339(t: float) -> str:
    return _rfc3339_second(int(t))


@lru_cache(maxsize=4096)
def _rfc3339_second(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class EventRecorder:
    """Creates Events the way client-go's recorder does (no aggregation: one object per call)."""

    def __init__(self, store: Store, clock: Clock, component: str, host: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.component = component
        self.host = host
        self.enabled = True

    def record(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        host: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        meta = obj.get("metadata") or {}
        now = rfc3339(self.clock.now())
        # Real names are <object>.<hex unix-nanos>; a process-wide counter keeps them unique.
        name = f"{meta.get('name')}.{int(self.clock.now() * 1e9):x}{next(_SEQ):04x}"
        source: dict[str, str] = {"component": self.component}
        if host or self.host:
            source["host"] = host or self.host or ""
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta.get("namespace") or "default"},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Pod"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": source,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": self.component,
            "reportingInstance": host or self.host or "",
        }
        self.store.create("events", event)
