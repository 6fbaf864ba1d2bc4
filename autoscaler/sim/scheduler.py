"""A small kube-scheduler: binds Pending pods to nodes or marks them Unschedulable.

Accounting per bound pod is ``max(desired unless the resize is Infeasible, allocated, actual)``
(``kubernetes-resize-vpa-kuberay.md`` §1.6). Filters run in the default plugin order
(NodeUnschedulable, TaintToleration, NodeAffinity incl. nodeSelector, NodeResourcesFit) and a pod that
fits nowhere gets ``PodScheduled=False, reason=Unschedulable`` with the scheduler's ``FitError`` text
(``0/3 nodes are available: 3 Insufficient cpu.``). Feasibility and scoring are vectorised over nodes
with numpy so a pass over thousands of pending pods stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoscaler.sim import podres
from autoscaler.sim.clock import Clock
from autoscaler.sim.events import EventRecorder, Store, rfc3339
from autoscaler.sim.podres import Vec

PodKey = tuple[str, str]
_SCHEDULE_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass
class _NodeInfo:
    name: str
    labels: dict[str, str]
    taints: list[dict[str, Any]]
    allocatable: Vec
    unschedulable: bool
    ready: bool
    pods: set[PodKey] = field(default_factory=set)


def node_matches(pod: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    """nodeSelector and required node affinity (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``,
    ``Lt``; ``matchFields`` on ``metadata.name``)."""
    spec = pod.get("spec") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    return any(_term_matches(t, name, labels) for t in terms)


def _term_matches(term: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    for e in exprs:
        if not _expr_matches(e, labels):
            return False
    return all(_expr_matches(f, {"metadata.name": name}) for f in fields)


def _expr_matches(e: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = e.get("key", ""), e.get("operator"), list(e.get("values") or [])
    has = key in labels
    if op == "In":
        return has and labels[key] in values
    if op == "NotIn":
        return not has or labels[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def untolerated_taint(pod: Mapping[str, Any], taints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first NoSchedule/NoExecute taint no toleration of the pod matches."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in taints:
        if taint.get("effect") not in _SCHEDULE_EFFECTS:
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _tolerates(tol: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    if not tol.get("key"):
        return op == "Exists"
    if tol.get("key") != taint.get("key"):
        return False
    return op == "Exists" or (tol.get("value") or "") == (taint.get("value") or "")


def accounted_requests(pod: Mapping[str, Any]) -> Vec:
    """``max(desired unless Infeasible, allocated, actual)`` per resource (KEP-1287 §Scheduler)."""
    status = pod.get("status") or {}
    infeasible = any(
        c.get("type") == "PodResizePending" and c.get("reason") == "Infeasible" for c in status.get("conditions") or ()
    )
    spec = pod.get("spec") or {}
    sidecars = {c["name"] for c in spec.get("initContainers") or () if podres.is_sidecar(c)}
    allocated: Vec = {}
    actual: Vec = {}
    for st in list(status.get("containerStatuses") or ()) + list(status.get("initContainerStatuses") or ()):
        if st in (status.get("initContainerStatuses") or ()) and st.get("name") not in sidecars:
            continue
        allocated = podres.add(allocated, podres.parse_list(st.get("allocatedResources")))
        actual = podres.add(actual, podres.parse_list((st.get("resources") or {}).get("requests")))
    total = podres.vmax(allocated, actual)
    if not infeasible or not allocated:
        total = podres.vmax(total, podres.pod_requests(pod))
    total["pods"] = 1
    return total


class Scheduler:
    """Binds pods whose ``schedulerName`` is ``default-scheduler`` (or unset)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        scoring: str = "LeastAllocated",
        record_events: bool = True,
        bind: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        if scoring not in ("LeastAllocated", "MostAllocated"):
            raise ValueError(f"unknown scoring strategy {scoring!r}")
        self.store = store
        self.clock = clock
        self.scoring = scoring
        self.recorder = EventRecorder(store, clock, "default-scheduler")
        self.recorder.enabled = record_events
        self._bind_fn = bind
        self._nodes: dict[str, _NodeInfo] = {}
        self._accounted: dict[PodKey, tuple[str, Vec]] = {}
        self._pending: dict[PodKey, None] = {}
        self._pass_scheduled = False
        self._started = False
        self.passes = 0
        self.bound = 0

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.store.add_listener(self._on_event)
        for node in self.store.list("nodes", copy=False)[0]:
            self._on_event("ADDED", "nodes", node)
        for pod in self.store.list("pods", copy=False)[0]:
            self._on_event("ADDED", "pods", pod)

    # -- events -----------------------------------------------------------------------------------
    def _on_event(self, event_type: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "nodes":
            self._node_event(event_type, obj)
        elif resource == "pods":
            self._pod_event(event_type, obj)

    def _node_event(self, event_type: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if event_type == "DELETED":
            self._nodes.pop(name, None)
            return
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
        info = _NodeInfo(
            name=name,
            labels=dict(obj["metadata"].get("labels") or {}),
            taints=list(spec.get("taints") or []),
            allocatable=podres.parse_list(status.get("allocatable")),
            unschedulable=bool(spec.get("unschedulable")),
            ready=ready,
        )
        old = self._nodes.get(name)
        if old is not None:
            info.pods = old.pods
        else:  # pods bound before the node object appeared (or re-created with the same name)
            info.pods = {k for k, (n, _v) in self._accounted.items() if n == name}
        self._nodes[name] = info
        self._kick()

    def _pod_event(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        spec = obj.get("spec") or {}
        node = spec.get("nodeName")
        prev = self._accounted.get(key)
        terminal = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if event_type == "DELETED" or (node and terminal):
            self._pending.pop(key, None)
            if prev is not None:
                self._unaccount(key)
                self._kick()
            return
        if node:
            self._pending.pop(key, None)
            vec = accounted_requests(obj)
            if prev is None or prev[0] != node or prev[1] != vec:
                freed = prev is not None and any(vec.get(k, 0) < v for k, v in prev[1].items())
                if prev is not None:
                    self._unaccount(key)
                self._accounted[key] = (node, vec)
                info = self._nodes.get(node)
                if info is not None:
                    info.pods.add(key)
                if freed:
                    self._kick()
            return
        if meta.get("deletionTimestamp") or terminal:
            self._pending.pop(key, None)
            return
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
            return
        if key not in self._pending:
            self._pending[key] = None
            self._kick()

    def _unaccount(self, key: PodKey) -> None:
        node, _vec = self._accounted.pop(key)
        info = self._nodes.get(node)
        if info is not None:
            info.pods.discard(key)

    def _kick(self) -> None:
        if self._pending and not self._pass_scheduled:
            self._pass_scheduled = True
            self.clock.call_later(0, self._pass)

    # -- scheduling pass --------------------------------------------------------------------------
    def used(self, node: str) -> Vec:
        total: Vec = {}
        info = self._nodes.get(node)
        for key in info.pods if info else ():
            total = podres.add(total, self._accounted[key][1])
        return total

    def schedule_now(self) -> None:
        """Run a pass immediately (tests)."""
        self._pass()

    def _pass(self) -> None:
        self._pass_scheduled = False
        if not self._pending:
            return
        self.passes += 1
        names = sorted(self._nodes)
        infos = [self._nodes[n] for n in names]
        pods = []
        for key in list(self._pending):
            try:
                pods.append(self.store.get("pods", key[0], key[1], copy=False))
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise
                self._pending.pop(key, None)
        resources = sorted({r for p in pods for r in podres.pod_requests(p)} | {"cpu", "memory", "pods"})
        n = len(infos)
        alloc = np.zeros((len(resources), n), dtype=np.int64)
        free = np.zeros((len(resources), n), dtype=np.int64)
        for j, info in enumerate(infos):
            used = self.used(info.name)
            for i, r in enumerate(resources):
                alloc[i, j] = info.allocatable.get(r, 0)
                free[i, j] = alloc[i, j] - used.get(r, 0)
        base_ok = np.array([i.ready and not i.unschedulable for i in infos], dtype=bool)
        sig_cache: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        order = sorted(pods, key=lambda p: -int((p.get("spec") or {}).get("priority") or 0))
        for pod in order:
            spec = pod.get("spec") or {}
            sig = json.dumps(
                [spec.get("nodeSelector"), spec.get("affinity"), spec.get("tolerations")], sort_keys=True, default=str
            )
            if sig not in sig_cache:
                taint_msgs = []
                label_ok = np.zeros(n, dtype=bool)
                taint_ok = np.zeros(n, dtype=bool)
                for j, info in enumerate(infos):
                    taint = untolerated_taint(pod, info.taints)
                    taint_ok[j] = taint is None
                    taint_msgs.append(
                        ""
                        if taint is None
                        else f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
                    )
                    label_ok[j] = node_matches(pod, info.name, info.labels)
                sig_cache[sig] = (taint_ok, label_ok, taint_msgs)
            taint_ok, label_ok, taint_msgs = sig_cache[sig]
            req = podres.pod_requests(pod)
            want = np.array([req.get(r, 0) for r in resources], dtype=np.int64)[:, None]
            fit = np.all(free >= want, axis=0) if n else np.zeros(0, dtype=bool)
            ok = base_ok & taint_ok & label_ok & fit
            if ok.any():
                cols = [resources.index("cpu"), resources.index("memory")]
                with np.errstate(divide="ignore", invalid="ignore"):
                    frac = np.where(alloc[cols] > 0, (free[cols] - want[cols]) / np.maximum(alloc[cols], 1), 0.0)
                score = frac.mean(axis=0)
                if self.scoring == "MostAllocated":
                    score = -score
                score = np.where(ok, score, -np.inf)
                j = int(np.argmax(score))
                free[:, j] -= want[:, 0]
                self._bind(pod, infos[j].name)
            else:
                self._unschedulable(pod, infos, base_ok, taint_ok, taint_msgs, label_ok, free, want, resources)

    def _bind(self, pod: dict[str, Any], node: str) -> None:
        key = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
        self._pending.pop(key, None)
        if self._bind_fn is not None:
            self._bind_fn(pod, node)
        else:
            bind_pod(self.store, self.clock, pod, node)
        self.bound += 1
        self.recorder.record(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {key[0]}/{key[1]} to {node}",
        )

    def _unschedulable(
        self,
        pod: dict[str, Any],
        infos: list[_NodeInfo],
        base_ok: np.ndarray,
        taint_ok: np.ndarray,
        taint_msgs: list[str],
        label_ok: np.ndarray,
        free: np.ndarray,
        want: np.ndarray,
        resources: list[str],
    ) -> None:
        counts: dict[str, int] = {}
        for j in np.nonzero(~base_ok)[0]:
            reason = "node(s) were unschedulable" if infos[j].unschedulable else "node(s) were not ready"
            counts[reason] = counts.get(reason, 0) + 1
        for j in np.nonzero(base_ok & ~taint_ok)[0]:
            counts[taint_msgs[j]] = counts.get(taint_msgs[j], 0) + 1
        mismatched = int(np.count_nonzero(base_ok & taint_ok & ~label_ok))
        if mismatched:
            counts["node(s) didn't match Pod's node affinity/selector"] = mismatched
        rest = base_ok & taint_ok & label_ok
        for i, r in enumerate(resources):
            if want[i, 0] > 0:
                short = int(np.count_nonzero(rest & (free[i] < want[i, 0])))
                if short:
                    counts["Too many pods" if r == "pods" else f"Insufficient {r}"] = short
        if not infos:
            message = "no nodes available to schedule pods"
        else:
            parts = sorted(f"{c} {r}" for r, c in counts.items())
            message = f"0/{len(infos)} nodes are available: {', '.join(parts)}."
        status = pod.get("status") or {}
        cur = next((c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"), None)
        if cur and cur.get("status") == "False" and cur.get("message") == message:
            return
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(self.clock.now()),
        }
        if cur and cur.get("status") == "False" and cur.get("lastTransitionTime"):
            cond["lastTransitionTime"] = cur["lastTransitionTime"]
        new_status = dict(status)
        new_status["conditions"] = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"] + [
            cond
        ]
        obj = dict(pod)
        obj["status"] = new_status
        try:
            self.store.update("pods", obj, subresource="status")
        except Exception as exc:
            if getattr(exc, "code", None) not in (404, 409):
                raise
        self.recorder.record(pod, "Warning", "FailedScheduling", message)


def bind_pod(store: Store, clock: Clock, pod: dict[str, Any], node: str) -> None:
    """What ``POST pods/<name>/binding`` does: set ``spec.nodeName`` and ``PodScheduled=True``."""
    meta = pod["metadata"]
    ns, name = meta.get("namespace") or "default", meta["name"]
    binder = getattr(store, "bind", None)
    if callable(binder):
        binder(ns, name, node)
        return
    obj = dict(pod)
    obj["spec"] = dict(pod.get("spec") or {}, nodeName=node)
    obj = store.update("pods", obj)
    status = dict(obj.get("status") or {})
    status["conditions"] = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"] + [
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": rfc3339(clock.now())}
    ]
    store.update("pods", dict(obj, status=status), subresource="status")
