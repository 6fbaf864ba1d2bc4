"""The agent's sampling state: which cgroups to read, the last round, identity, OOM count, history."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.observe import cgroup_discovery as disc
from autoscaler.observe.cgroup import CgroupSample, RateLimitedWarner, find_ray_subtrees, read_cgroup

DEFAULT_PORT = 9464
DEFAULT_TRIGGER = "some 150000 2000000"  # 150 ms of stall in a 2 s window (2 s: unprivileged minimum)
JSON_VERSION = 1


@dataclass(frozen=True, slots=True)
class AgentConfig:
    mode: str = "in-container"  # or "sidecar"
    cgroup_root: Path = disc.DEFAULT_ROOT
    cgroup_path: str | None = None  # in-container: override the path read from /proc/self/cgroup
    pod_uid: str = ""
    pod_name: str = ""
    pod_namespace: str = ""
    interval_s: float = 1.0
    psi_trigger: str | None = DEFAULT_TRIGGER
    history: int = 120  # primary samples kept for /v1/pressure
    rediscover_s: float = 10.0  # Ray's isolation tree and container scopes appear after the agent starts


@dataclass(frozen=True, slots=True)
class Reading:
    """One cgroup of one sampling round."""

    scope: str  # "self", "pod", "container", "ray"
    name: str  # container id or Ray subtree ("ray-node_<id>/user/workers"); "" for self/pod
    sample: CgroupSample


@dataclass(frozen=True, slots=True)
class Round:
    """Everything one sampling round read; ``primary`` is the container (in-container) or the pod (sidecar)."""

    sampled_at: float
    reason: str  # "interval" or "trigger"
    primary: Reading
    others: tuple[Reading, ...]
    identity: str
    identity_since: float
    identity_peak_bytes: int
    duration_s: float

    def readings(self) -> Iterator[Reading]:
        yield self.primary
        yield from self.others


def identity_of(primary: CgroupSample, container_ids: tuple[str, ...]) -> str:
    """Changes when the container restarts (new cgroup inode / container id) or its limit changes."""
    key = f"{primary.memory_path}|{primary.inode}|{','.join(container_ids)}|{primary.limit_bytes}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Sampler:
    """Discovers the cgroups, reads them, and keeps the state the endpoints serve."""

    def __init__(
        self, config: AgentConfig, clock: Callable[[], float] = time.time, warner: RateLimitedWarner | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.warner = warner or RateLimitedWarner()
        self.instance = uuid.uuid4().hex[:16]  # lets the controller tell a restarted agent (fresh counters)
        self.latest: Round | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=config.history)
        self.samples_total = {"interval": 0, "trigger": 0}
        self.read_errors_total = 0
        self.oom_kills_total = 0  # primary oom_kill increases seen by this agent, across cgroup re-creations
        self.discovery_error = ""
        self.qos = ""
        self.driver = ""
        self._primary: disc.Target | None = None
        self._ray: dict[str, Path] = {}
        self._discovered_at = -math.inf
        self._oom_seen: tuple[int, int] | None = None  # (memory cgroup inode, oom_kill counter)
        self._identity: tuple[str, float, int] | None = None  # (identity, since, peak usage)

    @property
    def primary_target(self) -> disc.Target | None:
        return self._primary

    def discover(self) -> None:
        cfg = self.config
        if cfg.mode == "sidecar":
            pod = disc.discover_pod(cfg.cgroup_root, cfg.pod_uid)
            self._primary, self.qos, self.driver = pod.pod, pod.qos, pod.driver
        else:
            self._primary = disc.discover_in_container(cfg.cgroup_root, cfg.cgroup_path)
        base = self._primary.v2_dir
        self._ray = find_ray_subtrees(base, depth=1 if cfg.mode == "sidecar" else 0) if base else {}
        self._discovered_at = time.monotonic()
        self.discovery_error = ""

    def sample(self, reason: str = "interval") -> Round | None:
        started = time.monotonic()
        if self._primary is None or started - self._discovered_at > self.config.rediscover_s:
            try:
                self.discover()
            except (disc.DiscoveryError, OSError) as e:
                self.discovery_error = str(e)
                self.warner.warn("discovery", f"cgroup discovery failed: {e}")
                if self._primary is None:
                    return None
        assert self._primary is not None
        primary = self._read(self._primary)
        containers: tuple[disc.Target, ...] = ()
        if self.config.mode == "sidecar":
            containers = disc.list_containers(self._primary)
        others = [Reading("container", t.container_id, self._read(t)) for t in containers]
        others += [Reading("ray", name, read_cgroup(p, None, warner=self.warner, clock=self.clock))
                   for name, p in self._ray.items()]
        self._count_ooms(primary)  # before the round is recorded, so its history row includes them
        ids = tuple(t.container_id for t in containers)
        identity, since, peak = self._track_identity(primary, ids)
        round_ = Round(
            sampled_at=primary.sampled_at, reason=reason, primary=Reading(self._primary.name, "", primary),
            others=tuple(others), identity=identity, identity_since=since, identity_peak_bytes=peak,
            duration_s=time.monotonic() - started,
        )
        self.read_errors_total += sum(len(r.sample.errors) for r in round_.readings())
        self.samples_total[reason] = self.samples_total.get(reason, 0) + 1
        self.latest = round_
        self.history.append(_history_record(round_, self.oom_kills_total))
        return round_

    def _read(self, t: disc.Target) -> CgroupSample:
        return read_cgroup(t.v2_dir, t.v1_memory_dir, warner=self.warner, clock=self.clock)

    def _count_ooms(self, s: CgroupSample) -> None:
        if s.events is None:
            return
        now = (s.inode, s.events.oom_kill)
        if self._oom_seen is not None:
            inode, seen = self._oom_seen
            if inode == s.inode:
                self.oom_kills_total += max(0, s.events.oom_kill - seen)
            else:  # a re-created cgroup starts counting from zero
                self.oom_kills_total += s.events.oom_kill
        self._oom_seen = now

    def _track_identity(self, s: CgroupSample, ids: tuple[str, ...]) -> tuple[str, float, int]:
        identity = identity_of(s, ids)
        usage = s.usage_bytes or 0
        if self._identity is None or self._identity[0] != identity:
            self._identity = (identity, s.sampled_at, usage)
        else:
            self._identity = (identity, self._identity[1], max(self._identity[2], usage))
        return self._identity



def _history_record(r: Round, oom_kills_total: int) -> dict[str, Any]:
    """One compact primary sample: what the controller's detector needs, at the agent's 1 s resolution."""
    s = r.primary.sample
    some = s.memory_psi.some if s.memory_psi else None
    full = s.memory_psi.full if s.memory_psi else None
    return {
        "sampled_at": s.sampled_at,
        "reason": r.reason,
        "identity": r.identity,
        "psi_some_avg10": some.avg10 if some else None,
        "psi_full_avg10": full.avg10 if full else None,
        "psi_some_total_us": some.total_us if some else None,
        "psi_full_total_us": full.total_us if full else None,
        "usage_bytes": s.usage_bytes,
        "working_set_bytes": s.working_set_bytes,
        "limit_bytes": s.limit_bytes,
        "peak_usage_bytes": r.identity_peak_bytes,
        "oom_kill": s.events.oom_kill if s.events else None,
        "oom_kills_total": oom_kills_total,
    }
