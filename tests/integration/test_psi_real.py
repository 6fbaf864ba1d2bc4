"""Real PSI on this kernel: a file-backed thrasher in a small memory cgroup, seen by the agent and the detector.

Hybrid host (test-infrastructure.md §6): cgroup v1 owns memory, the v2 mount at /sys/fs/cgroup/unified
still gives per-cgroup PSI. We create a v2 child (PSI) and a v1 memory child (96 MiB limit), run a
process that keeps re-reading a file larger than the limit (file-backed thrashing: stalls without an
OOM kill), and check that the agent reports non-zero some/full PSI and that the detector fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from autoscaler.agent import Agent, AgentConfig
from autoscaler.observe.pressure import (
    AgentEndpoint,
    AgentScraper,
    PodContext,
    PodPressureState,
    Thresholds,
    detect_series,
)

ROOT = Path("/sys/fs/cgroup")
UNIFIED, MEMORY = ROOT / "unified", ROOT / "memory"
LIMIT = 96 << 20
FILE_SIZE = 256 << 20
HOG_SECONDS = 15.0  # hard bound on the thrasher, whatever happens to the test

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not os.access(UNIFIED, os.W_OK) or not os.access(MEMORY, os.W_OK)
        or not (UNIFIED / "memory.pressure").exists(),
        reason="needs root, a writable v2 mount at /sys/fs/cgroup/unified with PSI and a writable v1 memory mount",
    ),
]

# Joins both cgroups itself (so its first allocation is already charged), touches 64 MiB of anonymous
# memory, then reads random pages of a file 2.7× the limit. Checks the clock every 500 reads: a slower
# check once turned a "6 s" run into 136 s (test-infrastructure.md §6).
HOG = r"""
import mmap, os, random, sys, time
v2, v1, path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
for d in (v1, v2):
    with open(os.path.join(d, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
anon = bytearray(64 << 20)
for i in range(0, len(anon), 4096):
    anon[i] = 1
print("ready", flush=True)
fd = os.open(path, os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
pages = len(m) // 4096
end = time.monotonic() + seconds
total = 0
while time.monotonic() < end:
    for _ in range(500):
        total += m[random.randrange(pages) * 4096]
"""


@pytest.fixture
def cgroups(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    name = f"rva-psi-test-{os.getpid()}"
    v2, v1 = UNIFIED / name, MEMORY / name
    made: list[Path] = []
    try:
        for d in (v2, v1):
            d.mkdir()
            made.append(d)
        (v1 / "memory.limit_in_bytes").write_text(str(LIMIT))
        yield name, tmp_path
    finally:
        for d in reversed(made):
            for _ in range(50):  # the killed thrasher may take a moment to leave the cgroup
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        assert not v2.exists() and not v1.exists(), "test cgroups were not removed"


def make_big_file(path: Path) -> None:
    block = b"\xa5" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(FILE_SIZE // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # start cold: every read is a real fault
    finally:
        os.close(fd)


async def test_agent_sees_real_psi_and_detector_fires_within_5s(cgroups: tuple[str, Path]) -> None:
    name, tmp = cgroups
    big = tmp / "bigfile"
    make_big_file(big)
    agent = Agent(AgentConfig(cgroup_root=ROOT, cgroup_path="/" + name, interval_s=1.0,
                              psi_trigger="some 150000 2000000", pod_name="psi-test"))
    port = await agent.start("127.0.0.1", 0)
    hog: subprocess.Popen[bytes] | None = None
    try:
        assert agent.trigger is not None and agent.trigger.armed, agent.trigger_error
        target = agent.sampler.primary_target
        assert target is not None and target.v2_dir == UNIFIED / name and target.v1_memory_dir == MEMORY / name
        await asyncio.sleep(0.5)
        assert agent.trigger.events == 0, "the trigger fired on an idle cgroup"
        hog = subprocess.Popen([sys.executable, "-c", HOG, str(UNIFIED / name), str(MEMORY / name), str(big),
                                str(HOG_SECONDS)], stdout=subprocess.PIPE)
        assert hog.stdout is not None
        assert await asyncio.wait_for(asyncio.to_thread(hog.stdout.readline), 10) == b"ready\n"
        started = time.time()

        # PSI only: a usage-ratio threshold above 1 can never fire, so the detector must see the stalls.
        th = Thresholds(psi_some_avg10=10.0, usage_ratio=1.01, usage_ratio_release=1.0, consecutive_windows=2)
        ep = AgentEndpoint("psi-test", "test", f"http://127.0.0.1:{port}")
        state: PodPressureState | None = None
        fired_after: float | None = None
        some = full = 0.0
        async with aiohttp.ClientSession() as session:
            scraper = AgentScraper(session, timeout_s=2.0)
            while time.time() - started < 9.0 and (fired_after is None or some == 0 or full == 0
                                                   or agent.trigger.events == 0):
                await asyncio.sleep(0.25)
                res = (await scraper.scrape([ep]))["psi-test"]
                assert res.error == "", res.error
                det = detect_series(state, res.for_detector(), PodContext(), th, time.time())
                state = det.state
                if fired_after is None and det.fired(th):
                    fired_after = time.time() - started
                psi = agent.sampler.latest.primary.sample.memory_psi if agent.sampler.latest else None
                if psi is not None and psi.some is not None and psi.full is not None:
                    some, full = max(some, psi.some.avg10), max(full, psi.full.avg10)
        assert hog.poll() is None, "the thrasher died (OOM-killed?) instead of stalling"
        doc = agent.sampler.latest
        assert doc is not None and doc.primary.sample.usage_bytes is not None
        assert doc.primary.sample.limit_bytes == LIMIT
        assert some > 0 and full > 0, f"agent saw no PSI: some={some} full={full}"
        assert fired_after is not None and fired_after <= 5.0, f"detector fired after {fired_after}s"
        elapsed = time.time() - started
        print(f"fired after {fired_after:.2f}s; max avg10 some={some} full={full}; trigger events "
              f"{agent.trigger.events} in {elapsed:.1f}s; rounds {agent.sampler.samples_total}")
        # The kernel signals at most once per 2 s window; many more would mean a wake-up loop.
        assert 1 <= agent.trigger.events <= elapsed / 2 + 2, "the PSI trigger did not wake the agent sanely"
        assert agent.sampler.samples_total["trigger"] >= 1
    finally:
        if hog is not None:
            with contextlib.suppress(ProcessLookupError):
                hog.send_signal(signal.SIGKILL)
            hog.wait(timeout=10)
        await agent.stop()
        big.unlink(missing_ok=True)
