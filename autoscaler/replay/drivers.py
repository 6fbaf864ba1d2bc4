"""The autoscalers a replay can run, each as a loop on the virtual clock.

* :class:`RvaDriver` — rva's own code path, as the daemon's ``ClusterWorker.run_once`` runs it: snapshot
  from the store + the (simulated) GCS state + memory pressure (simulated agents through the daemon's
  detector, :mod:`autoscaler.replay.pressure`) → stockout marking → ``PlanExecutor.complete_resizes`` →
  the real planner ``autoscaler.plan.plan`` → the real ``PlanExecutor.execute`` writing through
  :class:`~autoscaler.replay.adapters.StoreApi` and :class:`~autoscaler.replay.adapters.SimRaylets`.
  One loop per ``loop_s`` (1 s: the daemon polls the GCS every second and plans on each change). A loop
  whose plan provably has no action (:mod:`autoscaler.replay.quiet`) skips the planner call.
* :class:`RayDriver` — Ray 2.60's v2 ``ResourceDemandScheduler`` (through ``autoscaler.peers``) on
  Ray's ``AUTOSCALER_UPDATE_INTERVAL_S`` = 5 s loop, IPPR off (``horizontal``) or on (``ray-ippr``),
  applying its reply as the KubeRay autoscaler v2 does:

  - launches → ``replicas`` + n (refused while the group has pending deletes, as v2 does);
  - IPPR resizes → ``pods/resize`` straight to the group maximum (requests keep the limit−request gap),
    the raylet resized on a later loop once the kubelet applied it (``sync_with_raylets``); a resize
    still Deferred/Infeasible after ``resize-timeout`` (or Infeasible at once) is rolled back and the pod
    gets the kubelet's suggested cap (current + node free) — ``suggested_max_*`` — for later loops;
  - idle termination (``idle_timeout_s``, KubeRay default 60 s) → GCS drain, then ``replicas`` − n with
    ``workersToDelete``; the list is cleared once those pods are gone.

  The pod writes go through the same ``PodResizer``/``ReplicaWriter`` as rva's (so both autoscalers pay
  the same API and kubelet costs); what to write is Ray's decision alone.

Both read the cluster as the daemon does, from watch-cache-like views (:class:`StoreIndex`) through the
daemon's own incremental :class:`~autoscaler.observe.snapshot.SnapshotBuilder`, and Ray's state through
:class:`RayStateReader` — only what changed since the last loop is converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoscaler.actions import GrowPod
from autoscaler.actuate.events import EventRecorder
from autoscaler.actuate.executor import PlanExecutor
from autoscaler.actuate.replicas import ReplicaWriter
from autoscaler.actuate.resize import PodResizer, is_complete
from autoscaler.metrics import Metrics
from autoscaler.model import CPU, MEMORY, PodState, ResizeState, Resources, Snapshot, ray_capacity
from autoscaler.observe.snapshot import SnapshotBuilder
from autoscaler.peers.ray_request import IPPRSettings, build_request
from autoscaler.peers.ray_scheduler import read_reply, to_actions
from autoscaler.plan import plan as make_plan
from autoscaler.policy import Policy
from autoscaler.replay.adapters import RayStateReader, SimRaylets, StoreApi, StoreIndex, WriteLog
from autoscaler.replay.pressure import SimAgents
from autoscaler.replay.quiet import PlanGate, same_inputs
from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.ray_runtime import SimulatedRay
from autoscaler.sim.store import ObjectStore
from autoscaler.stockouts import mark_stockouts


@dataclass
class DriverStats:
    loops: int = 0
    plans: int = 0  # decision-code calls (rva: loops minus the skipped quiet ones)
    skipped: int = 0  # rva loops whose plan provably had no action (see autoscaler.replay.quiet)
    snapshot_seconds: float = 0.0  # wall time reading the cluster (snapshot, stockouts, completing resizes)
    plan_seconds: float = 0.0  # wall time in the decision code (planner / Ray scheduler)
    act_seconds: float = 0.0  # wall time carrying the decisions out
    grows: int = 0
    shrinks: int = 0
    reverts: int = 0
    scale_outs: int = 0
    pods_requested: int = 0
    removals: int = 0
    failures: int = 0
    actions: list[tuple[float, str, str]] = field(default_factory=list)  # (t, kind, detail)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if k.endswith("_seconds") else v for k, v in self.__dict__.items() if k != "actions"}


class _Base:
    def __init__(
        self, clock: VirtualClock, store: ObjectStore, ray: SimulatedRay, cluster: str, namespace: str = "default",
        server_minor: int = 34,
    ) -> None:
        self.clock = clock
        self.store = store
        self.ray = ray
        self.cluster = cluster
        self.namespace = namespace
        self.server_minor = server_minor
        self.log = WriteLog()
        self.api = StoreApi(store, clock.now, self.log)
        self.raylets = SimRaylets(ray, clock.now, self.log)
        self.stats = DriverStats()
        self.t0 = clock.now()
        self.index = StoreIndex(store, cluster)
        self.ray_reader = RayStateReader(ray)
        self.builder = SnapshotBuilder()
        self.built_from: tuple[object, ...] | None = None  # sources() of the last snapshot()
        self.agents: SimAgents | None = None  # rva's memory-pressure agents and detector (none for Ray's)

    def sources(self) -> tuple[object, ...] | None:
        """Change counters of everything :meth:`snapshot` reads (see :class:`~autoscaler.replay.quiet.PlanGate`):
        the RayCluster object (the store keeps one per version), how many pod and node writes the store made,
        how many times Ray added, removed or resized a node, whether Ray has pending demand, and the pressure
        agents' version (it changes with the planner's view of the pressure). While they stay the same, a
        snapshot differs only in Ray's available resources, idle times and RUNNING/IDLE status, and in the
        pressure values no planner rule reads while no window counts (see :mod:`autoscaler.replay.quiet`)."""
        rc = self._raycluster()
        return None if rc is None else self._sources(rc)

    def _raycluster(self) -> dict[str, Any] | None:
        try:
            return self.store.get("rayclusters", self.namespace, self.cluster, copy=False)
        except Exception:
            return None

    def _sources(self, rc: dict[str, Any]) -> tuple[object, ...]:
        agents = self.agents.version if self.agents is not None else -1
        return (rc, self.index.writes, self.ray.structure_version, self.ray.pending() == 0, agents)

    def snapshot(self, now: float, stocked_out_until: Mapping[str, float] | None = None) -> Snapshot | None:
        rc = self._raycluster()
        if rc is None:
            return None
        self.built_from = self._sources(rc)
        index = self.index
        by_node = {node: pods.values() for node, pods in index.by_node.items()}
        pressure = self.agents.pressure if self.agents is not None else {}
        return self.builder.build(rc, index.workers.values(), index.nodes, by_node, self.ray_reader.read(),
                                  pressure, dict(stocked_out_until or {}), now, self.server_minor)

    def _note(self, kind: str, detail: str) -> None:
        self.stats.actions.append((self.clock.now() - self.t0, kind, detail))


class RvaDriver(_Base):
    """rva: the real planner and the real executor, one loop per ``loop_s``, with memory pressure from
    simulated agents through the daemon's detector (:mod:`autoscaler.replay.pressure`, sampled every loop,
    skipped or not). ``skip_quiet``: skip the planner on loops where it provably decides nothing
    (:mod:`autoscaler.replay.quiet`); ``verify_skips``: plan on those loops anyway and raise if the plan
    has an action (tests)."""

    name = "rva"

    def __init__(
        self, *args: Any, policy: Policy, loop_s: float = 1.0, skip_quiet: bool = True, verify_skips: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.policy = policy
        self.loop_s = loop_s
        self.gate = PlanGate() if skip_quiet else None
        self.verify_skips = verify_skips
        self.stocked_out_until: dict[str, float] = {}
        self.agents = SimAgents(self.ray, self.index)
        self.executor = PlanExecutor(
            cluster=self.cluster, namespace=self.namespace, resizer=PodResizer(self.api),
            replicas=ReplicaWriter(self.api), raylets=self.raylets, events=EventRecorder(self.api, "rva-sim"),
            metrics=Metrics(), may_act=lambda: True,
        )

    async def run(self) -> None:
        while True:
            await self.run_once()
            await self.clock.sleep(self.loop_s)

    async def _verify_skip(self, now: float, built: bool, snap: Snapshot | None = None) -> None:
        """A skipped loop, done in full: what it would have read equals the planned snapshot's inputs, and
        neither stockout marking, nor completing resizes, nor the planner would have done anything."""
        where = f"t={now - self.t0:.1f}: skipped loop"
        if not built:
            snap = self.snapshot(now, self.stocked_out_until)
            assert snap is not None
            _, _, newly = mark_stockouts(snap, self.policy, now, self.stocked_out_until)
            if newly:
                raise AssertionError(f"{where} would have marked stockouts {newly}")
            if any(p.in_flight is not None for p in snap.pods):
                raise AssertionError(f"{where} would have completed resizes")
        assert snap is not None and self.gate is not None
        planned = self.gate.planned_snapshot
        if planned is None or not same_inputs(planned, snap):
            raise AssertionError(f"{where} read inputs that differ from the planned snapshot's")
        check = make_plan(snap, self.policy, now)
        if check.actions:
            raise AssertionError(f"{where} but planning gives {check.actions}")

    async def run_once(self) -> None:
        import time

        t0 = time.perf_counter()
        now = self.clock.now()
        if self.agents is not None:  # the agents sample every second, whatever the loop does
            self.agents.sample(self.policy, now)
        if self.gate is not None:
            sources = self.sources()
            if sources is not None and self.gate.quiet(sources, self.policy, now):
                self.stats.loops += 1
                self.stats.skipped += 1
                if self.verify_skips:
                    await self._verify_skip(now, built=False)
                self.stats.snapshot_seconds += time.perf_counter() - t0
                return
        snap = self.snapshot(now, self.stocked_out_until)
        if snap is None:
            return
        self.stats.loops += 1
        snap, self.stocked_out_until, _ = mark_stockouts(snap, self.policy, now, self.stocked_out_until)
        done = await self.executor.complete_resizes(snap, now)
        if done.done:
            snap = self.snapshot(now, self.stocked_out_until) or snap
        t1 = time.perf_counter()
        self.stats.snapshot_seconds += t1 - t0
        if self.gate is not None and self.gate.may_skip(snap, self.policy, now, self.built_from):
            self.stats.skipped += 1
            if self.verify_skips:
                await self._verify_skip(now, built=True, snap=snap)
            return
        plan = make_plan(snap, self.policy, now)
        t2 = time.perf_counter()
        self.stats.plans += 1
        self.stats.plan_seconds += t2 - t1
        if self.gate is not None:
            self.gate.planned(snap, self.policy, now, plan, self.built_from)
        if not plan.actions:
            return
        report = await self.executor.execute(snap, plan, now)
        self.stats.act_seconds += time.perf_counter() - t2
        self.stats.failures += len(report.failed)
        whys = {}
        for a in plan.actions:
            target = getattr(a, "pod", None) or getattr(a, "group", "")
            whys[(type(a).__name__, target)] = getattr(a, "why", "")
        for line in report.done:
            kind, _, rest = line.partition(" ")
            target = rest.split(" ", 1)[0]
            if kind == "GrowPod":
                self.stats.grows += 1
            elif kind == "ShrinkPod":
                self.stats.shrinks += 1
            elif kind == "RevertResize":
                self.stats.reverts += 1
            elif kind == "ScaleOut":
                self.stats.scale_outs += 1
                self.stats.pods_requested += int(line.rsplit("+", 1)[-1])
            elif kind == "RemovePod":
                self.stats.removals += 1
            self._note(kind, f"{rest}: {whys.get((kind, target), '')}")


class RayDriver(_Base):
    """Ray 2.60's v2 autoscaler: ``ippr=None`` is horizontal only; with settings, IPPR is on."""

    def __init__(
        self, *args: Any, ippr: IPPRSettings | None, idle_timeout_s: float = 60.0, loop_s: float = 5.0, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        import logging

        from ray.autoscaler.v2.scheduler import ResourceDemandScheduler

        # Ray logs every skipped idle termination at INFO, every 5 virtual seconds: keep replays quiet.
        logging.getLogger("ray.autoscaler.v2.scheduler").setLevel(logging.WARNING)
        self.ippr = ippr
        self.name = "ray-ippr" if ippr is not None else "horizontal"
        self.idle_timeout_s = idle_timeout_s
        self.loop_s = loop_s
        self.scheduler = ResourceDemandScheduler()
        self.resizer = PodResizer(self.api)
        self.replicas = ReplicaWriter(self.api)
        self.suggested: dict[str, tuple[float, int]] = {}  # pod → (max cpu cores, max memory bytes)
        self.failed_at: dict[str, float] = {}  # pods Ray excluded from IPPR after a failed resize

    async def run(self) -> None:
        while True:
            await self.run_once()
            await self.clock.sleep(self.loop_s)

    async def run_once(self) -> None:
        import time

        now = self.clock.now()
        snap = self.snapshot(now)
        if snap is None:
            return
        self.stats.loops += 1
        if self.ippr is not None and await self._sync_ippr(snap, now):
            snap = self.snapshot(now) or snap
        await self._clear_deleted(snap)
        request, index = build_request(snap, self.ippr, now=now)
        request.idle_timeout_s = self.idle_timeout_s
        for pod, status in request.ippr_statuses.items():
            if pod in self.suggested:
                status.suggested_max_cpu, status.suggested_max_memory = self.suggested[pod]
            if pod in self.failed_at:
                status.last_failed_at = int(self.failed_at[pod])
        t0 = time.perf_counter()
        reply = self.scheduler.schedule(request)
        elapsed = time.perf_counter() - t0
        self.stats.plans += 1
        self.stats.plan_seconds += elapsed
        result = read_reply(reply, index, snap, elapsed)
        pods = {p.name: p for p in snap.pods}
        groups = {g.name: g for g in snap.groups}

        for action in to_actions(result, snap):
            if isinstance(action, GrowPod):
                pod = pods[action.pod]
                await self._write(self.resizer.resize(pod, action.requests, action.limits, "RayIPPR", now))
                self.stats.grows += 1
                self._note("GrowPod", f"{pod.name} → {action.limits or action.requests}")

        victims: dict[str, list[str]] = {}
        for term in reply.to_terminate:
            pod = pods.get(term.instance_id)
            if pod is None or pod.ray is None:
                continue
            if self.raylets.drain_now(pod.ray.node_id, "idle termination").accepted:
                victims.setdefault(pod.group, []).append(pod.name)
        for group_name, names in victims.items():
            g = groups[group_name]
            await self._write(self.replicas.set_replicas(
                self.namespace, self.cluster, g.index, g.name, max(g.min_replicas, g.replicas - len(names)),
                [*g.workers_to_delete, *names]))
            self.stats.removals += len(names)
            self._note("RemovePod", f"{group_name}: {', '.join(names)}")

        for name, count in result.launches.items():
            g = groups[name]
            if name in victims or any(p.name in g.workers_to_delete for p in snap.pods):
                continue  # v2: "waiting for them to be deleted before creating new workers"
            hosts = max(g.num_of_hosts, 1)
            target = min(g.max_replicas, g.replicas + -(-count // hosts))
            if target <= g.replicas:
                continue
            await self._write(self.replicas.set_replicas(
                self.namespace, self.cluster, g.index, g.name, target, g.workers_to_delete))
            self.stats.scale_outs += 1
            self.stats.pods_requested += target - g.replicas
            self._note("ScaleOut", f"{name} +{target - g.replicas}")

    async def _write(self, coro: Any) -> Any:
        try:
            return await coro
        except Exception as e:  # an API refusal is Ray's problem to retry next loop
            self.stats.failures += 1
            self._note("failed", str(e)[:200])
            return None

    async def _sync_ippr(self, snap: Snapshot, now: float) -> bool:
        """Ray's ``sync_with_raylets`` and timeout handling for resizes it started. True if anything changed."""
        assert self.ippr is not None
        nodes = {n.name: n for n in snap.nodes}
        changed = False
        for pod in snap.pods:
            rec = pod.in_flight
            if rec is None:
                continue
            if is_complete(pod):
                if pod.ray is not None:
                    before = ray_capacity(rec.previous_requests, rec.previous_limits)
                    after = ray_capacity(rec.target_requests, rec.target_limits)
                    target = (pod.ray.total.only(CPU, MEMORY) + (after - before)).maximum(Resources())
                    await self.raylets.resize(pod.ray.node_id, target)
                await self._write(self.resizer.finish(pod, now))
                changed = True
                continue
            stuck = pod.resize_state in (ResizeState.DEFERRED, ResizeState.INFEASIBLE)
            timed_out = now - rec.started_at >= self.ippr.resize_timeout_s
            if (stuck and (timed_out or pod.resize_state is ResizeState.INFEASIBLE)) or (
                timed_out and pod.resize_state is not ResizeState.NONE
            ):
                node = nodes.get(pod.node_name or "")
                self._suggest(pod, node.free() if node is not None else Resources())
                if timed_out:
                    self.failed_at[pod.name] = now
                await self._write(self.resizer.revert(pod, rec.previous_requests, rec.previous_limits, now))
                self.stats.reverts += 1
                self._note("RevertResize", f"{pod.name} ({pod.resize_state.value})")
                changed = True
        return changed

    def _suggest(self, pod: PodState, free: Resources) -> None:
        """The cap Ray derives from the kubelet's message: what the pod has plus what the node has free."""
        cur = ray_capacity(pod.actual_requests or pod.requests, pod.actual_limits or pod.limits)
        cpu = (cur.get(CPU) + max(free.get(CPU), 0)) / 1000
        mem = cur.get(MEMORY) + max(free.get(MEMORY), 0)
        self.suggested[pod.name] = (cpu, mem)

    async def _clear_deleted(self, snap: Snapshot) -> None:
        """v2 clears ``workersToDelete`` once every listed pod is gone."""
        present = {p.name for p in snap.pods}
        for g in snap.groups:
            if g.workers_to_delete and not any(n in present for n in g.workers_to_delete):
                await self._write(self.replicas.set_replicas(
                    self.namespace, self.cluster, g.index, g.name, g.replicas, []))

