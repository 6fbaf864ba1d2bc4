"""``rva bench agent``: footprint of a real ``rva agent`` process sampling every second.

Starts the agent as a child process (in-container mode on this machine's own cgroup), scrapes
``/metrics`` and ``/v1/pressure`` every few seconds like Prometheus and the controller would, and
reads the child's RSS and CPU time from /proc. Goal: RSS ≤ 40 MB, CPU ≤ 1 % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

RSS_GOAL_BYTES = 40 * 1000 * 1000
CPU_GOAL = 0.01


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to measure (after a 3 s warm-up)")
    parser.add_argument("--interval", type=float, default=1.0, help="agent sampling interval")
    parser.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes of both endpoints")
    parser.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return bytes(r.read())


def measure(duration: float, interval: float, scrape_every: float, cgroup_root: str) -> dict[str, Any]:
    port = _free_port()
    cmd = [sys.executable, "-m", "autoscaler.cli", "agent", "--host", "127.0.0.1", "--port", str(port),
           "--interval", str(interval), "--cgroup-root", cgroup_root, "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                _get(base + "/healthz")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"agent did not start: {err[-2000:]}") from None
                time.sleep(0.1)
        time.sleep(3.0)  # warm-up: imports and first allocations are not the steady state
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        scrapes, metrics_bytes = 0, 0
        while time.monotonic() - t0 < duration:
            metrics_bytes = len(_get(base + "/metrics"))
            _get(base + "/v1/pressure")
            scrapes += 1
            time.sleep(min(scrape_every, max(0.0, duration - (time.monotonic() - t0))))
        cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
        samples = json.loads(_get(base + "/v1/pressure"))["samples"]
        rss = _status_kb(proc.pid, "VmRSS") * 1024
        hwm = _status_kb(proc.pid, "VmHWM") * 1024
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cpu_fraction = (cpu1 - cpu0) / (t1 - t0)
    return {
        "duration_s": round(t1 - t0, 2), "interval_s": interval, "scrapes": scrapes,
        "samples_in_history": len(samples), "metrics_bytes": metrics_bytes,
        "rss_bytes": rss, "peak_rss_bytes": hwm, "cpu_fraction": round(cpu_fraction, 5),
        "rss_goal_bytes": RSS_GOAL_BYTES, "cpu_goal_fraction": CPU_GOAL,
        "rss_ok": hwm <= RSS_GOAL_BYTES, "cpu_ok": cpu_fraction <= CPU_GOAL,
    }


def main(args: argparse.Namespace) -> int:
    if not args.json:
        print(f"measuring a real rva agent for {args.duration:.0f} s (+3 s warm-up)…", file=sys.stderr, flush=True)
    result = measure(args.duration, args.interval, args.scrape_every, args.cgroup_root)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"rva agent over {result['duration_s']} s at {args.interval} s sampling, {result['scrapes']} scrapes:")
        print(f"  RSS  {result['rss_bytes'] / 1e6:.1f} MB (peak {result['peak_rss_bytes'] / 1e6:.1f} MB, "
              f"goal ≤ {RSS_GOAL_BYTES / 1e6:.0f} MB) {'ok' if result['rss_ok'] else 'OVER'}")
        print(f"  CPU  {result['cpu_fraction'] * 100:.2f} % of a core (goal ≤ {CPU_GOAL * 100:.0f} %) "
              f"{'ok' if result['cpu_ok'] else 'OVER'}")
    return 0
