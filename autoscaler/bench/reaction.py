"""``rva bench reaction``: how fast rva reacts, with real Ray and the simulated cluster.

1. In place (kubelet actuation 2 s): for each trial a task that only a grown pod can run is submitted;
   measured: GCS-visible → resize PATCH (the daemon's reaction) and ``.remote()`` → task running.
2. Horizontal only (vertical off, node provisioning 90 s by default): the same task needs a new pod on
   a new node; measured ``.remote()`` → running.
3. Footprint: the daemon as its own process (``rva run``) managing 1,000 pods on the simulated API;
   its RSS and API requests per minute after the initial sync, and whether it ever LISTs again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autoscaler.localstack import NAMESPACE, TOKEN, LocalStack, worker_group
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.nodepools import NodePool

GROW_DRIVER = """
import json, os, time
import ray
ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)

@ray.remote
def work():
    return time.time()

trials, cpus, gap = int(os.environ["TRIALS"]), float(os.environ["CPUS"]), float(os.environ["GAP"])
for i in range(trials):
    submitted = time.time()
    started = ray.get(work.options(num_cpus=cpus).remote(), timeout=600)
    print(json.dumps({"submitted": submitted, "started": started}), flush=True)
    time.sleep(gap)   # idle long enough for rva to shrink the pod back before the next trial
"""


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def _first_visible(stack: LocalStack, after: float, timeout: float = 30) -> float | None:
    """Wall time at which pending demand first shows in the GCS after ``after`` (polled every 10 ms)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stack._reader is None:
            await stack.ray_nodes()
        assert stack._reader is not None
        state = await stack._reader.read()
        if state.demands and time.time() > after:
            return time.time()
        await asyncio.sleep(0.01)
    return None


async def in_place(trials: int, actuation: float) -> dict[str, Any]:
    pools = [NodePool("cpu", cpu="8", memory="16Gi", initial_nodes=1, max_nodes=1)]
    kubelet = KubeletConfig(startup_delay=0.5, actuation_delay=actuation, termination_delay=0.5)
    async with LocalStack(pools=pools, kubelet=kubelet) as stack:
        stack.put_policy("groups:\n  '*':\n    vertical: {cooldown: 1s}\n    shrink: {idleWindow: 2s}\n"
                         "    horizontal: {idleTimeout: 1h}\n")
        stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu", cpu="1", memory="1Gi")]))
        await stack.wait_for(lambda: len(stack.workers("rc")) == 1, 30)
        await stack.wait_raylets("rc")
        await stack.start_daemon()
        proc = await stack.driver(GROW_DRIVER, env={"TRIALS": str(trials), "CPUS": "3", "GAP": "8"})
        assert proc.stdout is not None
        reaction: list[float] = []
        running: list[float] = []
        seen_patches = 0
        for _ in range(trials):
            t0 = time.time()
            visible = await _first_visible(stack, t0)
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            result = json.loads(line)
            running.append(result["started"] - result["submitted"])
            patches = [r for r in stack.server.requests if r.method == "PATCH" and r.path.endswith("/resize")]
            # the grow is the first resize PATCH after this task was submitted (shrinks of the previous
            # trial finish during the idle gap between trials)
            grows = [r for r in patches[seen_patches:] if r.at >= result["submitted"]]
            if visible is not None and grows:
                reaction.append(max(0.0, grows[0].at - visible))
            seen_patches = len(patches)
            print(f"  in place trial {len(running)}: .remote()→running {running[-1]:.2f}s", file=sys.stderr)
        await proc.wait()
    return {"trials": trials, "actuation_s": actuation,
            "gcs_visible_to_patch_s": {"p50": _pct(reaction, 0.5), "p95": _pct(reaction, 0.95), "n": len(reaction)},
            "remote_to_running_s": {"p50": _pct(running, 0.5), "p95": _pct(running, 0.95), "n": len(running)}}


async def horizontal(trials: int, provisioning: float) -> dict[str, Any]:
    pools = [NodePool("cpu", cpu="4", memory="16Gi", initial_nodes=1, max_nodes=1 + trials,
                      provisioning_delay=provisioning)]
    kubelet = KubeletConfig(startup_delay=3.0, actuation_delay=2.0, termination_delay=0.5)
    async with LocalStack(pools=pools, kubelet=kubelet) as stack:
        stack.put_policy("groups:\n  '*':\n    vertical: {enabled: false}\n    horizontal: {idleTimeout: 1h}\n")
        stack.create_raycluster(stack.raycluster(
            "rc", [worker_group("cpu", cpu="3", memory="1Gi", replicas=1, max_replicas=1 + trials)]))
        await stack.wait_for(lambda: len(stack.workers("rc")) == 1, 30)
        await stack.wait_raylets("rc")
        await stack.start_daemon()
        # the first pod is kept busy, so every 3-CPU task needs a new pod on a new node
        hog = await stack.driver("import os, time, ray\nray.init(address=os.environ['RAY_ADDRESS'])\n"
                                 "@ray.remote(num_cpus=3)\ndef hog():\n    time.sleep(3600)\n"
                                 "r = hog.remote()\ntime.sleep(3600)\n")
        await asyncio.sleep(5)
        proc = await stack.driver(GROW_DRIVER, env={"TRIALS": str(trials), "CPUS": "3", "GAP": "0"})
        assert proc.stdout is not None
        running: list[float] = []
        for _ in range(trials):
            line = await asyncio.wait_for(proc.stdout.readline(), provisioning + 300)
            result = json.loads(line)
            running.append(result["started"] - result["submitted"])
            print(f"  horizontal trial {len(running)}: .remote()→running {running[-1]:.1f}s", file=sys.stderr)
        await proc.wait()
        hog.kill()
    return {"trials": trials, "provisioning_s": provisioning,
            "remote_to_running_s": {"p50": _pct(running, 0.5), "p95": _pct(running, 0.95), "n": len(running)}}


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def footprint(pods: int, seconds: float) -> dict[str, Any]:
    per_node = 16
    pools = [NodePool("cpu", cpu="64", memory="256Gi", initial_nodes=pods // per_node + 1,
                      max_nodes=pods // per_node + 1, max_pods=per_node + 2)]
    async with LocalStack(pools=pools, real_ray=False, kubelet=KubeletConfig(startup_delay=0.0)) as stack:
        groups = [worker_group(f"g{i}", cpu="2", memory="4Gi", replicas=pods // 10, max_replicas=pods)
                  for i in range(10)]
        stack.create_raycluster(stack.raycluster("big", groups))
        await stack.wait_for(lambda: len(stack.workers("big")) >= pods, 120, step=0.5)
        with tempfile.TemporaryDirectory() as tmp:
            token = Path(tmp) / "token"
            token.write_text(TOKEN)
            env = dict(os.environ, RVA_LOG_LEVEL="WARNING")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "autoscaler.cli", "run", "--server", stack.server.url, "--token-file",
                str(token), "--namespace", NAMESPACE, "--own-namespace", NAMESPACE, "--metrics-port", "0",
                "--metrics-host", "127.0.0.1", "--log-format", "text", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            try:
                await asyncio.sleep(10)  # initial sync
                start_index = len(stack.server.requests)
                t0 = time.monotonic()
                await asyncio.sleep(seconds)
                elapsed = time.monotonic() - t0
                rss = _rss_bytes(proc.pid)
                after = list(stack.server.requests)[start_index:]
            finally:
                proc.terminate()
                await proc.wait()
    lists = [r for r in after if r.verb == "list"]
    return {"managed_pods": pods, "window_s": round(elapsed, 1), "rss_bytes": rss,
            "api_requests_per_minute": round(len(after) * 60 / elapsed, 1),
            "lists_after_sync": len(lists),
            "by_verb": {v: sum(1 for r in after if r.verb == v) for v in sorted({r.verb for r in after})}}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trials", type=int, default=8, help="in-place trials (default 8)")
    parser.add_argument("--horizontal-trials", type=int, default=2)
    parser.add_argument("--provisioning", type=float, default=90.0, help="node provisioning delay, s (default 90)")
    parser.add_argument("--actuation", type=float, default=2.0, help="kubelet resize actuation, s (default 2)")
    parser.add_argument("--pods", type=int, default=1000, help="managed pods for the footprint (default 1000)")
    parser.add_argument("--window", type=float, default=60.0, help="footprint window, s (default 60)")
    parser.add_argument("--skip", action="append", default=[], choices=["in-place", "horizontal", "footprint"])


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    result: dict[str, Any] = {}
    if "in-place" not in args.skip:
        print("in place …", file=sys.stderr)
        result["in_place"] = asyncio.run(in_place(args.trials, args.actuation))
    if "horizontal" not in args.skip:
        print("horizontal only …", file=sys.stderr)
        result["horizontal"] = asyncio.run(horizontal(args.horizontal_trials, args.provisioning))
    if "footprint" not in args.skip:
        print("footprint …", file=sys.stderr)
        result["footprint"] = asyncio.run(footprint(args.pods, args.window))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ip = result.get("in_place")
    if ip:
        r, run = ip["gcs_visible_to_patch_s"], ip["remote_to_running_s"]
        print(f"in place:   GCS-visible → PATCH p50 {r['p50']:.3f}s p95 {r['p95']:.3f}s (goal p95 ≤ 0.5 s); "
              f".remote() → running p50 {run['p50']:.2f}s p95 {run['p95']:.2f}s (goal p50 ≤ 4 s)")
    hz = result.get("horizontal")
    if hz:
        run = hz["remote_to_running_s"]
        print(f"horizontal: .remote() → running p50 {run['p50']:.1f}s (node provisioning {hz['provisioning_s']:.0f}s)")
    fp = result.get("footprint")
    if fp:
        print(f"footprint:  {fp['managed_pods']} pods: RSS {fp['rss_bytes'] / 2**20:.0f} MiB (goal ≤ 200 MB), "
              f"{fp['api_requests_per_minute']} API requests/min, LISTs after sync: {fp['lists_after_sync']}")
    return 0

