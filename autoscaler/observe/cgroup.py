"""Read one cgroup's memory and CPU signals: PSI, usage, limits, events, stat, throttling.

Pure parsers (``parse_*``) take file text and return plain data; ``read_cgroup`` does the I/O.
A sample may combine a cgroup v2 directory (PSI, and memory when v2 has the memory controller) with
a cgroup v1 memory directory (hybrid nodes: v1 memory + v2 PSI). Missing or malformed files never
raise: the sample is partial, ``errors`` says what is missing, and a rate-limited warning is logged.

Must not import Ray (import-linter contract): the agent imports this module.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: v1 reports "no limit" as LONG_MAX rounded down to a page; anything this large is unlimited.
V1_UNLIMITED = 1 << 62

#: memory.stat keys that are byte amounts (the rest are event counters).
STAT_BYTES = (
    "anon", "file", "shmem", "kernel", "kernel_stack", "slab", "sock", "file_mapped", "file_dirty",
    "file_writeback", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
)
#: memory.stat keys that are event counters.
STAT_COUNTERS = ("pgfault", "pgmajfault", "workingset_refault_anon", "workingset_refault_file")
#: v1 memory.stat name → v2 name (v1 ``total_*`` are hierarchical, like every v2 value).
_V1_STAT = {
    "total_rss": "anon", "total_cache": "file", "total_shmem": "shmem", "total_mapped_file": "file_mapped",
    "total_dirty": "file_dirty", "total_writeback": "file_writeback", "total_inactive_anon": "inactive_anon",
    "total_active_anon": "active_anon", "total_inactive_file": "inactive_file",
    "total_active_file": "active_file", "total_unevictable": "unevictable", "total_pgfault": "pgfault",
    "total_pgmajfault": "pgmajfault", "total_workingset_refault_anon": "workingset_refault_anon",
    "total_workingset_refault_file": "workingset_refault_file",
}


class CgroupParseError(ValueError):
    """A cgroup file's text is not in the kernel's format."""


# --------------------------------------------------------------------------------------------------
# Plain data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PsiLine:
    """One line of a PSI file: averages in percent (0..100), total stall time in microseconds."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True, slots=True)
class Psi:
    some: PsiLine | None
    full: PsiLine | None  # cpu.pressure has no "full" line before Linux 5.13


@dataclass(frozen=True, slots=True)
class MemoryEvents:
    """``memory.events`` (v2) or the v1 equivalents we can get (``failcnt``→max, ``oom_kill``)."""

    low: int = 0
    high: int = 0
    max: int = 0
    oom: int = 0
    oom_kill: int = 0
    oom_group_kill: int = 0


@dataclass(frozen=True, slots=True)
class CpuStat:
    usage_usec: int | None
    nr_periods: int | None
    nr_throttled: int | None
    throttled_usec: int | None


@dataclass(frozen=True, slots=True)
class CgroupSample:
    """What one read of a cgroup found. ``None`` means the value was not available."""

    path: str  # the v2 directory ("" when there is none)
    memory_path: str  # where memory came from: the v2 directory or the v1 memory directory
    version: str  # "v2", "v1" or "hybrid"
    sampled_at: float  # wall clock, seconds since the epoch
    memory_psi: Psi | None = None
    cpu_psi: Psi | None = None
    io_psi: Psi | None = None
    usage_bytes: int | None = None
    limit_bytes: int | None = None  # None: unlimited or unknown
    high_bytes: int | None = None
    peak_bytes: int | None = None
    events: MemoryEvents | None = None
    stat: Mapping[str, int] = field(default_factory=dict)  # v2 names, see STAT_BYTES / STAT_COUNTERS
    cpu: CpuStat | None = None
    inode: int = 0  # of the memory cgroup directory: a recreated cgroup gets a new one
    errors: tuple[str, ...] = ()

    @property
    def working_set_bytes(self) -> int | None:
        """usage − inactive file pages, as the kubelet computes it (page cache it can drop is not needed)."""
        if self.usage_bytes is None:
            return None
        return max(0, self.usage_bytes - self.stat.get("inactive_file", 0))


# --------------------------------------------------------------------------------------------------
# Pure parsers
# --------------------------------------------------------------------------------------------------


def parse_psi(text: str) -> Psi:
    """``some avg10=0.12 avg60=0.05 avg300=0.00 total=123`` (+ an optional ``full`` line)."""
    lines: dict[str, PsiLine] = {}
    for raw in text.splitlines():
        parts = raw.split()
        if not parts:
            continue
        kind = parts[0]
        if kind not in ("some", "full"):
            raise CgroupParseError(f"unknown PSI line {raw!r}")
        try:
            kv = dict(p.split("=", 1) for p in parts[1:])
            lines[kind] = PsiLine(float(kv["avg10"]), float(kv["avg60"]), float(kv["avg300"]), int(kv["total"]))
        except (KeyError, ValueError) as e:
            raise CgroupParseError(f"malformed PSI line {raw!r}") from e
    if "some" not in lines:
        raise CgroupParseError("PSI file has no 'some' line")
    return Psi(lines["some"], lines.get("full"))


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError as e:
        raise CgroupParseError(f"not an integer: {text.strip()[:40]!r}") from e


def parse_limit(text: str) -> int | None:
    """v2 ``max`` or a v1 near-LONG_MAX value mean unlimited (None)."""
    if text.strip() == "max":
        return None
    value = parse_int(text)
    return None if value >= V1_UNLIMITED else value


def parse_keyed(text: str) -> dict[str, int]:
    """Flat keyed files: ``memory.events``, ``memory.stat``, ``cpu.stat``, v1 ``memory.oom_control``."""
    out: dict[str, int] = {}
    for raw in text.splitlines():
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise CgroupParseError(f"malformed line {raw!r}")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError as e:
            raise CgroupParseError(f"malformed line {raw!r}") from e
    return out


def parse_memory_events(text: str) -> MemoryEvents:
    kv = parse_keyed(text)
    return MemoryEvents(
        low=kv.get("low", 0), high=kv.get("high", 0), max=kv.get("max", 0), oom=kv.get("oom", 0),
        oom_kill=kv.get("oom_kill", 0), oom_group_kill=kv.get("oom_group_kill", 0),
    )


def v1_events(oom_control: Mapping[str, int], failcnt: int | None) -> MemoryEvents:
    """v1 has no memory.events: ``failcnt`` counts limit hits (v2 ``max``), oom_control has ``oom_kill``."""
    return MemoryEvents(max=failcnt or 0, oom_kill=oom_control.get("oom_kill", 0))


def normalise_stat(stat: Mapping[str, int], v1: bool) -> dict[str, int]:
    """Keep the keys rva uses, under v2 names."""
    if v1:
        return {v2: stat[k] for k, v2 in _V1_STAT.items() if k in stat}
    wanted = set(STAT_BYTES) | set(STAT_COUNTERS)
    return {k: v for k, v in stat.items() if k in wanted}


def parse_cpu_stat(text: str) -> CpuStat:
    kv = parse_keyed(text)
    return CpuStat(kv.get("usage_usec"), kv.get("nr_periods"), kv.get("nr_throttled"), kv.get("throttled_usec"))


# --------------------------------------------------------------------------------------------------
# File reading
# --------------------------------------------------------------------------------------------------


class RateLimitedWarner:
    """Logs each (cgroup, problem) at most once per ``interval_s``: a broken file is read every second."""

    def __init__(
        self, logger: logging.Logger = log, interval_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self._interval = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}

    def warn(self, key: str, message: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        self._log.warning("%s", message)
        return True


_DEFAULT_WARNER = RateLimitedWarner()


def _read(path: str) -> str:
    with open(path, "rb", buffering=0) as f:
        return f.read(65536).decode("ascii", "replace")


class _Collector:
    """Reads files of one sample, turning every failure into an error note and a warning."""

    def __init__(self, warner: RateLimitedWarner) -> None:
        self.errors: list[str] = []
        self._warner = warner

    def get(self, directory: str, name: str, parse: Callable[[str], _T]) -> _T | None:
        path = os.path.join(directory, name)
        try:
            return parse(_read(path))
        except FileNotFoundError:
            problem = "missing"
        except CgroupParseError as e:
            problem = f"malformed ({e})"
        except OSError as e:  # EACCES, EOPNOTSUPP (PSI disabled), ENODEV (cgroup removed mid-read)
            problem = f"unreadable ({e.strerror or e})"
        self.errors.append(f"{name}: {problem}")
        self._warner.warn(f"{path}:{problem}", f"cgroup file {path} is {problem}; the sample is partial")
        return None


def _inode(directory: str) -> int:
    try:
        return os.stat(directory).st_ino
    except OSError:
        return 0


def read_cgroup(
    v2_dir: str | os.PathLike[str] | None,
    v1_memory_dir: str | os.PathLike[str] | None = None,
    *,
    warner: RateLimitedWarner | None = None,
    clock: Callable[[], float] = time.time,
) -> CgroupSample:
    """Sample one cgroup. Memory comes from ``v1_memory_dir`` when given (hybrid/v1), else from ``v2_dir``."""
    c = _Collector(warner or _DEFAULT_WARNER)
    v2 = os.fspath(v2_dir) if v2_dir is not None else ""
    v1 = os.fspath(v1_memory_dir) if v1_memory_dir is not None else ""
    sampled_at = clock()
    kw: dict[str, object] = {}
    if v2:
        kw["memory_psi"] = c.get(v2, "memory.pressure", parse_psi)
        kw["cpu_psi"] = c.get(v2, "cpu.pressure", parse_psi)
        kw["cpu"] = c.get(v2, "cpu.stat", parse_cpu_stat)
    if v1:
        usage = c.get(v1, "memory.usage_in_bytes", parse_int)
        failcnt = c.get(v1, "memory.failcnt", parse_int)
        oom = c.get(v1, "memory.oom_control", parse_keyed)
        stat = c.get(v1, "memory.stat", parse_keyed)
        kw.update(
            usage_bytes=usage,
            limit_bytes=c.get(v1, "memory.limit_in_bytes", parse_limit),
            peak_bytes=c.get(v1, "memory.max_usage_in_bytes", parse_int),
            events=v1_events(oom, failcnt) if oom is not None else None,
            stat=normalise_stat(stat or {}, v1=True),
        )
        # v1 has no memory.high (soft_limit_in_bytes is not a throttle), so high_bytes stays None.
    elif v2 and os.path.exists(os.path.join(v2, "cgroup.type")):
        # (The root cgroup, without cgroup.type, has no memory.max/high/events: not an error.)
        kw.update(
            usage_bytes=c.get(v2, "memory.current", parse_int),
            limit_bytes=c.get(v2, "memory.max", parse_limit),
            high_bytes=c.get(v2, "memory.high", parse_limit),
            events=c.get(v2, "memory.events", parse_memory_events),
            stat=normalise_stat(c.get(v2, "memory.stat", parse_keyed) or {}, v1=False),
        )
        if os.path.exists(os.path.join(v2, "memory.peak")):  # Linux ≥ 5.19
            kw["peak_bytes"] = c.get(v2, "memory.peak", parse_int)
    version = "hybrid" if v1 and v2 else ("v1" if v1 else "v2")
    return CgroupSample(
        path=v2, memory_path=v1 or v2, version=version, sampled_at=sampled_at,
        inode=_inode(v1 or v2), errors=tuple(c.errors), **kw,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------------
# Ray resource-isolation subtrees
# --------------------------------------------------------------------------------------------------

#: Ray's cgroups under ``ray-node_<id>/`` that are worth watching (ray-gcs-demand-and-resize.md §5).
RAY_SUBTREES = ("system", "user", "user/workers", "user/non-ray")


def find_ray_subtrees(base: str | os.PathLike[str], depth: int = 1) -> dict[str, Path]:
    """``{"ray-node_<id>/user/workers": path, ...}`` for Ray isolation trees at or below ``base``.

    Ray creates ``ray-node_<id>`` directly under its ``--cgroup-path``: the container's cgroup root
    in-container, or one of the container scopes when looking from a pod directory (``depth=1``).
    """
    out: dict[str, Path] = {}
    for node in _ray_nodes(Path(base), depth):
        for sub in RAY_SUBTREES:
            p = node / sub
            if p.is_dir():
                out[f"{node.name}/{sub}"] = p
    return out


def _ray_nodes(base: Path, depth: int) -> Iterator[Path]:
    try:
        children = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return
    for child in children:
        if child.name.startswith("ray-node_"):
            yield child
        elif depth > 0:
            yield from _ray_nodes(child, depth - 1)
