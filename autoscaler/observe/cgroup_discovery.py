"""Find the cgroup directories the agent samples.

Two modes:
  * in-container: the agent runs inside the Ray container and samples its own cgroup, found from
    ``/proc/self/cgroup`` and mapped onto the mounted hierarchies with ``/proc/self/mountinfo``;
  * sidecar: the agent mounts the node's cgroup tree read-only and finds its pod's directory from
    the pod UID, for the kubelet's systemd and cgroupfs drivers and every QoS class, then reports
    the pod and each container scope.

The hierarchy is auto-detected from the tree: pure v2, pure v1, or hybrid (v1 memory + v2 PSI).
Parsers take text; only the ``discover_*`` functions and ``hierarchies`` touch the filesystem.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Hierarchies:
    """Where the hierarchies rva reads are mounted under one cgroup root."""

    v2: Path | None  # cgroup2 mount (PSI; memory too on a pure-v2 node)
    v1_memory: Path | None  # v1 memory controller mount (v1 and hybrid nodes)

    @property
    def version(self) -> str:
        if self.v2 and self.v1_memory:
            return "hybrid"
        return "v2" if self.v2 else "v1"


@dataclass(frozen=True, slots=True)
class Target:
    """One cgroup to sample: its v2 directory and, on v1/hybrid nodes, its v1 memory directory."""

    name: str  # "pod", "container", "self"
    v2_dir: Path | None
    v1_memory_dir: Path | None
    container_id: str = ""
    runtime: str = ""  # "containerd", "crio", "docker" (sidecar mode)


@dataclass(frozen=True, slots=True)
class PodCgroups:
    uid: str
    qos: str  # "guaranteed", "burstable", "besteffort"
    driver: str  # "systemd" or "cgroupfs"
    pod: Target
    containers: tuple[Target, ...]


class DiscoveryError(RuntimeError):
    """The cgroup to sample cannot be found (wrong root, pod UID, or mount)."""


# --------------------------------------------------------------------------------------------------
# Hierarchies
# --------------------------------------------------------------------------------------------------


def hierarchies(root: Path = DEFAULT_ROOT) -> Hierarchies:
    """Detect v2 / v1 / hybrid under ``root`` (``/sys/fs/cgroup`` on nodes; a fixture tree in tests)."""
    if (root / "cgroup.controllers").exists():
        return Hierarchies(v2=root, v1_memory=None)
    v2 = root / "unified" if (root / "unified" / "cgroup.controllers").exists() else None
    v1 = root / "memory" if (root / "memory" / "memory.usage_in_bytes").exists() else None
    if v2 is None and v1 is None:
        raise DiscoveryError(f"no cgroup v2 or v1 memory hierarchy under {root}")
    return Hierarchies(v2=v2, v1_memory=v1)


# --------------------------------------------------------------------------------------------------
# In-container mode
# --------------------------------------------------------------------------------------------------


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` → ``{"": v2 path, "memory": path, "cpu": path, ...}``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def parse_mountinfo(text: str) -> dict[str, str]:
    """Cgroup mounts in ``/proc/self/mountinfo`` → ``{mount point: root within the hierarchy}``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, fstype = left.split(), right.split()[0] if right.split() else ""
        if fstype in ("cgroup", "cgroup2") and len(fields) >= 5:
            out[_unescape(fields[4])] = _unescape(fields[3])
    return out


def _unescape(s: str) -> str:  # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def container_root_of(path: str) -> str:
    """Ray's resource isolation moves processes into ``<root>/ray-node_<id>/...``; the container is ``<root>``."""
    head, sep, _ = path.partition("/ray-node_")
    return (head or "/") if sep else path


def map_own_path(mount_point: Path, mount_root: str, own_path: str) -> Path:
    """Join a process's cgroup path onto the mount that shows the part of the hierarchy at ``mount_root``."""
    own = container_root_of(own_path)
    root = mount_root.rstrip("/")
    if root and (own == root or own.startswith(root + "/")):
        own = own[len(root):]  # a bind mount of our own cgroup (no cgroup namespace)
    elif root and own != "/":
        own = "/"  # a path outside the mount (odd namespace setups): the mount is the best we know
    return mount_point / own.lstrip("/") if own.strip("/") else mount_point


def in_container_target(
    hier: Hierarchies, proc_cgroup: str, mountinfo: str, cgroup_path: str | None = None
) -> Target:
    """The agent's own container cgroup. ``cgroup_path`` overrides the path from ``/proc/self/cgroup``."""
    own = parse_proc_cgroup(proc_cgroup)
    mounts = parse_mountinfo(mountinfo)

    def locate(mount: Path | None, key: str) -> Path | None:
        if mount is None:
            return None
        path = cgroup_path if cgroup_path is not None else own.get(key)
        if path is None:
            return mount
        return map_own_path(mount, mounts.get(str(mount), "/") if cgroup_path is None else "/", path)

    return Target("self", locate(hier.v2, ""), locate(hier.v1_memory, "memory"))


def discover_in_container(root: Path = DEFAULT_ROOT, cgroup_path: str | None = None) -> Target:
    hier = hierarchies(root)
    target = in_container_target(
        hier, Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text(), cgroup_path
    )
    for d in (target.v2_dir, target.v1_memory_dir):
        if d is not None and not d.is_dir():
            raise DiscoveryError(f"own cgroup directory {d} does not exist (is --cgroup-root right?)")
    return target


# --------------------------------------------------------------------------------------------------
# Sidecar mode
# --------------------------------------------------------------------------------------------------

_QOS = ("guaranteed", "burstable", "besteffort")
_CONTAINER = re.compile(r"^(?:(?P<rt>cri-containerd|crio|docker|cri-o)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?$")
_RUNTIME = {"cri-containerd": "containerd", "crio": "crio", "cri-o": "crio", "docker": "docker", None: ""}


def pod_dir_candidates(uid: str) -> list[tuple[str, str, str]]:
    """(relative path, qos, driver) for every layout the kubelet uses for a pod."""
    u_ = uid.replace("-", "_")  # systemd slice names cannot contain '-' (it means nesting)
    out = []
    for qos in _QOS:
        if qos == "guaranteed":  # Guaranteed pods sit directly under kubepods
            out.append((f"kubepods.slice/kubepods-pod{u_}.slice", qos, "systemd"))
            out.append((f"kubepods/pod{uid}", qos, "cgroupfs"))
        else:
            out.append((f"kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u_}.slice", qos, "systemd"))
            out.append((f"kubepods/{qos}/pod{uid}", qos, "cgroupfs"))
    return out


def parse_container_dir(name: str) -> tuple[str, str] | None:
    """``cri-containerd-<id>.scope`` / ``crio-<id>.scope`` / ``<id>`` → (container id, runtime)."""
    m = _CONTAINER.match(name)
    if m is None:
        return None
    return m.group("id"), _RUNTIME[m.group("rt")]


def _find_pod_dir(base: Path, uid: str, max_depth: int = 5) -> tuple[Path, str, str] | None:
    for rel, qos, driver in pod_dir_candidates(uid):
        if (base / rel).is_dir():
            return base / rel, qos, driver
    # A kubelet with its own --cgroup-root nests kubepods deeper: search a few levels, breadth first.
    needles = (f"pod{uid}", f"pod{uid.replace('-', '_')}.slice")
    queue: deque[tuple[Path, int]] = deque([(base, 0)])
    while queue:
        d, depth = queue.popleft()
        try:
            children = sorted(c for c in d.iterdir() if c.is_dir())
        except OSError:
            continue
        for c in children:
            if c.name.endswith(needles):
                qos = next((q for q in _QOS[1:] if q in c.name or q in c.parent.name), "guaranteed")
                return c, qos, "systemd" if c.name.endswith(".slice") else "cgroupfs"
            if depth + 1 < max_depth and ("kubepods" in c.name or depth < 2):
                queue.append((c, depth + 1))
    return None


def list_containers(pod: Target) -> tuple[Target, ...]:
    """Container scopes under a pod directory, sorted by id (listed on every sample: they come and go)."""
    base = pod.v2_dir or pod.v1_memory_dir
    if base is None:
        return ()
    try:
        names = sorted(e.name for e in os.scandir(base) if e.is_dir())
    except OSError:
        return ()
    out = []
    for name in names:
        parsed = parse_container_dir(name)
        if parsed is None:
            continue
        cid, runtime = parsed
        v2 = pod.v2_dir / name if pod.v2_dir else None
        v1 = pod.v1_memory_dir / name if pod.v1_memory_dir else None
        out.append(Target("container", v2, v1 if v1 is None or v1.is_dir() else None, cid, runtime))
    return tuple(out)


def discover_pod(root: Path, uid: str) -> PodCgroups:
    """Find the pod's cgroup under a node cgroup tree mounted at ``root`` (read-only is enough)."""
    if not re.fullmatch(r"[0-9a-fA-F-]{8,64}", uid):
        raise DiscoveryError(f"pod UID {uid!r} does not look like a Kubernetes UID")
    hier = hierarchies(root)
    found: dict[str, tuple[Path, str, str]] = {}
    for key, base in (("v2", hier.v2), ("v1", hier.v1_memory)):
        if base is not None and (hit := _find_pod_dir(base, uid)) is not None:
            found[key] = hit
    if not found:
        raise DiscoveryError(f"no cgroup for pod {uid} under {root} (checked systemd and cgroupfs layouts)")
    any_hit = found.get("v2") or found["v1"]
    pod = Target("pod", found["v2"][0] if "v2" in found else None, found["v1"][0] if "v1" in found else None)
    return PodCgroups(uid=uid, qos=any_hit[1], driver=any_hit[2], pod=pod, containers=list_containers(pod))

