"""The daemon's pressure source: scrape a RayCluster's agents, run the detector, return ``Pressure`` per pod.

This is the one place that maps the policy onto the detector's plain ``Thresholds`` (the detector
itself stays policy-free) and the Kubernetes pod onto the detector's ``PodContext``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from autoscaler.model import Pressure, ResizeState
from autoscaler.observe.k8s_state import pod_state
from autoscaler.observe.pressure import (
    AgentScraper,
    Detection,
    PodContext,
    PodPressureState,
    Thresholds,
    agent_endpoint,
    detect_all,
    pressures,
)
from autoscaler.policy import GroupPolicy, Policy

Obj = dict[str, Any]


def thresholds_for(gp: GroupPolicy) -> Thresholds:
    mp = gp.memory_pressure
    return Thresholds(
        psi_some_avg10=mp.psi_some_avg10,
        usage_ratio=mp.usage_ratio,
        psi_some_release=mp.psi_some_avg10 / 2,  # hysteresis band: half the PSI level,
        usage_ratio_release=max(0.0, mp.usage_ratio - 0.1),  # 10 points under the usage ratio
        consecutive_windows=mp.consecutive_windows,
        startup_grace_s=mp.startup_grace,
        cooldown_s=gp.vertical.cooldown,
    )


def context_for(pod: Obj) -> PodContext:
    ps = pod_state(pod)
    in_flight = ps.in_flight is not None or ps.resize_state is ResizeState.IN_PROGRESS
    return PodContext(started_at=ps.started_at, last_resized_at=ps.last_resized_at, resize_in_flight=in_flight)


class AgentPressureSource:
    """One per managed RayCluster; keeps the detector state of its pods between polls."""

    def __init__(self, *, concurrency: int = 32, timeout_s: float = 2.0, clock: Callable[[], float] = time.time):
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._scraper: AgentScraper | None = None
        self._states: dict[str, PodPressureState] = {}
        self.last_detections: dict[str, Detection] = {}  # for metrics and `rva explain`

    async def sample(self, pods: list[Obj], policy: Policy, now: float) -> Mapping[str, Pressure]:
        if self._scraper is None:
            self._session = aiohttp.ClientSession()
            self._scraper = AgentScraper(self._session, concurrency=self._concurrency, timeout_s=self._timeout_s,
                                         clock=self._clock)
        endpoints = []
        contexts: dict[str, PodContext] = {}
        groups: dict[str, str] = {}
        for pod in pods:
            ep = agent_endpoint(pod)
            if ep is None:
                continue
            endpoints.append(ep)
            contexts[ep.pod] = context_for(pod)
            groups[ep.pod] = ((pod.get("metadata") or {}).get("labels") or {}).get("ray.io/group", "")
        results = await self._scraper.scrape(endpoints)
        samples = {name: r.for_detector() for name, r in results.items()}
        new_states: dict[str, PodPressureState] = {}
        detections: dict[str, Detection] = {}
        by_group: dict[str, list[str]] = {}
        for name, group in groups.items():
            by_group.setdefault(group, []).append(name)
        for group, names in by_group.items():  # thresholds are per worker group
            st, det = detect_all(self._states, samples, {n: contexts[n] for n in names},
                                 thresholds_for(policy.resolve(group)), now)
            new_states.update(st)
            detections.update(det)
        self._states, self.last_detections = new_states, detections
        return pressures(detections)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self._scraper = None, None


def agent_pressure_source(namespace: str, cluster: str) -> AgentPressureSource:
    """The daemon's ``pressure_factory``: one source per RayCluster."""
    return AgentPressureSource()
