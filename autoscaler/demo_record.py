"""What ``rva demo`` saw, and what it concludes from it — plain data and pure functions, no I/O.

A :class:`Recording` is filled while the demo runs (pod changes and Events from the simulated API
server's store, Ray nodes and pending demand from the daemon's own GCS reads, task start records
written by the tasks themselves). :func:`summarize` then derives every phase's verdict from those
observations only — which Events the daemon wrote, which pod sizes the kubelet applied, which raylet
a task ran on — never from what the demo script intended. The timeline PNG is drawn from the same
recording, so the unit tests can replay a recorded run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autoscaler.model import LabelSelector

GI = 2**30
MI = 2**20
#: ``[ReasonCode] sentence`` as rva writes it into Event messages.
_REASON = re.compile(r"\[([A-Za-z]+)\]\s*(.*)$", re.S)
#: The daemon's action kinds (Event reasons it writes for them).
ACTION_KINDS = ("GrowPod", "ShrinkPod", "ScaleOut", "RemovePod", "RevertResize")


# -- observations ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupInfo:
    name: str
    labels: dict[str, str]  # the Ray node labels of the group's raylets (``ray.io/node-group`` included)
    template_cpu: int  # millicores
    template_memory: int  # bytes
    gpus: int = 0


@dataclass(frozen=True)
class PodSample:
    """A worker pod as the API server stored it at ``t`` (seconds from the demo's start)."""

    t: float
    pod: str
    group: str
    phase: str  # Pending / Running / … / Deleted
    cpu: int  # spec requests (millicores)
    memory: int  # spec requests (bytes)
    actual_cpu: int  # status: what the kubelet applied
    actual_memory: int
    memory_limit: int = 0  # status limit (what the kernel enforces)
    unschedulable: bool = False
    deleting: bool = False


@dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event as written (``t`` = when it reached the store)."""

    t: float
    reason: str  # GrowPod, ResizeCompleted, ScaleOut, … (rva) or the sim's (NotTriggerScaleUp, …)
    kind: str  # involvedObject.kind
    name: str  # involvedObject.name
    message: str
    component: str  # "rva" or the simulated controller that wrote it

    @property
    def code(self) -> str:
        """The reason code in brackets (``DemandFitsInPlace``), or ''."""
        m = _REASON.search(self.message)
        return m.group(1) if m else ""

    @property
    def pod(self) -> str:
        """The pod an action is about (Pod events: the object; RayCluster events: ``pod: …``)."""
        if self.kind == "Pod":
            return self.name
        head = self.message.split(":", 1)[0]
        return head if " " not in head else ""

    @property
    def group(self) -> str:
        """The group of a ScaleOut (``<group> +N → R: …``)."""
        return self.message.split(" ", 1)[0] if self.reason == "ScaleOut" else ""

    @property
    def is_action(self) -> bool:
        """One record per daemon action: the RayCluster-level Event (Pod-level copies are skipped)."""
        return self.component == "rva" and self.reason in ACTION_KINDS and self.kind == "RayCluster"


@dataclass(frozen=True)
class RayNodeSample:
    """A raylet as the daemon's GCS read reported it (recorded when its totals or status change)."""

    t: float
    node_id: str
    pod: str  # RAY_CLOUD_INSTANCE_ID
    group: str
    cpu_total: float  # cores
    memory_total: int  # bytes
    status: str


@dataclass(frozen=True)
class DemandSample:
    """Pending Ray demand (the daemon's GCS view): CPU cores a group's label selectors could serve."""

    t: float
    tasks: int
    cpu: float
    by_group: dict[str, float]


@dataclass
class TaskRecord:
    """A demo task: submitted by the driver, its start written by the task itself on its raylet."""

    name: str
    cpus: float
    gpus: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    submitted: float | None = None
    started: float | None = None
    node_id: str = ""
    finished: float | None = None
    error: str = ""


@dataclass
class PhaseSpan:
    key: str
    title: str
    start: float
    end: float | None = None
    waited_for: str = ""  # what the demo waited to see (for the failure message)
    timed_out: bool = False


@dataclass
class StimulusRecord:
    """Something the demo did to the world (the memory pressure the simulated kernel reported, …)."""

    t: float
    what: str


@dataclass
class Recording:
    cluster: str
    started_at: float  # epoch seconds of t = 0
    groups: list[GroupInfo] = field(default_factory=list)
    pods: list[PodSample] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    ray_nodes: list[RayNodeSample] = field(default_factory=list)
    demand: list[DemandSample] = field(default_factory=list)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    phases: list[PhaseSpan] = field(default_factory=list)
    stimuli: list[StimulusRecord] = field(default_factory=list)
    ended_at: float | None = None  # seconds from the start

    # -- (de)serialisation (for tests and post-mortems) ----------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Recording:
        return Recording(
            cluster=d["cluster"], started_at=d["started_at"],
            groups=[GroupInfo(**g) for g in d.get("groups", ())],
            pods=[PodSample(**p) for p in d.get("pods", ())],
            events=[EventRecord(**e) for e in d.get("events", ())],
            ray_nodes=[RayNodeSample(**n) for n in d.get("ray_nodes", ())],
            demand=[DemandSample(**s) for s in d.get("demand", ())],
            tasks={k: TaskRecord(**v) for k, v in (d.get("tasks") or {}).items()},
            phases=[PhaseSpan(**p) for p in d.get("phases", ())],
            stimuli=[StimulusRecord(**s) for s in d.get("stimuli", ())],
            ended_at=d.get("ended_at"),
        )

    # -- queries ----------------------------------------------------------------------------------
    def phase(self, key: str) -> PhaseSpan | None:
        return next((p for p in self.phases if p.key == key), None)

    def actions(self, start: float = 0.0, end: float | None = None) -> list[EventRecord]:
        return [e for e in self.events if e.is_action and start <= e.t and (end is None or e.t <= end)]

    def pod_of_node(self, node_id: str) -> RayNodeSample | None:
        return next((n for n in self.ray_nodes if n.node_id == node_id), None)

    def pod_at(self, pod: str, t: float) -> PodSample | None:
        """The pod's last sample at or before ``t``."""
        last = None
        for s in self.pods:
            if s.pod == pod and s.t <= t:
                last = s
        return last

    def pod_first(self, pod: str) -> PodSample | None:
        return next((s for s in self.pods if s.pod == pod), None)

    def pod_gone_at(self, pod: str) -> float | None:
        return next((s.t for s in self.pods if s.pod == pod and s.phase == "Deleted"), None)

    def group_of(self, pod: str) -> str:
        s = self.pod_first(pod)
        return s.group if s else ""

    def raylet_at(self, node_id: str, t: float) -> RayNodeSample | None:
        last = None
        for n in self.ray_nodes:
            if n.node_id == node_id and n.t <= t:
                last = n
        return last

    def completed_after(self, pod: str, t: float) -> EventRecord | None:
        """rva's ResizeCompleted for ``pod`` after ``t`` (written once the daemon saw the kubelet apply it)."""
        return next((e for e in self.events if e.reason == "ResizeCompleted" and e.kind == "Pod"
                     and e.component == "rva" and e.name == pod and e.t >= t), None)


# -- verdicts -----------------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    key: str
    title: str
    observed: bool
    what: str  # one line: what happened (or what was missing)
    start: float | None = None
    end: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start


def fmt_cpu(milli: int | float) -> str:
    milli = round(milli)
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli / 1000:g}"


def fmt_mem(b: int | float) -> str:
    b = int(b)
    if b and b % GI == 0:
        return f"{b // GI}Gi"
    return f"{b / MI:.0f}Mi"


def _span(rec: Recording, key: str) -> tuple[PhaseSpan | None, float, float]:
    span = rec.phase(key)
    if span is None:
        return None, 0.0, -1.0
    end = span.end if span.end is not None else (rec.ended_at if rec.ended_at is not None else float("inf"))
    return span, span.start, end


def _missing(key: str, title: str, span: PhaseSpan | None, why: str) -> PhaseResult:
    if span is None:
        return PhaseResult(key, title, False, "phase did not run")
    return PhaseResult(key, title, False, why, span.start, span.end)


def observe_grow_in_place(rec: Recording, key: str = "grow", task: str = "burst") -> PhaseResult:
    """A pending task that fits no pod ran on a pod the daemon had grown in place for it."""
    title = "CPU burst served by in-place growth"
    span, start, _ = _span(rec, key)
    t = rec.tasks.get(task)
    if span is None or t is None or t.started is None or not t.node_id:
        return _missing(key, title, span, f"task {task!r} never started")
    node = rec.pod_of_node(t.node_id)
    if node is None:
        return _missing(key, title, span, f"task {task!r} ran on a raylet no pod owns ({t.node_id[:12]})")
    grows = [e for e in rec.actions(start, t.started) if e.reason == "GrowPod" and e.pod == node.pod
             and e.code == "DemandFitsInPlace"]
    if not grows:
        return _missing(key, title, span, f"no GrowPod [DemandFitsInPlace] on {node.pod} before the task started")
    grow = grows[0]
    before = rec.pod_at(node.pod, grow.t - 1e-6) or rec.pod_first(node.pod)
    at_start = rec.pod_at(node.pod, t.started)
    need = round(t.cpus * 1000)
    # Ray's view once the daemon resized the raylet (the GCS is polled, so look past the task's start)
    raylets = [n for n in rec.ray_nodes if n.node_id == t.node_id and n.t >= grow.t]
    raylet = next((n for n in raylets if n.cpu_total * 1000 >= need), raylets[-1] if raylets else None)
    assert before is not None and at_start is not None
    existed = before.t <= grow.t and before.phase == "Running"
    # the kubelet had applied the grow when the task started, and the task needs more than the pod had
    fits_only_grown = before.actual_cpu < need <= at_start.actual_cpu
    done = rec.completed_after(node.pod, grow.t)
    facts = {
        "pod": node.pod, "group": node.group,
        "cpu_before": fmt_cpu(before.actual_cpu), "cpu_after": fmt_cpu(at_start.actual_cpu),
        "memory": fmt_mem(at_start.actual_memory),
        "reason": grow.message.split(": ", 1)[-1],
        "grow_at_s": round(grow.t, 2), "resize_completed_at_s": round(done.t, 2) if done else None,
        "task": {"name": t.name, "cpus": t.cpus, "submitted_s": _r(t.submitted), "started_s": _r(t.started),
                 "node_id": t.node_id, "pod": node.pod},
        "raylet_cpu_after_grow": raylet.cpu_total if raylet else None,
        "same_pod": existed, "pending_to_running_s": _r(t.started - t.submitted) if t.submitted else None,
    }
    ok = existed and fits_only_grown and done is not None
    what = (f"{node.pod}: {facts['cpu_before']} → {facts['cpu_after']} CPU in place; "
            f"{t.cpus:g}-CPU task started on its raylet {facts['pending_to_running_s']}s after submission")
    if not ok:
        what = f"grown pod did not serve the task ({what})"
    return PhaseResult(key, title, ok, what, start, span.end, facts)


def observe_memory_grow(rec: Recording, key: str = "memory", task: str = "memhog") -> PhaseResult:
    """The daemon grew a pod's memory because its agent reported pressure."""
    title = "memory pressure → memory grown"
    span, start, end = _span(rec, key)
    if span is None:
        return _missing(key, title, span, "phase did not run")
    grows = [e for e in rec.actions(start, end) if e.reason == "GrowPod" and e.code == "MemoryPressure"]
    if not grows:
        return _missing(key, title, span, "no GrowPod [MemoryPressure] from the daemon")
    grow = grows[0]
    pod = grow.pod
    before = rec.pod_at(pod, grow.t - 1e-6)
    done = rec.completed_after(pod, grow.t)
    after = rec.pod_at(pod, done.t) if done else None
    t = rec.tasks.get(task)
    node = rec.pod_of_node(t.node_id) if t and t.node_id else None
    facts: dict[str, Any] = {
        "pod": pod, "group": rec.group_of(pod),
        "memory_before": fmt_mem(before.actual_memory) if before else None,
        "memory_after": fmt_mem(after.actual_memory) if after else None,
        "memory_limit_before": fmt_mem(before.memory_limit) if before else None,
        "memory_limit_after": fmt_mem(after.memory_limit) if after else None,
        "reason": grow.message.split(": ", 1)[-1],
        "grow_at_s": round(grow.t, 2), "resize_completed_at_s": round(done.t, 2) if done else None,
        "pressure": [s.what for s in rec.stimuli if start <= s.t <= grow.t][-1:],
    }
    if t is not None:
        facts["task"] = {"name": t.name, "started_s": _r(t.started), "node_id": t.node_id,
                         "pod": node.pod if node else None}
    ok = (before is not None and after is not None and after.actual_memory > before.actual_memory
          and after.memory_limit > before.memory_limit)
    what = (f"{pod}: memory {facts['memory_before']} → {facts['memory_after']} "
            f"(limit {facts['memory_limit_before']} → {facts['memory_limit_after']}) after the agent reported pressure")
    if not ok:
        what = f"memory grow not applied ({what})"
    return PhaseResult(key, title, ok, what, start, span.end, facts)


def observe_fallback(rec: Recording, key: str = "fallback", task: str = "gpu") -> PhaseResult:
    """The primary (spot) group was tried, marked stocked out and cleaned up; the fallback group ran the task."""
    title = "L4 spot stocked out → on-demand fallback"
    span, start, end = _span(rec, key)
    t = rec.tasks.get(task)
    if span is None:
        return _missing(key, title, span, "phase did not run")
    acts = rec.actions(start, end)
    fallback = next((e for e in acts if e.reason == "ScaleOut" and e.code == "FallbackGroup"), None)
    if fallback is None:
        return _missing(key, title, span, "no ScaleOut [FallbackGroup]")
    primary = next((e for e in acts if e.reason == "ScaleOut" and e.group != fallback.group and e.t <= fallback.t),
                   None)
    cleanup = [e for e in acts if e.reason == "RemovePod" and e.code == "StockoutCleanup"]
    if t is None or t.started is None or not t.node_id:
        return _missing(key, title, span, f"task {task!r} never started")
    node = rec.pod_of_node(t.node_id)
    ran_in = node.group if node else ""
    cleaned = [e.pod for e in cleanup]
    gone = {p: rec.pod_gone_at(p) for p in cleaned}
    stuck_group = rec.group_of(cleaned[0]) if cleaned else ""
    task_facts = {"name": t.name, "options": t.options, "started_s": _r(t.started), "node_id": t.node_id,
                  "pod": node.pod if node else None, "group": ran_in}
    facts: dict[str, Any] = {
        "primary_group": primary.group if primary else None, "fallback_group": fallback.group,
        "primary_scale_out_at_s": round(primary.t, 2) if primary else None,
        "primary_scale_out": primary.message if primary else None,
        "stuck_pods_removed": cleaned, "stuck_pods_gone_at_s": {p: _r(v) for p, v in gone.items()},
        "cleanup_reason": cleanup[0].message.split(": ", 1)[-1] if cleanup else None,
        "fallback_at_s": round(fallback.t, 2), "fallback": fallback.message,
        "task": task_facts,
    }
    ok = (primary is not None and bool(cleaned) and all(v is not None for v in gone.values())
          and stuck_group == primary.group and ran_in == fallback.group)
    what = (f"{facts['primary_group']} +1 stuck Unschedulable → stocked out, {len(cleaned)} stuck pod(s) removed; "
            f"{fallback.group} scaled [FallbackGroup]; task ran on {task_facts['pod']}")
    if not ok:
        what = f"fallback incomplete ({what})"
    return PhaseResult(key, title, ok, what, start, span.end, facts)


def observe_idle(rec: Recording, key: str = "idle") -> PhaseResult:
    """Once idle, a grown pod was shrunk in place and an idle pod drained and removed."""
    title = "idle: shrink, then drained removal"
    span, start, end = _span(rec, key)
    if span is None:
        return _missing(key, title, span, "phase did not run")
    acts = rec.actions(start, end)
    shrinks = [e for e in acts if e.reason == "ShrinkPod"]
    removals = [e for e in acts if e.reason == "RemovePod" and e.code == "IdleTimeout"]
    shrunk = []
    for e in shrinks:
        before = rec.pod_at(e.pod, e.t - 1e-6)
        done = rec.completed_after(e.pod, e.t)
        after = rec.pod_at(e.pod, done.t) if done else None
        shrunk.append({
            "pod": e.pod, "group": rec.group_of(e.pod), "at_s": round(e.t, 2), "reason": e.message.split(": ", 1)[-1],
            "cpu_before": fmt_cpu(before.actual_cpu) if before else None,
            "cpu_after": fmt_cpu(after.actual_cpu) if after else None,
            "memory_before": fmt_mem(before.actual_memory) if before else None,
            "memory_after": fmt_mem(after.actual_memory) if after else None,
            "applied": bool(before and after and (after.actual_cpu < before.actual_cpu
                                                  or after.actual_memory < before.actual_memory)),
        })
    removed = [{"pod": e.pod, "group": rec.group_of(e.pod), "at_s": round(e.t, 2),
                "reason": e.message.split(": ", 1)[-1], "gone_at_s": _r(rec.pod_gone_at(e.pod))} for e in removals]
    facts = {"shrinks": shrunk, "removals": removed}
    ok_shrink = any(s["applied"] for s in shrunk)
    ok_remove = any(r["gone_at_s"] is not None for r in removed)
    if ok_shrink and ok_remove:
        s, r = next(s for s in shrunk if s["applied"]), next(r for r in removed if r["gone_at_s"] is not None)
        what = (f"{s['pod']} shrunk {s['cpu_before']} → {s['cpu_after']} CPU; "
                f"{r['pod']} drained and removed ({len(removed)} removal(s))")
        return PhaseResult(key, title, True, what, start, span.end, facts)
    missing = [m for m, ok in (("no applied ShrinkPod", ok_shrink), ("no drained RemovePod [IdleTimeout]", ok_remove))
               if not ok]
    return PhaseResult(key, title, False, "; ".join(missing), start, span.end, facts)


PHASE_OBSERVERS = (observe_grow_in_place, observe_memory_grow, observe_fallback, observe_idle)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def totals(rec: Recording) -> dict[str, Any]:
    actions: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for e in rec.actions():
        actions[e.reason] = actions.get(e.reason, 0) + 1
        key = f"{e.reason}/{e.code}"
        reasons[key] = reasons.get(key, 0) + 1
    created = sorted({s.pod for s in rec.pods})
    deleted = sorted({s.pod for s in rec.pods if s.phase == "Deleted"})
    return {
        "actions": actions, "actions_by_reason": reasons,
        "resizes_completed": sum(1 for e in rec.events if e.reason == "ResizeCompleted"),
        "pods_seen": len(created), "pods_deleted": len(deleted),
        "raylets_seen": len({n.node_id for n in rec.ray_nodes}),
        "tasks_started": sum(1 for t in rec.tasks.values() if t.started is not None),
        "tasks_finished": sum(1 for t in rec.tasks.values() if t.finished is not None),
        "peak_pending_cpu": max((d.cpu for d in rec.demand), default=0.0),
    }


def summarize(rec: Recording, observers: Sequence[Any] = PHASE_OBSERVERS) -> dict[str, Any]:
    results: list[PhaseResult] = [obs(rec) for obs in observers]
    for r in results:
        span = rec.phase(r.key)
        if span is not None and span.timed_out and not r.observed and r.duration is not None:
            r.what = f"not observed within {r.duration:.0f}s: {r.what}"
    by_key = {r.key: r for r in results}

    def seen(key: str) -> bool:
        return key in by_key and by_key[key].observed

    idle = by_key.get("idle")
    idle_facts = idle.facts if idle else {}
    return {
        "ok": all(r.observed for r in results),
        "cluster": rec.cluster,
        "duration_s": _r(rec.ended_at),
        "observed": {
            "in_place_grow_ran_pending_task": seen("grow"),
            "pressure_memory_grow": seen("memory"),
            "spot_to_on_demand_fallback": seen("fallback"),
            "shrink": any(s.get("applied") for s in idle_facts.get("shrinks", ())),
            "removal": any(r.get("gone_at_s") is not None for r in idle_facts.get("removals", ())),
        },
        "phases": [
            {"key": r.key, "title": r.title, "observed": r.observed, "what": r.what, "start_s": _r(r.start),
             "end_s": _r(r.end), "duration_s": _r(r.duration), "facts": r.facts}
            for r in results
        ],
        "actions": [{"t_s": round(e.t, 2), "kind": e.reason, "object": e.pod or e.group or e.name,
                     "reason": e.code, "message": e.message} for e in rec.actions()],
        "totals": totals(rec),
    }


def first_unobserved(summary: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((p for p in summary["phases"] if not p["observed"]), None)


def demand_by_group(demands: Iterable[tuple[float, int, Sequence[LabelSelector]]],
                    groups: Sequence[GroupInfo]) -> dict[str, float]:
    """Pending CPU per group: each ``(cpu cores, count, selectors)`` counts for every group whose Ray
    labels satisfy one of its selectors (primary or fallbacks; none = any group)."""
    out = {g.name: 0.0 for g in groups}
    for cpu, count, selectors in demands:
        chain = list(selectors) or [LabelSelector()]
        for g in groups:
            if any(sel.matches(g.labels) for sel in chain):
                out[g.name] += cpu * count
    return out
