"""Fixture cgroup trees shaped like the kernel's files (v2, v1 memory, hybrid), for the agent's tests."""

from __future__ import annotations

from pathlib import Path

UID = "8f1b2c3d-1111-2222-3333-444455556666"
CID_A = "a" * 64
CID_B = "0123456789abcdef" * 4
V1_UNLIMITED = "9223372036854771712"


def psi(some: float = 0.0, full: float = 0.0, some_total: int = 0, full_total: int = 0) -> str:
    return (f"some avg10={some:.2f} avg60=1.00 avg300=0.50 total={some_total}\n"
            f"full avg10={full:.2f} avg60=0.50 avg300=0.25 total={full_total}\n")


def write_v2(d: Path, *, usage: int = 100 << 20, limit: str = str(512 << 20), high: str = "max",
             some: float = 0.0, full: float = 0.0, some_total: int = 0, oom_kill: int = 0,
             inactive_file: int = 30 << 20, peak: int | None = 200 << 20, memory: bool = True) -> Path:
    """A v2 cgroup directory as the kernel shows it (``memory=False``: no memory controller, as on hybrid)."""
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "cgroup.type": "domain\n",
        "cgroup.controllers": "cpu io memory pids\n" if memory else "hugetlb\n",
        "memory.pressure": psi(some, full, some_total, some_total // 2),
        "cpu.pressure": psi(1.5, 0.5, 1234, 567),
        "cpu.stat": "usage_usec 5000000\nuser_usec 3000000\nsystem_usec 2000000\nnr_periods 100\n"
                    "nr_throttled 7\nthrottled_usec 350000\n",
    }
    if memory:
        files |= {
            "memory.current": f"{usage}\n",
            "memory.max": f"{limit}\n",
            "memory.high": f"{high}\n",
            "memory.events": f"low 0\nhigh 3\nmax 5\noom 1\noom_kill {oom_kill}\noom_group_kill 0\n",
            "memory.stat": f"anon {60 << 20}\nfile {40 << 20}\nkernel 1048576\nshmem 4096\n"
                           f"inactive_file {inactive_file}\nactive_file 1024\npgfault 10\npgmajfault 3\n"
                           "workingset_refault_file 42\nthp_fault_alloc 0\n",
        }
        if peak is not None:
            files["memory.peak"] = f"{peak}\n"
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def write_v1(d: Path, *, usage: int = 95 << 20, limit: str = str(96 << 20), oom_kill: int = 0,
             failcnt: int = 1000, inactive_file: int = 20 << 20) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "memory.usage_in_bytes": f"{usage}\n",
        "memory.limit_in_bytes": f"{limit}\n",
        "memory.max_usage_in_bytes": f"{96 << 20}\n",
        "memory.failcnt": f"{failcnt}\n",
        "memory.oom_control": f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kill}\n",
        "memory.stat": f"cache 1\nrss 2\ntotal_cache {70 << 20}\ntotal_rss {25 << 20}\ntotal_shmem 0\n"
                       f"total_inactive_file {inactive_file}\ntotal_pgmajfault 9\nhierarchical_memory_limit 1\n",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def v2_root(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp / "memory.pressure").write_text(psi())
    return tmp


def hybrid_root(tmp: Path) -> Path:
    (tmp / "unified").mkdir(parents=True)
    (tmp / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    write_v1(tmp / "memory", limit=V1_UNLIMITED)
    return tmp
