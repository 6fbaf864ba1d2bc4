"""cgroup reader and discovery on fixture trees: v2 (systemd, cgroupfs), Ray isolation, v1 hybrid, bad files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from autoscaler.observe import cgroup_discovery as disc
from autoscaler.observe.cgroup import (
    CgroupParseError,
    RateLimitedWarner,
    find_ray_subtrees,
    parse_keyed,
    parse_limit,
    parse_psi,
    read_cgroup,
)
from tests.unit.cgroup_fixtures import CID_A, CID_B, UID, V1_UNLIMITED, hybrid_root, psi, v2_root, write_v1, write_v2

# --------------------------------------------------------------------------------------------------
# parsers
# --------------------------------------------------------------------------------------------------


def test_parse_psi_both_lines() -> None:
    p = parse_psi("some avg10=4.52 avg60=5.42 avg300=0.87 total=3651856\n"
                  "full avg10=4.50 avg60=5.40 avg300=0.80 total=3600000\n")
    assert p.some is not None and p.full is not None
    assert (p.some.avg10, p.some.avg60, p.some.avg300, p.some.total_us) == (4.52, 5.42, 0.87, 3651856)
    assert p.full.total_us == 3600000


def test_parse_psi_without_full_line_as_old_cpu_pressure() -> None:
    p = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert p.full is None and p.some is not None


@pytest.mark.parametrize("text", ["", "garbage\n", "some avg10=x avg60=0 avg300=0 total=0\n",
                                  "some avg10=1 avg60=1 total=3\n", "full avg10=0 avg60=0 avg300=0 total=0\n"])
def test_parse_psi_rejects_malformed(text: str) -> None:
    with pytest.raises(CgroupParseError):
        parse_psi(text)


def test_parse_limit_max_and_v1_unlimited() -> None:
    assert parse_limit("max\n") is None
    assert parse_limit(V1_UNLIMITED) is None
    assert parse_limit("1073741824\n") == 1 << 30
    with pytest.raises(CgroupParseError):
        parse_limit("lots")


def test_parse_keyed_rejects_bad_lines() -> None:
    assert parse_keyed("a 1\n\nb 2\n") == {"a": 1, "b": 2}
    with pytest.raises(CgroupParseError):
        parse_keyed("a 1 2\n")
    with pytest.raises(CgroupParseError):
        parse_keyed("a one\n")


# --------------------------------------------------------------------------------------------------
# read_cgroup
# --------------------------------------------------------------------------------------------------


def test_read_v2_cgroup(tmp_path: Path) -> None:
    d = write_v2(tmp_path / "c", some=12.5, full=3.0, some_total=777, oom_kill=2, high=str(400 << 20))
    s = read_cgroup(d, clock=lambda: 1000.0)
    assert s.errors == ()
    assert s.version == "v2" and s.sampled_at == 1000.0 and s.memory_path == str(d)
    assert s.memory_psi is not None and s.memory_psi.some is not None and s.memory_psi.full is not None
    assert s.memory_psi.some.avg10 == 12.5 and s.memory_psi.some.total_us == 777 and s.memory_psi.full.avg10 == 3.0
    assert s.cpu_psi is not None and s.cpu_psi.some is not None and s.cpu_psi.some.avg10 == 1.5
    assert (s.usage_bytes, s.limit_bytes, s.high_bytes, s.peak_bytes) == (100 << 20, 512 << 20, 400 << 20, 200 << 20)
    assert s.working_set_bytes == (100 << 20) - (30 << 20)
    assert s.events is not None and (s.events.high, s.events.max, s.events.oom, s.events.oom_kill) == (3, 5, 1, 2)
    assert s.stat["anon"] == 60 << 20 and s.stat["pgmajfault"] == 3 and "thp_fault_alloc" not in s.stat
    assert s.cpu is not None and (s.cpu.nr_periods, s.cpu.nr_throttled, s.cpu.throttled_usec) == (100, 7, 350000)
    assert s.inode == os.stat(d).st_ino


def test_unlimited_v2_and_no_memory_peak(tmp_path: Path) -> None:
    s = read_cgroup(write_v2(tmp_path / "c", limit="max", peak=None))
    assert s.limit_bytes is None and s.high_bytes is None and s.peak_bytes is None and s.errors == ()


def test_v2_root_cgroup_has_no_memory_files_and_that_is_fine(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    (root / "cpu.pressure").write_text(psi())
    (root / "cpu.stat").write_text("usage_usec 1\n")
    s = read_cgroup(root)
    assert s.errors == () and s.usage_bytes is None and s.memory_psi is not None


def test_hybrid_sample_takes_memory_from_v1_and_psi_from_v2(tmp_path: Path) -> None:
    v2 = write_v2(tmp_path / "unified" / "job", some=17.39, full=17.39, memory=False)
    v1 = write_v1(tmp_path / "memory" / "job", oom_kill=1, failcnt=123456)
    s = read_cgroup(v2, v1)
    assert s.errors == ()
    assert s.version == "hybrid" and s.path == str(v2) and s.memory_path == str(v1)
    assert s.memory_psi is not None and s.memory_psi.full is not None and s.memory_psi.full.avg10 == 17.39
    assert (s.usage_bytes, s.limit_bytes, s.peak_bytes, s.high_bytes) == (95 << 20, 96 << 20, 96 << 20, None)
    assert s.events is not None and s.events.max == 123456 and s.events.oom_kill == 1
    assert s.stat["file"] == 70 << 20 and s.stat["anon"] == 25 << 20 and s.stat["pgmajfault"] == 9
    assert s.working_set_bytes == (95 << 20) - (20 << 20)
    assert s.inode == os.stat(v1).st_ino


def test_v1_only_sample(tmp_path: Path) -> None:
    s = read_cgroup(None, write_v1(tmp_path / "memory" / "x", limit=V1_UNLIMITED))
    assert s.version == "v1" and s.limit_bytes is None and s.memory_psi is None and s.errors == ()


def test_malformed_and_missing_files_give_a_partial_sample_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = write_v2(tmp_path / "c")
    (d / "memory.pressure").write_text("some avg10=oops\n")
    (d / "memory.max").unlink()
    (d / "memory.events").write_text("oom_kill\n")
    (d / "cpu.pressure").unlink()
    (d / "cpu.pressure").mkdir()  # reading a directory fails with an OSError, like EOPNOTSUPP would
    now = [0.0]
    warner = RateLimitedWarner(logging.getLogger("test.cgroup"), interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.cgroup"):
        s = read_cgroup(d, warner=warner)
        first = len(caplog.records)
        read_cgroup(d, warner=warner)  # the next second: no new warnings
        assert len(caplog.records) == first
        now[0] = 61.0
        read_cgroup(d, warner=warner)  # after the interval the warnings come back
        assert len(caplog.records) == 2 * first
    assert first == 4
    assert s.memory_psi is None and s.limit_bytes is None and s.events is None and s.cpu_psi is None
    assert s.usage_bytes == 100 << 20 and s.cpu is not None  # the rest is still there
    bad = sorted(e.split(":")[0] for e in s.errors)
    assert bad == ["cpu.pressure", "memory.events", "memory.max", "memory.pressure"]
    assert any("malformed" in e for e in s.errors) and any("missing" in e for e in s.errors)
    assert "memory.max" in caplog.text and "partial" in caplog.text


def test_vanished_cgroup_reads_as_empty_partial_sample(tmp_path: Path) -> None:
    s = read_cgroup(tmp_path / "gone", warner=RateLimitedWarner(interval_s=0))
    assert s.memory_psi is None and s.usage_bytes is None and s.inode == 0 and s.errors


# --------------------------------------------------------------------------------------------------
# Ray resource isolation subtree
# --------------------------------------------------------------------------------------------------


def make_ray_tree(container: Path, node_id: str = "abc123") -> Path:
    node = container / f"ray-node_{node_id}"
    for sub in ("system", "system/leaf", "user", "user/workers", "user/non-ray"):
        write_v2(node / sub)
    return node


def test_find_ray_subtrees_in_container(tmp_path: Path) -> None:
    c = write_v2(tmp_path / "ctr")
    make_ray_tree(c)
    found = find_ray_subtrees(c, depth=0)
    assert sorted(found) == [f"ray-node_abc123/{s}" for s in ("system", "user", "user/non-ray", "user/workers")]
    assert read_cgroup(found["ray-node_abc123/user/workers"]).errors == ()


def test_find_ray_subtrees_from_a_pod_dir_looks_into_container_scopes(tmp_path: Path) -> None:
    pod = write_v2(tmp_path / "pod")
    make_ray_tree(write_v2(pod / f"cri-containerd-{CID_A}.scope"), "n1")
    assert "ray-node_n1/user/workers" in find_ray_subtrees(pod, depth=1)
    assert find_ray_subtrees(pod, depth=0) == {}
    assert find_ray_subtrees(tmp_path / "missing") == {}


# --------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------


def test_hierarchies_detects_v2_hybrid_v1(tmp_path: Path) -> None:
    assert disc.hierarchies(v2_root(tmp_path / "a")).version == "v2"
    h = disc.hierarchies(hybrid_root(tmp_path / "b"))
    assert h.version == "hybrid" and h.v2 == tmp_path / "b" / "unified" and h.v1_memory == tmp_path / "b" / "memory"
    write_v1(tmp_path / "c" / "memory")
    assert disc.hierarchies(tmp_path / "c").version == "v1"
    (tmp_path / "d").mkdir()
    with pytest.raises(disc.DiscoveryError):
        disc.hierarchies(tmp_path / "d")


@pytest.mark.parametrize(
    ("rel", "qos", "driver"),
    [
        (f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice",
         "burstable", "systemd"),
        (f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice",
         "besteffort", "systemd"),
        (f"kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice", "guaranteed", "systemd"),
        (f"kubepods/burstable/pod{UID}", "burstable", "cgroupfs"),
        (f"kubepods/besteffort/pod{UID}", "besteffort", "cgroupfs"),
        (f"kubepods/pod{UID}", "guaranteed", "cgroupfs"),
    ],
)
def test_discover_pod_v2_layouts(tmp_path: Path, rel: str, qos: str, driver: str) -> None:
    root = v2_root(tmp_path)
    pod = write_v2(root / rel)
    scope = (lambda cid: f"cri-containerd-{cid}.scope") if driver == "systemd" else (lambda cid: cid)
    write_v2(pod / scope(CID_A))
    write_v2(pod / scope(CID_B))
    (pod / "crio-conmon-x.scope").mkdir()  # not a container
    write_v2(root / "kubepods.slice" / "other-pod.slice")  # neighbours are ignored
    found = disc.discover_pod(root, UID)
    assert (found.qos, found.driver, found.pod.v2_dir, found.pod.v1_memory_dir) == (qos, driver, pod, None)
    assert [c.container_id for c in found.containers] == sorted([CID_A, CID_B])
    assert all(c.v2_dir is not None and c.v2_dir.parent == pod for c in found.containers)
    if driver == "systemd":
        assert {c.runtime for c in found.containers} == {"containerd"}


def test_discover_pod_hybrid_finds_both_hierarchies(tmp_path: Path) -> None:
    root = hybrid_root(tmp_path)
    rel = f"kubepods/burstable/pod{UID}"
    write_v2(root / "unified" / rel, memory=False)
    write_v1(root / "memory" / rel)
    write_v2(root / "unified" / rel / CID_A, memory=False)
    write_v1(root / "memory" / rel / CID_A)
    found = disc.discover_pod(root, UID)
    assert found.pod.v2_dir == root / "unified" / rel and found.pod.v1_memory_dir == root / "memory" / rel
    (c,) = found.containers
    assert c.v1_memory_dir == root / "memory" / rel / CID_A
    s = read_cgroup(found.pod.v2_dir, found.pod.v1_memory_dir)
    assert s.version == "hybrid" and s.errors == ()


def test_discover_pod_under_a_custom_kubelet_cgroup_root(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    pod = write_v2(root / "kubelet.slice" / "kubelet-kubepods.slice" / "kubelet-kubepods-burstable.slice"
                   / f"kubelet-kubepods-burstable-pod{UID.replace('-', '_')}.slice")
    found = disc.discover_pod(root, UID)
    assert found.pod.v2_dir == pod and found.qos == "burstable" and found.driver == "systemd"


def test_discover_pod_errors(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    with pytest.raises(disc.DiscoveryError, match="no cgroup for pod"):
        disc.discover_pod(root, UID)
    with pytest.raises(disc.DiscoveryError, match="does not look like"):
        disc.discover_pod(root, "../../etc")


def test_parse_container_dir() -> None:
    assert disc.parse_container_dir(f"crio-{CID_A}.scope") == (CID_A, "crio")
    assert disc.parse_container_dir(f"docker-{CID_A}.scope") == (CID_A, "docker")
    assert disc.parse_container_dir(CID_B) == (CID_B, "")
    assert disc.parse_container_dir(f"crio-conmon-{CID_A}.scope") is None
    assert disc.parse_container_dir("system.slice") is None


MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_in_container_target_maps_own_paths_onto_the_mounts(tmp_path: Path) -> None:
    h = disc.Hierarchies(v2=Path("/sys/fs/cgroup/unified"), v1_memory=Path("/sys/fs/cgroup/memory"))
    proc = "9:name=systemd:/\n4:memory:/process_api/abc\n3:cpu,cpuacct:/\n0::/job\n"
    t = disc.in_container_target(h, proc, MOUNTINFO_HYBRID)
    assert t.v2_dir == Path("/sys/fs/cgroup/unified/job")
    assert t.v1_memory_dir == Path("/sys/fs/cgroup/memory/process_api/abc")


def test_in_container_with_a_cgroup_namespace_or_bind_mount() -> None:
    h = disc.Hierarchies(v2=Path("/sys/fs/cgroup"), v1_memory=None)
    ns = "41 31 0:38 / /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw\n"
    assert disc.in_container_target(h, "0::/\n", ns).v2_dir == Path("/sys/fs/cgroup")
    # No cgroup namespace: the runtime bind-mounts our own cgroup, so the mount root equals our path.
    own = "/kubepods.slice/kubepods-burstable.slice/x.slice/cri-containerd-1.scope"
    bind = f"41 31 0:38 {own} /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw\n"
    assert disc.in_container_target(h, f"0::{own}\n", bind).v2_dir == Path("/sys/fs/cgroup")


def test_in_container_strips_ray_isolation_from_own_path() -> None:
    h = disc.Hierarchies(v2=Path("/sys/fs/cgroup"), v1_memory=None)
    ns = "41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    t = disc.in_container_target(h, "0::/ray-node_abc/user/non-ray\n", ns)
    assert t.v2_dir == Path("/sys/fs/cgroup")
    assert disc.container_root_of("/pod/ctr/ray-node_x/system/leaf") == "/pod/ctr"


def test_discover_in_container_with_path_override(tmp_path: Path) -> None:
    root = hybrid_root(tmp_path)
    write_v2(root / "unified" / "job", memory=False)
    write_v1(root / "memory" / "job")
    t = disc.discover_in_container(root, "/job")
    assert t.v2_dir == root / "unified" / "job" and t.v1_memory_dir == root / "memory" / "job"
    with pytest.raises(disc.DiscoveryError, match="does not exist"):
        disc.discover_in_container(root, "/nope")


def test_parse_mountinfo_unescapes_and_ignores_other_filesystems() -> None:
    text = MOUNTINFO_HYBRID + "50 31 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n"
    m = disc.parse_mountinfo(text)
    assert m == {"/sys/fs/cgroup/memory": "/", "/sys/fs/cgroup/unified": "/", "/mnt/with space": "/"}
