"""``rva bench sim``: the simulated cluster's API throughput over real HTTP and a virtual-time trace.

Sections (each a function returning a dict; ``--only <name>`` runs a subset):

* ``api``: GETs/s of single pods with a plain aiohttp client and with ``kubernetes_asyncio`` (which adds
  model deserialisation), and watch events/s delivered to concurrent watchers while an in-process
  writer patches pods as fast as it can. Goals on the 2-core CI machine: ≥ 2,000 GET/s and ≥ 500 watch
  events/s.
* ``trace``: one virtual hour on 10,000 pods / 1,000 nodes (``autoscaler.bench.sim_trace``); goal < 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.store import ObjectStore

GOAL_GETS_PER_S = 2000.0
GOAL_WATCH_EVENTS_PER_S = 500.0


def _pod(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"rc-cpu-worker-{i:05d}", "namespace": "ray",
                         "labels": {"ray.io/cluster": "rc", "ray.io/group": "cpu", "ray.io/node-type": "worker"}},
            "spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.60.0",
                                     "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                   "limits": {"cpu": "2", "memory": "4Gi"}}}]}}


async def _gets_raw(url: str, names: list[str], duration: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + duration
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        rng = random.Random(0)

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with s.get(f"{url}/api/v1/namespaces/ray/pods/{rng.choice(names)}") as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"GET failed with {r.status}")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


async def _gets_wire(url: str, names: list[str], duration: float, concurrency: int) -> float:
    """A wrk-like keep-alive HTTP/1.1 client: cheap enough that the server, not the client, is measured."""
    host, port = url.removeprefix("http://").split(":")
    done = 0
    deadline = time.perf_counter() + duration

    async def conn(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                path = f"/api/v1/namespaces/ray/pods/{rng.choice(names)}"
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"GET failed: {head[:40]!r}")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(conn(i) for i in range(concurrency)))
    return done / (time.perf_counter() - start)


def _gets_child(url: str, names: list[str], duration: float, concurrency: int, out: Any) -> None:
    out.put(asyncio.run(_gets_wire(url, names, duration, concurrency)))


async def _gets_from_processes(url: str, names: list[str], duration: float, concurrency: int, procs: int) -> float:
    """GET load from separate processes, as the daemon would be: the server keeps its own core."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_gets_child, args=(url, names, duration, concurrency, out), daemon=True)
               for _ in range(procs)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers) and out.qsize() < procs:
        await asyncio.sleep(0.05)
    rates = [out.get(timeout=duration + 30) for _ in workers]
    for w in workers:
        w.join(timeout=5)
    return float(sum(rates))


async def _gets_client(api: SimApiServer, names: list[str], duration: float, concurrency: int) -> float:
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client import ApiClient, Configuration

    done = 0
    deadline = time.perf_counter() + duration
    async with ApiClient(Configuration(host=api.url)) as ac:
        v1 = client.CoreV1Api(ac)
        rng = random.Random(1)

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await v1.read_namespaced_pod(rng.choice(names), "ray")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


async def _watch_events(api: SimApiServer, names: list[str], duration: float, watchers: int) -> dict[str, float]:
    store = api.store
    received = [0] * watchers
    rv = str(store.resource_version)
    stop = asyncio.Event()

    async def watch(i: int, ready: asyncio.Event) -> None:
        params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": str(int(duration) + 30)}
        async with aiohttp.ClientSession() as s, s.get(f"{api.url}/api/v1/namespaces/ray/pods", params=params) as r:
            ready.set()
            while not stop.is_set():
                try:
                    line = await asyncio.wait_for(r.content.readline(), 0.5)
                except TimeoutError:
                    continue
                if not line:
                    return
                json.loads(line)
                received[i] += 1

    readies = [asyncio.Event() for _ in range(watchers)]
    tasks = [asyncio.create_task(watch(i, readies[i])) for i in range(watchers)]
    await asyncio.gather(*(r.wait() for r in readies))
    written = 0
    start = time.perf_counter()
    deadline = start + duration
    while time.perf_counter() < deadline:
        for _ in range(20):  # writes in small batches, then let the server stream them
            name = names[written % len(names)]
            store.patch("pods", "ray", name, {"metadata": {"annotations": {"rva.dev/seq": str(written)}}},
                        "application/merge-patch+json")
            written += 1
        await asyncio.sleep(0)
    # Drain: give the watchers a moment to read what was written.
    expected = written * watchers
    drain_deadline = time.perf_counter() + 10
    while sum(received) < expected and time.perf_counter() < drain_deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"watch_events_per_s": sum(received) / elapsed, "writes_per_s": written / elapsed,
            "watchers": float(watchers), "events_delivered": float(sum(received)), "events_expected": float(expected)}


def api_throughput(
    duration: float = 3.0, concurrency: int = 8, pods: int = 500, watchers: int = 4, client_procs: int = 1
) -> dict[str, Any]:
    """GET and watch throughput of a ``SimApiServer`` on loopback; numbers per second.

    ``gets_per_s_client_process`` loads the server from ``client_procs`` separate processes with a minimal
    keep-alive HTTP/1.1 client (wrk-style, so the server is what is measured); ``gets_per_s_same_loop``
    runs an aiohttp client in the server's own event loop; ``gets_per_s`` is the better of the two (the
    machine is shared, so either may be starved). ``gets_per_s_kubernetes_asyncio`` adds the generated
    client's model deserialisation, which is the daemon's real ceiling.
    """

    async def run() -> dict[str, Any]:
        store = ObjectStore(history_size=100_000)
        for i in range(pods):
            store.create("pods", _pod(i))
        names = [f"rc-cpu-worker-{i:05d}" for i in range(pods)]
        async with SimApiServer(store) as api:
            raw = await _gets_from_processes(api.url, names, duration, concurrency, client_procs)
            same_loop = await _gets_raw(api.url, names, duration, concurrency)
            typed = await _gets_client(api, names, duration, concurrency)
            watch = await _watch_events(api, names, duration, watchers)
        best = max(raw, same_loop)
        return {
            "gets_per_s": round(best, 1),
            "gets_per_s_client_process": round(raw, 1),
            "gets_per_s_same_loop": round(same_loop, 1),
            "gets_per_s_kubernetes_asyncio": round(typed, 1),
            **{k: round(v, 1) for k, v in watch.items()},
            "pods": pods,
            "concurrency": concurrency,
            "client_procs": client_procs,
            "duration_s": duration,
            "goal_gets_per_s": GOAL_GETS_PER_S,
            "goal_watch_events_per_s": GOAL_WATCH_EVENTS_PER_S,
            "meets_goals": best >= GOAL_GETS_PER_S and watch["watch_events_per_s"] >= GOAL_WATCH_EVENTS_PER_S,
        }

    return asyncio.run(run())


def _trace(args: argparse.Namespace) -> dict[str, Any]:
    from autoscaler.bench.sim_trace import virtual_trace  # imported lazily: it pulls in every controller

    return virtual_trace(pods=args.trace_pods, nodes=args.trace_nodes, hours=args.trace_hours, seed=args.seed)


#: section name → function(args) -> result dict.
SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "api": lambda a: api_throughput(a.duration, a.concurrency, a.pods, a.watchers, a.client_procs),
    "trace": _trace,
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent GET clients (default 8)")
    parser.add_argument("--pods", type=int, default=500, help="pods in the store (default 500)")
    parser.add_argument("--watchers", type=int, default=4, help="concurrent watch streams (default 4)")
    parser.add_argument("--client-procs", type=int, default=1, help="GET load processes (default 1)")
    parser.add_argument("--trace-pods", type=int, default=10_000, help="pods in the virtual trace (default 10000)")
    parser.add_argument("--trace-nodes", type=int, default=1_000, help="nodes in the virtual trace (default 1000)")
    parser.add_argument("--trace-hours", type=float, default=1.0, help="virtual hours to replay (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="trace seed (default 0)")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    results = {name: fn(args) for name, fn in SECTIONS.items() if not args.only or name in args.only}
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    for name, res in results.items():
        print(f"[{name}]")
        for key, value in res.items():
            print(f"  {key:34} {value}")
    return 0
