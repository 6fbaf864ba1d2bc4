"""Lease leader election (``coordination.k8s.io/v1``), client-go's algorithm in a few lines.

Only the leader acts. ``may_act()`` is the fence every writer checks: it is true only while the
lease we last renewed is still valid by our own clock (minus a safety margin), so a leader that
cannot renew stops writing before anyone else can take the lease. Release on shutdown lets a
standby take over at once instead of waiting a lease period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.kubeclient import read_json

log = logging.getLogger(__name__)


class LeaseApi(Protocol):
    async def read_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> Any: ...
    async def create_namespaced_lease(self, namespace: str, body: Any, **kw: Any) -> Any: ...
    async def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kw: Any) -> Any: ...


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "rva-leader"
    namespace: str = "default"
    identity: str = "rva"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


def _micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(ts: str | None) -> float:
    if not ts:
        return 0.0
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class LeaderElector:
    def __init__(
        self,
        api: LeaseApi,
        settings: LeaseSettings,
        *,
        now: Callable[[], float] = time.time,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.api = api
        self.s = settings
        self._now = now
        self._on_change = on_change
        self._valid_until = 0.0  # local time until which our lease is certainly ours
        self._leading = False
        self.became_leader = asyncio.Event()

    def may_act(self) -> bool:
        return self._leading and self._now() < self._valid_until

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            log.info("leadership %s (%s)", "acquired" if leading else "lost", self.s.identity)
            if leading:
                self.became_leader.set()
            else:
                self.became_leader.clear()
            if self._on_change is not None:
                self._on_change(leading)

    async def try_acquire_or_renew(self) -> bool:
        now = self._now()
        spec_new = {
            "holderIdentity": self.s.identity,
            "leaseDurationSeconds": int(self.s.lease_duration_s),
            "renewTime": _micro_time(now),
        }
        try:
            current = await read_json(
                await self.api.read_namespaced_lease(self.s.name, self.s.namespace, _preload_content=False)
            )
        except ApiException as e:
            if e.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.s.name, "namespace": self.s.namespace},
                "spec": {**spec_new, "acquireTime": _micro_time(now), "leaseTransitions": 0},
            }
            try:
                await self.api.create_namespaced_lease(self.s.namespace, body, _preload_content=False)
            except ApiException as ce:
                if ce.status == 409:  # someone else created it first
                    return False
                raise
            self._valid_until = now + self.s.lease_duration_s - self.s.retry_period_s
            return True
        spec = current.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        expires = _parse(spec.get("renewTime")) + float(spec.get("leaseDurationSeconds") or self.s.lease_duration_s)
        if holder and holder != self.s.identity and expires > now:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.s.identity:
            spec_new["acquireTime"] = _micro_time(now)
            transitions += 1
        else:
            spec_new["acquireTime"] = spec.get("acquireTime") or _micro_time(now)
        current["spec"] = {**spec, **spec_new, "leaseTransitions": transitions}
        try:
            # PUT with the resourceVersion we read: a concurrent writer makes this a 409, not a split brain.
            await self.api.replace_namespaced_lease(self.s.name, self.s.namespace, current, _preload_content=False)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        self._valid_until = now + self.s.lease_duration_s - self.s.retry_period_s
        return True

    async def run(self) -> None:
        """Acquire, then renew every retry period; give up leadership when renewals fail too long."""
        last_ok = 0.0
        while True:
            try:
                ok = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self.s.renew_deadline_s)
            except (ApiException, TimeoutError) as e:
                log.warning("lease %s/%s: %s", self.s.namespace, self.s.name, e)
                ok = False
            now = self._now()
            if ok:
                last_ok = now
                self._set_leading(True)
            elif not self._leading or now - last_ok > self.s.renew_deadline_s:
                self._set_leading(False)
            await asyncio.sleep(self.s.retry_period_s)

    async def release(self) -> None:
        """Hand the lease back (holder cleared, 1 s duration) so a standby takes over at once."""
        was_leading = self._leading
        self._set_leading(False)
        self._valid_until = 0.0
        if not was_leading:
            return
        try:
            current = await read_json(
                await self.api.read_namespaced_lease(self.s.name, self.s.namespace, _preload_content=False)
            )
            spec = current.get("spec") or {}
            if spec.get("holderIdentity") != self.s.identity:
                return
            current["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                               "renewTime": _micro_time(self._now())}
            await self.api.replace_namespaced_lease(self.s.name, self.s.namespace, current, _preload_content=False)
        except ApiException as e:
            log.warning("could not release lease: HTTP %s", e.status)
