"""Simulated pods' cgroup v2 files, laid out as a kubelet with the systemd driver does.

A real ``rva agent --mode sidecar --cgroup-root <root> --pod-uid <uid>`` reads these exactly as it
reads a node's ``/sys/fs/cgroup``: ``memory.current``, ``memory.max``, ``memory.pressure`` (PSI, with
a ``total`` that grows at the stall rate), ``memory.events`` (``oom_kill``), ``memory.stat``. The
kernel is the only simulated part; the agent, its HTTP API and the daemon's scraper are real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class _PodFiles:
    path: Path
    psi_total_us: float = 0.0
    last_write: float = 0.0
    peak: int = 0


def pod_slice(uid: str, qos: str) -> str:
    """The pod's cgroup path under the root (Guaranteed pods sit directly under kubepods)."""
    u_ = uid.replace("-", "_")
    if qos.lower() == "guaranteed":
        return f"kubepods.slice/kubepods-pod{u_}.slice"
    q = qos.lower()
    return f"kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{u_}.slice"


class SimCgroupFs:
    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "cgroup.controllers").write_text("cpu io memory pids\n")
        (self.root / "memory.pressure").write_text(_psi(0.0, 0.0, 0))
        self._clock = clock
        self._pods: dict[str, _PodFiles] = {}

    def write(
        self, uid: str, qos: str, *, usage: int, limit: int | None, psi_some: float = 0.0, oom_kills: int = 0,
        inactive_file: int = 0,
    ) -> Path:
        """(Re)write one pod's files. ``psi_some`` is the stall percent since the previous write."""
        now = self._clock()
        pf = self._pods.get(uid)
        if pf is None:
            pf = _PodFiles(self.root / pod_slice(uid, qos), last_write=now)
            pf.path.mkdir(parents=True, exist_ok=True)
            self._pods[uid] = pf
        pf.psi_total_us += max(0.0, now - pf.last_write) * 1e6 * psi_some / 100
        pf.last_write = now
        pf.peak = max(pf.peak, usage)
        files = {
            "cgroup.type": "domain\n",
            "cgroup.controllers": "cpu io memory pids\n",
            "memory.current": f"{usage}\n",
            "memory.max": f"{limit if limit else 'max'}\n",
            "memory.high": "max\n",
            "memory.peak": f"{pf.peak}\n",
            "memory.pressure": _psi(psi_some, psi_some / 2, int(pf.psi_total_us)),
            "memory.events": f"low 0\nhigh 0\nmax 0\noom {oom_kills}\noom_kill {oom_kills}\noom_group_kill 0\n",
            "memory.stat": f"anon {max(0, usage - inactive_file)}\nfile {inactive_file}\n"
                           f"inactive_file {inactive_file}\nactive_file 0\nshmem 0\n"
                           # a cgroup v2 kernel (>= 5.9) always lists these counters, zero or not
                           "pgfault 0\npgmajfault 0\nworkingset_refault_anon 0\nworkingset_refault_file 0\n",
            "cpu.pressure": _psi(0.0, 0.0, 0),
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        }
        for name, text in files.items():
            (pf.path / name).write_text(text)
        return pf.path


def _psi(some: float, full: float, total: int) -> str:
    return (f"some avg10={some:.2f} avg60={some:.2f} avg300={some:.2f} total={total}\n"
            f"full avg10={full:.2f} avg60={full:.2f} avg300={full:.2f} total={total // 2}\n")
