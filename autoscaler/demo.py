"""``rva demo``: the whole of rva on one machine, in four observed phases, in about two minutes.

A simulated Kubernetes cluster on a real clock serves the Kubernetes API over HTTP; a real Ray head
runs locally and every worker pod is a real raylet started with the pod's labels and logical size;
the real daemon (``kubernetes_asyncio`` to the API, gRPC to the GCS) and a real ``rva agent`` (reading
simulated cgroup files of the memory pod) do the autoscaling. A scripted Ray workload then:

1. submits a 3-CPU task to a 1-CPU pod — the daemon grows the pod in place and the raylet;
2. runs a memory-hungry task while the pod's (simulated) kernel reports memory pressure — the agent
   reports it and the daemon grows the pod's memory;
3. submits a GPU task for L4 *spot* with an L4 *on-demand* fallback while spot is stocked out — the
   daemon tries spot, marks it stocked out, removes the stuck pod and scales on-demand;
4. lets everything finish — the daemon shrinks the grown pod and drains and removes the idle one.

Every verdict in the summary is derived from what was observed (the daemon's Events, pod sizes the
kubelet applied, raylet totals, the node each task reported from) — see :mod:`autoscaler.demo_record`.
Every process the demo starts (Ray head, raylets, driver, agent) is stopped on success, failure and
Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from autoscaler.demo_record import (
    MI,
    DemandSample,
    EventRecord,
    GroupInfo,
    PhaseResult,
    PhaseSpan,
    PodSample,
    RayNodeSample,
    Recording,
    StimulusRecord,
    TaskRecord,
    demand_by_group,
    first_unobserved,
    fmt_mem,
    observe_fallback,
    observe_grow_in_place,
    observe_idle,
    observe_memory_grow,
    summarize,
)
from autoscaler.demo_view import Reporter, print_summary
from autoscaler.demo_workload import DRIVER, Workload
from autoscaler.model import CPU, MEMORY

CLUSTER = "demo"
NAMESPACE = "default"
POOL = "cloud.google.com/gke-nodepool"
SPOT = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}
ON_DEMAND = {"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}
#: Tuned so the whole story fits in about two minutes on a 2-core machine (production defaults are
#: minutes: cooldown 60s, idle window 10m, idle timeout 60s, stockout time 3m). The stockout time must
#: exceed a healthy pool's provisioning (3 s here) plus a scheduler pass, or the on-demand pod waiting
#: for its new node would be judged stocked out as well.
POLICY = """\
groups:
  '*':
    vertical: {cooldown: 2s}
    memoryPressure: {consecutiveWindows: 2, startupGrace: 0s, psiSomeAvg10: 20}
    shrink: {idleWindow: 3s}
    horizontal: {idleTimeout: 6s, stockoutTime: 10s, stockoutBackoff: 10m}
"""
PHASES = (
    ("grow", "CPU burst served by in-place growth"),
    ("memory", "memory pressure → memory grown"),
    ("fallback", "L4 spot stocked out → on-demand fallback"),
    ("idle", "idle: shrink, then drained removal"),
)
BURST_CPUS = 3.0
PRESSURE_USAGE = 1000 * MI
PRESSURE_PSI = 35.0
CALM_USAGE = 300 * MI

log = logging.getLogger("rva.demo")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print only a machine-readable summary (observed facts per phase) on stdout")
    parser.add_argument("--no-live", action="store_true", help="plain progress lines instead of the live view")
    parser.add_argument("--quiet", action="store_true", help="no progress output, only the final summary")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="directory for the timeline PNG and the daemon log (default: out/)")
    parser.add_argument("--png", type=Path, default=None, help="timeline PNG path (default: OUT/demo-<time>.png)")
    parser.add_argument("--no-png", action="store_true", help="do not draw the timeline")
    parser.add_argument("--phase-timeout", type=float, default=60.0,
                        help="seconds each phase may take before the demo gives up on it (default 60)")
    parser.add_argument("--record", type=Path, default=None,
                        help="also write the raw recording (JSON) here, for post-mortems and tests")


def main(args: argparse.Namespace) -> int:
    mode = "quiet" if args.json or args.quiet else ("live" if sys.stdout.isatty() and not args.no_live else "plain")
    try:
        summary = asyncio.run(run(args, mode))
    except KeyboardInterrupt:
        print("rva demo: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except DemoSetupError as e:
        if args.json:
            print(json.dumps({"ok": False, "error": str(e), "phases": []}, indent=2))
        print(f"rva demo: setup failed: {e}", file=sys.stderr)
        return 2
    if summary is None:  # SIGTERM
        print("rva demo: terminated; every process it started was stopped", file=sys.stderr)
        return 143
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary, summary.get("timeline_png"), summary.get("daemon_log"),
                      color=None if sys.stdout.isatty() else False)
    missing = first_unobserved(summary)
    if missing is not None:
        n = next(i for i, p in enumerate(summary["phases"], 1) if p is missing)
        print(f"rva demo: phase {n} ({missing['title']}) was not observed: {missing['what']}", file=sys.stderr)
        return 1
    return 0


class DemoSetupError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- capture ------------------------------------------------------------------------------------------
class Capture:
    """Fills the Recording: a store listener (pods, Events — at the instant they are written) and a
    sampler of the daemon's GCS view (raylets, pending demand) and of the tasks' start records."""

    def __init__(self, rec: Recording, reporter: Reporter, workload: Workload | None = None) -> None:
        self.rec = rec
        self.reporter = reporter
        self.workload = workload
        self.daemon: Any = None
        self._last_pod: dict[str, PodSample] = {}
        self._last_node: dict[str, RayNodeSample] = {}
        self._last_demand: tuple[int, float, tuple[tuple[str, float], ...]] | None = None
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return time.time() - self.rec.started_at

    # store listener (synchronous, inside the store's write)
    def on_store(self, etype: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "pods":
            self._on_pod(etype, obj)
        elif resource == "events" and etype == "ADDED":
            involved = obj.get("involvedObject") or {}
            e = EventRecord(
                t=self.now(), reason=str(obj.get("reason", "")), kind=str(involved.get("kind", "")),
                name=str(involved.get("name", "")), message=str(obj.get("message", "")),
                component=str((obj.get("source") or {}).get("component") or obj.get("reportingComponent") or ""))
            self.rec.events.append(e)
            self.reporter.event(e)

    def _on_pod(self, etype: str, obj: dict[str, Any]) -> None:
        from autoscaler.observe.k8s_state import pod_state

        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get("ray.io/cluster") != CLUSTER or labels.get("ray.io/node-type") != "worker":
            return
        ps = pod_state(obj)
        s = PodSample(
            t=self.now(), pod=ps.name, group=ps.group, phase="Deleted" if etype == "DELETED" else ps.phase,
            cpu=ps.requests.get(CPU), memory=ps.requests.get(MEMORY),
            actual_cpu=ps.actual_requests.get(CPU), actual_memory=ps.actual_requests.get(MEMORY),
            memory_limit=ps.actual_limits.get(MEMORY), unschedulable=ps.unschedulable_since is not None,
            deleting=ps.deleting)
        prev = self._last_pod.get(s.pod)
        if prev is not None and _same(prev, s):
            return
        self._last_pod[s.pod] = s
        self.rec.pods.append(s)
        self.reporter.pod(s, prev)

    # sampler
    def start(self) -> None:
        self._task = asyncio.create_task(self._sample_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    async def _sample_forever(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # the demo's own bookkeeping must not kill the demo
                log.exception("demo sampler failed")
            await asyncio.sleep(0.25)

    def sample(self) -> None:
        t = self.now()
        self._sample_tasks(t)
        worker = self.daemon.worker(NAMESPACE, CLUSTER) if self.daemon is not None else None
        state = worker.ray if worker is not None else None
        if state is None:
            self.reporter.demand(t, 0, 0.0)
            return
        alive = set()
        for n in state.nodes:
            if n.instance_id == "head" or n.node_type == "headgroup":
                continue
            alive.add(n.node_id)
            s = RayNodeSample(t, n.node_id, n.instance_id, n.node_type, n.total.get(CPU) / 1000,
                              n.total.get(MEMORY), "DEAD" if n.status == "DEAD" else "ALIVE")
            prev = self._last_node.get(n.node_id)
            if prev is None or (prev.cpu_total, prev.memory_total, prev.status) != (s.cpu_total, s.memory_total,
                                                                                     s.status):
                self._last_node[n.node_id] = s
                self.rec.ray_nodes.append(s)
                if prev is None:
                    self.reporter.note(t, f"raylet of {s.pod} registered: {s.cpu_total:g} CPU, "
                                          f"{fmt_mem(s.memory_total)} (node {s.node_id[:8]})")
                elif s.status == "DEAD":
                    self.reporter.note(t, f"raylet of {s.pod} gone")
                else:
                    self.reporter.note(t, f"raylet of {s.pod} resized: {prev.cpu_total:g} → {s.cpu_total:g} CPU, "
                                          f"{fmt_mem(prev.memory_total)} → {fmt_mem(s.memory_total)}")
        for node_id, prev in list(self._last_node.items()):
            if node_id not in alive and prev.status != "DEAD":
                gone = RayNodeSample(t, prev.node_id, prev.pod, prev.group, prev.cpu_total, prev.memory_total, "DEAD")
                self._last_node[node_id] = gone
                self.rec.ray_nodes.append(gone)
                self.reporter.note(t, f"raylet of {prev.pod} gone")
        items = [(d.shape.get(CPU) / 1000, d.count, d.selectors) for d in state.demands]
        tasks = sum(d.count for d in state.demands)
        cpu = sum(c * n for c, n, _ in items)
        by_group = demand_by_group(items, self.rec.groups)
        key = (tasks, cpu, tuple(sorted(by_group.items())))
        if key != self._last_demand:
            self._last_demand = key
            self.rec.demand.append(DemandSample(t, tasks, cpu, by_group))
        self.reporter.demand(t, tasks, cpu)

    def _sample_tasks(self, t: float) -> None:
        if self.workload is None:
            return
        for task in self.rec.tasks.values():
            if task.started is not None:
                continue
            got = self.workload.started(task.name)
            if got is None:
                continue
            task.started = float(got["started"]) - self.rec.started_at
            task.node_id = str(got["node"])
            node = self.rec.pod_of_node(task.node_id)
            where = f"pod {node.pod}" if node else f"node {task.node_id[:8]}"
            self.reporter.note(t, f"task {task.name} started on {where}'s raylet")

    def on_driver(self, msg: dict[str, Any]) -> None:
        task = self.rec.tasks.get(str(msg.get("name", "")))
        if task is None:
            return
        if "submitted" in msg:
            task.submitted = float(msg["submitted"]) - self.rec.started_at
        elif "error" in msg:
            task.error = str(msg["error"])
            self.reporter.note(self.now(), f"task {task.name} failed: {task.error}")
        elif "finished" in msg:
            task.finished = float(msg["finished"]) - self.rec.started_at


def group_info(group: dict[str, Any]) -> GroupInfo:
    """A KubeRay worker group → the labels its raylets carry and its template size."""
    from autoscaler.quantity import to_bytes, to_milli

    res = group["template"]["spec"]["containers"][0]["resources"]
    labels = {"ray.io/node-group": group["groupName"], **(group.get("labels") or {})}
    return GroupInfo(group["groupName"], labels, to_milli(res["requests"]["cpu"]), to_bytes(res["requests"]["memory"]),
                     int(res["limits"].get("nvidia.com/gpu", 0)))


def _same(a: PodSample, b: PodSample) -> bool:
    return (a.phase, a.cpu, a.memory, a.actual_cpu, a.actual_memory, a.memory_limit, a.unschedulable,
            a.deleting) == (b.phase, b.cpu, b.memory, b.actual_cpu, b.actual_memory, b.memory_limit,
                            b.unschedulable, b.deleting)


# -- the demo ------------------------------------------------------------------------------------------
class Demo:
    def __init__(self, args: argparse.Namespace, mode: str) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="rva-demo-"))
        self.rec = Recording(cluster=CLUSTER, started_at=time.time())
        self.reporter = Reporter(mode, self.rec, PHASES)
        self.workload = Workload(self.tmp / "workload", self._on_driver)
        self.capture = Capture(self.rec, self.reporter, self.workload)
        self.agent: asyncio.subprocess.Process | None = None
        self.agent_port = _free_port()
        self.cgroups: Any = None
        self.stack: Any = None
        self.mem_pod: tuple[str, str] = ("", "")  # (name, uid)
        self.working_set = CALM_USAGE  # of the memory pod's Ray container, as its (simulated) kernel reports
        self.background: list[asyncio.Task[None]] = []

    def _on_driver(self, msg: dict[str, Any]) -> None:
        self.capture.on_driver(msg)

    def groups(self) -> list[dict[str, Any]]:
        from autoscaler.localstack import worker_group

        return [
            worker_group("cpu", cpu="1", memory="1Gi", replicas=1, min_replicas=1, max_replicas=3,
                         node_selector={POOL: "cpu"}),
            worker_group("mem", cpu="1", memory="1Gi", replicas=1, min_replicas=1, max_replicas=1,
                         node_selector={POOL: "cpu"}, agent_port=self.agent_port),
            worker_group("l4-spot", gpus=1, replicas=0, max_replicas=2, labels=SPOT, node_selector={POOL: "l4-spot"}),
            worker_group("l4-ondemand", gpus=1, replicas=0, max_replicas=2, labels=ON_DEMAND,
                         node_selector={POOL: "l4-od"}),
        ]

    def build_stack(self) -> Any:
        from autoscaler.localstack import LocalStack
        from autoscaler.sim.kubelet import KubeletConfig
        from autoscaler.sim.nodepools import NodePool

        pools = [
            NodePool("cpu", cpu="8", memory="16Gi", initial_nodes=1, max_nodes=1),
            NodePool("l4-spot", instance_type="g2-standard-8", cpu="8", memory="32Gi", gpus=1,
                     accelerator="nvidia-l4", spot=True, max_nodes=2, provisioning_delay=3.0),
            NodePool("l4-od", instance_type="g2-standard-8", cpu="8", memory="32Gi", gpus=1,
                     accelerator="nvidia-l4", max_nodes=2, provisioning_delay=3.0),
        ]
        return LocalStack(pools=pools, scan_interval=1.0,
                          kubelet=KubeletConfig(startup_delay=0.3, actuation_delay=0.5, termination_delay=0.3))

    # -- steps --------------------------------------------------------------------------------------
    async def setup(self) -> None:
        from autoscaler.sim.cgroupfs import SimCgroupFs

        self.stack = stack = self.build_stack()
        stack.store.add_listener(self.capture.on_store)
        self.reporter.note(self.capture.now(), "starting: simulated Kubernetes API, Ray head")
        await stack.start()
        stack.put_policy(POLICY)
        groups = self.groups()
        self.rec.groups.extend(group_info(g) for g in groups)
        stack.create_raycluster(stack.raycluster(CLUSTER, groups))
        log.info("setup: stack up, RayCluster created at %.1fs", self.capture.now())
        # the driver connects while the pods and their raylets start
        self.workload.attach(await stack.driver(DRIVER, env={"RVA_DEMO_DIR": str(self.workload.root)}))
        if not await stack.wait_for(lambda: sorted(p["status"].get("phase") for p in stack.workers(CLUSTER))
                                    == ["Running", "Running"], 30):
            raise DemoSetupError("the worker pods did not start within 30s")
        mem = stack.workers(CLUSTER, "mem")[0]
        self.mem_pod = (mem["metadata"]["name"], mem["metadata"]["uid"])
        log.info("setup: worker pods running at %.1fs", self.capture.now())
        self.cgroups = SimCgroupFs(self.tmp / "cgroup")
        self.working_set = CALM_USAGE
        self.background.append(asyncio.create_task(self.kernel()))
        self.agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler.cli", "agent", "--mode", "sidecar", "--cgroup-root",
            str(self.tmp / "cgroup"), "--pod-uid", self.mem_pod[1], "--pod-name", self.mem_pod[0],
            "--host", "0.0.0.0", "--port", str(self.agent_port), "--interval", "0.5", "--psi-trigger", "off",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if not await stack.wait_raylets(CLUSTER, timeout=90):
            raise DemoSetupError("the worker pods' raylets did not register with the Ray head within 90s")
        log.info("setup: raylets registered at %.1fs", self.capture.now())
        self.capture.daemon = await stack.start_daemon(pressure=True)
        self.capture.start()
        try:
            await asyncio.wait_for(self.workload.ready.wait(), 90)
        except TimeoutError:
            raise DemoSetupError("the Ray driver did not connect within 90s: "
                                 + " | ".join(self.workload.stderr_tail[-5:])) from None
        self.reporter.note(self.capture.now(), "ready: daemon running, driver connected")

    async def kernel(self) -> None:
        """The simulated kernel of the memory pod, every 0.5s: its cgroup files (read by the real agent)
        and the kubelet's view of its usage. Memory stalls (PSI) while the working set is within 10% of
        the limit the kubelet applied — so they stop by themselves once the daemon grows the pod."""
        name, uid = self.mem_pod
        last: tuple[int, int, float] | None = None
        while True:
            try:
                limit = self.mem_limit()
                usage = self.working_set
                psi = PRESSURE_PSI if usage >= 0.9 * limit else 0.0
                self.cgroups.write(uid, "Guaranteed", usage=usage, limit=limit, psi_some=psi)
                if (usage, limit, psi) != last:
                    self.stack.cluster.set_memory_usage(name, usage)
                    if last is not None:
                        what = (f"simulated kernel ({name}): memory.current {fmt_mem(usage)} / memory.max "
                                f"{fmt_mem(limit)}, PSI some avg10 {psi:g}%")
                        self.rec.stimuli.append(StimulusRecord(self.capture.now(), what))
                        self.reporter.note(self.capture.now(), what)
                    last = (usage, limit, psi)
            except Exception:  # e.g. the pod is gone; the phase's timeout reports what was not observed
                log.exception("simulated kernel of %s failed", name)
            await asyncio.sleep(0.5)

    def mem_limit(self) -> int:
        from autoscaler.observe.k8s_state import pod_state

        pod = self.stack.store.get("pods", NAMESPACE, self.mem_pod[0])
        return int(pod_state(pod).actual_limits.get(MEMORY)) or 2**30

    def submit(self, name: str, cpus: float, gpus: float = 0, options: dict[str, Any] | None = None,
               alloc_mb: int = 0) -> None:
        self.rec.tasks[name] = TaskRecord(name, cpus, gpus, dict(options or {}))
        self.workload.submit(name, cpus, gpus=gpus, options=options, alloc_mb=alloc_mb,
                             hold_max=self.args.phase_timeout * 5)
        opts = ", ".join(f"{k}={v}" for k, v in (options or {}).items())
        self.reporter.note(self.capture.now(), f"submit task {name}: {cpus:g} CPU"
                                               + (f", {gpus:g} GPU" if gpus else "") + (f", {opts}" if opts else ""))

    async def phase(self, key: str, title: str, observe: Callable[[Recording], PhaseResult],
                    act: Callable[[], Coroutine[Any, Any, None]] | None = None,
                    timeout: float | None = None) -> PhaseResult:
        span = PhaseSpan(key, title, self.capture.now())
        self.rec.phases.append(span)
        self.reporter.phase_started(span)
        limit = timeout or self.args.phase_timeout
        side = asyncio.create_task(act()) if act is not None else None
        deadline = time.monotonic() + limit
        result = observe(self.rec)
        try:
            while not result.observed and time.monotonic() < deadline:
                if side is not None and side.done() and side.exception() is not None:
                    raise side.exception()  # type: ignore[misc]
                if not self.workload.alive():
                    raise DemoSetupError("the Ray driver exited: " + " | ".join(self.workload.stderr_tail[-5:]))
                await asyncio.sleep(0.25)
                self.capture.sample()
                result = observe(self.rec)
        finally:
            if side is not None:
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)
        span.end = self.capture.now()
        span.timed_out = not result.observed
        result = observe(self.rec)
        if not result.observed:
            result.what = f"not observed within {limit:.0f}s: {result.what}"
            log.warning("phase %s not observed: %s", key, result.what)
        self.reporter.phase_ended(span, result.observed, result.what)
        return result

    async def run_phases(self) -> None:
        # 1. a task that fits no pod as they are: the daemon grows the cpu pod in place
        self.submit("burst", BURST_CPUS, options={"label_selector": {"ray.io/node-group": "cpu"}})
        if not (await self.phase("grow", PHASES[0][1], observe_grow_in_place)).observed:
            return

        # 2. a memory-hungry task on the mem pod: its working set nears the limit and the kernel stalls
        async def pressure() -> None:
            while self.rec.tasks["memhog"].started is None:
                await asyncio.sleep(0.1)
            self.working_set = PRESSURE_USAGE

        self.submit("memhog", 1, options={"label_selector": {"ray.io/node-group": "mem"}}, alloc_mb=64)
        if not (await self.phase("memory", PHASES[1][1], observe_memory_grow, pressure)).observed:
            return

        # 3. spot L4 is out of stock; the task asks for spot with an on-demand fallback
        self.stack.cluster.open_stockout("l4-spot")
        self.reporter.note(self.capture.now(), "cloud: the l4-spot node pool is stocked out (no capacity)")
        self.submit("gpu", 1, gpus=1, options={"label_selector": SPOT, "fallback_strategy": [
            {"label_selector": ON_DEMAND}]})
        if not (await self.phase("fallback", PHASES[2][1], observe_fallback,
                                 timeout=self.args.phase_timeout * 1.5)).observed:
            return

        # 4. the work is done: everything goes idle
        async def finish() -> None:
            for name in self.rec.tasks:
                self.workload.release(name)
            self.reporter.note(self.capture.now(), "all tasks released: the cluster goes idle")
            while self.rec.tasks["memhog"].finished is None:
                await asyncio.sleep(0.1)
            self.working_set = CALM_USAGE

        await self.phase("idle", PHASES[3][1], observe_idle, finish)

    async def teardown(self) -> None:
        """Stop everything this demo started, each step bounded, in dependency order."""
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        for name in self.rec.tasks:
            with contextlib.suppress(OSError):
                self.workload.release(name)
        await _step("driver", self.workload.stop(timeout=3))
        await _step("agent", self._stop_agent())
        await _step("capture", self.capture.stop())
        if self.stack is not None:
            with contextlib.suppress(ValueError):
                self.stack.store.remove_listener(self.capture.on_store)
            await _step("stack", self.stack.stop(), timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def _stop_agent(self) -> None:
        if self.agent is None or self.agent.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.agent.terminate()
        try:
            await asyncio.wait_for(self.agent.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.agent.kill()
            await self.agent.wait()


async def _step(name: str, aw: Coroutine[Any, Any, None], timeout: float = 15) -> None:
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        log.error("teardown: %s did not finish within %.0fs", name, timeout)
    except Exception:
        log.exception("teardown: %s failed", name)
    log.info("teardown: %s took %.2fs", name, time.monotonic() - t0)


def _log_to(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler


async def run(args: argparse.Namespace, mode: str) -> dict[str, Any] | None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = args.out / f"demo-{stamp}.log"
    handler = _log_to(log_path)
    demo = Demo(args, mode)
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated = False

    def on_term() -> None:
        nonlocal terminated
        terminated = True
        if me is not None:
            me.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, on_term)
    demo.reporter.start()
    error: BaseException | None = None
    try:
        await demo.setup()
        await demo.run_phases()
    except asyncio.CancelledError:
        if not terminated:
            raise
    except DemoSetupError as e:
        error = e
    finally:
        demo.rec.ended_at = demo.capture.now()
        try:
            await asyncio.shield(demo.teardown())
        finally:
            demo.reporter.stop()
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGTERM)
            handler.close()
    if terminated:
        return None
    if error is not None and not demo.rec.phases:
        raise error
    summary = summarize(demo.rec)
    if error is not None:
        summary["error"] = str(error)
    if args.record is not None:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(demo.rec.to_dict()))
    summary["daemon_log"] = str(log_path)
    runtime = demo.stack.runtime if demo.stack is not None else None
    summary["scratch"] = {"demo": str(demo.tmp), "ray": str(runtime.root) if runtime is not None else None}
    if not args.no_png:
        from autoscaler.demo_timeline import render_timeline

        png = args.png or args.out / f"demo-{stamp}.png"
        summary["timeline_png"] = str(render_timeline(demo.rec, png))
    return summary
