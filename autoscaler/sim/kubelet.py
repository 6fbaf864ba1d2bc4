"""Simulated kubelets: pod start/stop, allocation accounting and in-place resize, for every node.

One ``Kubelet`` object plays the kubelet of every registered node (state is kept per node, so the
behaviour is the per-node one). It reacts to store events through a coalescing work queue and
writes pod status only through ``update(..., subresource="status")``.

Resize follows ``kubernetes-resize-vpa-kuberay.md`` §1.4-1.5 (``allocation_manager.go``):
Infeasible checks in order (static pod, swap, CPU/Memory Manager static policy for Guaranteed pods,
total request > allocatable with memory first), then Deferred (does not fit beside the other pods'
*allocated* requests, cpu before memory as in ``noderesources.Fits``), else accepted. Deferred and
errored resizes wait in a per-node retry queue sorted like ``sortPendingResizes``; the queue is retried
on pod add/remove/resize events and by a ticker (first 30 s after the node registers, then 3 min
after every pass).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from autoscaler.sim import podres
from autoscaler.sim.clock import Clock, TimerHandle
from autoscaler.sim.events import EventRecorder, Store, rfc3339
from autoscaler.sim.kubelet_state import (
    RESIZE_IN_PROGRESS,
    RESIZE_PENDING,
    KubeletContainer,
    KubeletPod,
    PodKey,
    container_id,
    render_status,
)
from autoscaler.sim.podres import Vec


@dataclass
class KubeletConfig:
    """Per-node kubelet settings (node pools pass their own)."""

    actuation_delay: float = 2.0  # allocation accepted → runtime reports the new resources
    startup_delay: float = 3.0  # pod bound → containers running
    termination_delay: float = 1.0  # deletionTimestamp set → pod object removed (capped by grace)
    cpu_manager_policy: str = "none"  # "none" | "static"
    memory_manager_policy: str = "None"  # "None" | "Static"
    swap: bool = False  # node has swap on (LimitedSwap) for Burstable pods
    version: str = "1.34"  # Kubernetes minor; 1.35 uses the newest Infeasible texts
    initial_retry_delay: float = 30.0
    retry_delay: float = 180.0
    stalled: bool = False  # fault: the kubelet never reacts (conditions never appear)


class PodObserver(Protocol):
    """Hooks for the Ray runtime adapter; every method is optional in practice (no-ops allowed)."""

    def pod_started(self, pod: dict[str, Any]) -> None: ...

    def pod_resized(self, pod: dict[str, Any]) -> None: ...

    def container_restarted(self, pod: dict[str, Any], container: str, reason: str) -> None: ...

    def pod_stopped(self, key: PodKey) -> None: ...


@dataclass
class _Node:
    name: str
    allocatable: Vec
    config: KubeletConfig
    pods: set[PodKey] = field(default_factory=set)
    ticker: TimerHandle | None = None
    next_retry: float = 0.0
    pass_scheduled: bool = False
    retry_log: list[tuple[float, str, list[str]]] = field(default_factory=list)


def _desired(pod: dict[str, Any]) -> list[tuple[str, str, Vec, Vec]]:
    spec = pod.get("spec") or {}
    out = []
    for c in spec.get("initContainers") or ():
        kind = "sidecar" if podres.is_sidecar(c) else "init"
        out.append((c["name"], kind, podres.container_requests(c), podres.container_limits(c)))
    for c in spec.get("containers") or ():
        out.append((c["name"], "container", podres.container_requests(c), podres.container_limits(c)))
    return out


def _resize_policy(pod: dict[str, Any], container: str, resource: str) -> str:
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
        if c.get("name") == container:
            for p in c.get("resizePolicy") or ():
                if p.get("resourceName") == resource:
                    return str(p.get("restartPolicy") or "NotRequired")
    return "NotRequired"


def _summary(pod: dict[str, Any], generation: int, error: str) -> str:
    """``podResourceSummary`` JSON as the kubelet's event messages print it (Go field order)."""
    spec = pod.get("spec") or {}

    def alloc(c: dict[str, Any]) -> dict[str, Any]:
        res = c.get("resources") or {}
        r = {k: dict(sorted(res[k].items())) for k in ("limits", "requests") if res.get(k)}
        return {"name": c["name"], "resources": r}

    body: dict[str, Any] = {}
    if spec.get("initContainers"):
        body["initContainers"] = [alloc(c) for c in spec["initContainers"]]
    if spec.get("containers"):
        body["containers"] = [alloc(c) for c in spec["containers"]]
    body["generation"] = generation
    if error:
        body["error"] = error
    return json.dumps(body, separators=(",", ":"))


class Kubelet:
    """The kubelets of all registered nodes."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        default_config: KubeletConfig | None = None,
        config_for_node: Callable[[dict[str, Any]], KubeletConfig | None] | None = None,
        record_events: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.default_config = default_config or KubeletConfig()
        self.config_for_node = config_for_node
        self.recorder = EventRecorder(store, clock, "kubelet")
        self.recorder.enabled = record_events
        self.observers: list[Any] = []
        self._nodes: dict[str, _Node] = {}
        self._pods: dict[PodKey, KubeletPod] = {}
        self._dirty: dict[PodKey, None] = {}
        self._flush_scheduled = False
        self._writing: PodKey | None = None
        self._started = False
        self.status_writes = 0

    # -- wiring -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Register existing nodes and pods and start listening to the store."""
        if self._started:
            return
        self._started = True
        self.store.add_listener(self._on_event)
        for node in self.store.list("nodes", copy=False)[0]:
            self._register_node(node)
        for pod in self.store.list("pods", copy=False)[0]:
            if (pod.get("spec") or {}).get("nodeName") in self._nodes:
                self._mark(_key(pod))

    def _on_event(self, event_type: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "pods":
            key = _key(obj)
            if key == self._writing and event_type == "MODIFIED":
                return  # our own status write: nothing new to react to
            node = (obj.get("spec") or {}).get("nodeName")
            if node in self._nodes or key in self._pods:
                self._mark(key)
        elif resource == "nodes":
            name = obj["metadata"]["name"]
            if event_type == "DELETED":
                state = self._nodes.pop(name, None)
                if state and state.ticker:
                    state.ticker.cancel()
            elif name in self._nodes:
                self._nodes[name].allocatable = podres.parse_list((obj.get("status") or {}).get("allocatable"))
            else:
                self._register_node(obj)

    def _register_node(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        config = (self.config_for_node(node) if self.config_for_node else None) or self.default_config
        alloc = podres.parse_list((node.get("status") or {}).get("allocatable"))
        state = _Node(name, alloc, config)
        self._nodes[name] = state
        self._arm_ticker(state, config.initial_retry_delay)

    def _arm_ticker(self, node: _Node, delay: float) -> None:
        if node.ticker:
            node.ticker.cancel()
        name = node.name
        node.next_retry = self.clock.now() + delay
        node.ticker = self.clock.call_later(delay, lambda: self._retry_pass(name, "periodic_retry"))

    def _mark(self, key: PodKey) -> None:
        self._dirty[key] = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.clock.call_later(0, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._dirty:
            key = next(iter(self._dirty))
            del self._dirty[key]
            self._sync(key)

    # -- public helpers ---------------------------------------------------------------------------
    def node_config(self, node: str) -> KubeletConfig:
        return self._nodes[node].config

    def allocated(self, node: str) -> Vec:
        """Sum of the allocated requests of the pods on ``node``."""
        total: Vec = {}
        for key in self._nodes[node].pods:
            total = podres.add(total, self._pods[key].alloc_total())
        return total

    def set_memory_usage(self, namespace: str, name: str, usage: int, container: str | None = None) -> None:
        """Simulated memory usage of a container (default: the first regular one). Usage above the
        container's memory limit OOM-kills it; a usage drop may unblock an errored resize."""
        rec = self._pods.get((namespace, name))
        if rec is None or not rec.running:
            return
        target = next(
            (c for c in rec.containers if (c.name == container if container else c.kind == "container")), None
        )
        if target is None:
            return
        target.usage = int(usage)
        limit = target.act_lim.get("memory")
        if limit is not None and target.usage > limit:
            self._restart(rec, target, "OOMKilled", 137, "")
            target.usage = 0
            self._write(rec)
            return
        if rec.error:
            self._actuate(rec.key)

    def set_stalled(self, node: str, stalled: bool) -> None:
        """Fault injection: a stalled kubelet ignores its pods (no status, no resize decisions) until
        un-stalled, then catches up on every pod bound to the node."""
        self._nodes[node].config = replace(self._nodes[node].config, stalled=stalled)
        if not stalled:
            for pod in self.store.list("pods", field_selector=f"spec.nodeName={node}", copy=False)[0]:
                self._mark(_key(pod))

    def pending_order(self, node: str) -> list[str]:
        """Names of the pods waiting in ``node``'s retry queue, in retry order."""
        return [k[1] for k in self._sorted_pending(self._nodes[node])]

    def next_retry_at(self, node: str) -> float:
        """When ``node``'s periodic retry ticker fires next (30 s after start, then 3 min after a pass)."""
        return self._nodes[node].next_retry

    def retry_log(self, node: str) -> list[tuple[float, str, list[str]]]:
        """(time, trigger, pods tried in order) for every retry pass that had work."""
        return self._nodes[node].retry_log

    # -- sync -------------------------------------------------------------------------------------
    def _get(self, key: PodKey) -> dict[str, Any] | None:
        try:
            return self.store.get("pods", key[0], key[1], copy=False)
        except Exception as exc:
            if getattr(exc, "code", None) == 404:
                return None
            raise

    def _sync(self, key: PodKey) -> None:
        pod = self._get(key)
        rec = self._pods.get(key)
        if pod is None or (rec is not None and rec.uid != pod["metadata"].get("uid")):
            if rec is not None:
                self._forget(rec)
            if pod is None:
                return
            rec = None
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self._nodes.get(node_name or "")
        if node is None or node.config.stalled:
            return
        if rec is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            rec = self._admit(pod, node)
            if rec.failed:
                self._write(rec, pod)
                return
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(rec, pod)
            return
        if rec.failed:
            return
        self._handle_resize(rec, pod, node)
        rec.observed_gen = int(pod["metadata"].get("generation") or 1)
        self._write(rec, pod)

    def _admit(self, pod: dict[str, Any], node: _Node) -> KubeletPod:
        meta = pod["metadata"]
        key = _key(pod)
        containers = [
            KubeletContainer(name, kind, _image(pod, name), dict(req), dict(lim), dict(req), dict(lim))
            for name, kind, req, lim in _desired(pod)
        ]
        rec = KubeletPod(
            key=key,
            uid=meta.get("uid", ""),
            node=node.name,
            containers=containers,
            priority=int((pod.get("spec") or {}).get("priority") or 0),
            qos=(pod.get("status") or {}).get("qosClass") or podres.qos_class(pod),
            admitted_at=self.clock.now(),
        )
        rec.observed_gen = int(meta.get("generation") or 1)
        used = self.allocated(node.name)
        request = rec.alloc_total()
        failure = _insufficient(request, used, node.allocatable, ("pods", "cpu", "memory"))
        if failure:
            resource, msg = failure
            reason = "OutOfpods" if resource == "pods" else f"Out{resource}"
            rec.failed = (reason, f"Pod was rejected: {msg}")
            self._pods[key] = rec
            return rec
        self._pods[key] = rec
        node.pods.add(key)
        rec.timer = self.clock.call_later(node.config.startup_delay, lambda: self._start(key))
        self._schedule_pass(node.name, "pods_added")
        return rec

    def _start(self, key: PodKey) -> None:
        rec = self._pods.get(key)
        if rec is None or rec.terminating:
            return
        rec.timer = None
        rec.running = True
        now = self.clock.now()
        for c in rec.containers:
            # Containers start with whatever is allocated by now, so a resize accepted before the
            # start is already actuated.
            c.started_at = now
            c.act_req, c.act_lim = dict(c.req), dict(c.lim)
        if rec.in_progress:
            rec.in_progress, rec.error = False, ""
            rec.cond_times.pop(RESIZE_IN_PROGRESS, None)
        pod = self._write(rec)
        if pod is not None:
            for obs in self.observers:
                getattr(obs, "pod_started", _noop)(pod)

    def _terminate(self, rec: KubeletPod, pod: dict[str, Any]) -> None:
        if rec.terminating:
            return
        rec.terminating = True
        if rec.timer:
            rec.timer.cancel()
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        delay = self._nodes[rec.node].config.termination_delay
        if grace is not None:
            delay = min(delay, float(grace))
        for obs in self.observers:
            getattr(obs, "pod_stopped", _noop)(rec.key)
        rec.timer = self.clock.call_later(delay, lambda: self._finalize(rec.key, rec.uid))

    def _finalize(self, key: PodKey, uid: str) -> None:
        rec = self._pods.get(key)
        if rec is None or rec.uid != uid:
            return
        try:
            self.store.delete("pods", key[0], key[1], grace_period_seconds=0)
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise
        # A store with graceful deletion may keep the object until this final delete lands.
        if self._get(key) is None:
            self._forget(rec)

    def _forget(self, rec: KubeletPod) -> None:
        if rec.timer:
            rec.timer.cancel()
        self._pods.pop(rec.key, None)
        node = self._nodes.get(rec.node)
        if node is not None and rec.key in node.pods:
            node.pods.discard(rec.key)
            if not rec.terminating:
                for obs in self.observers:
                    getattr(obs, "pod_stopped", _noop)(rec.key)
            self._schedule_pass(rec.node, "pods_removed")

    # -- resize -----------------------------------------------------------------------------------
    def _handle_resize(self, rec: KubeletPod, pod: dict[str, Any], node: _Node) -> None:
        gen = int(pod["metadata"].get("generation") or 1)
        desired = _desired(pod)
        if self._matches_allocation(rec, desired):
            if rec.resize:  # the user reverted to the allocated values
                rec.resize, rec.resize_msg = "", ""
            return
        if rec.resize and rec.resize_gen == gen:
            return  # Deferred waits for the retry queue; Infeasible waits for a new spec
        self._try_allocate(rec, pod, node)
        self._schedule_pass(node.name, "pod_resized")

    @staticmethod
    def _matches_allocation(rec: KubeletPod, desired: list[tuple[str, str, Vec, Vec]]) -> bool:
        if len(desired) != len(rec.containers):
            return False
        return all(
            c.name == name and c.req == req and c.lim == lim
            for c, (name, _k, req, lim) in zip(rec.containers, desired, strict=True)
        )

    def _infeasible(self, rec: KubeletPod, pod: dict[str, Any], node: _Node, request: Vec) -> str:
        cfg = node.config
        new_texts = _minor(cfg.version) >= 35
        desired = {name: (req, lim) for name, _k, req, lim in _desired(pod)}
        cpu_changed = any(desired.get(c.name, ({}, {}))[0].get("cpu") != c.req.get("cpu") for c in rec.containers)
        mem_changed = any(desired.get(c.name, ({}, {}))[0].get("memory") != c.req.get("memory") for c in rec.containers)
        if podres.is_static_pod(pod):
            return "In-place resize of static-pods is not supported"
        if (
            cfg.swap
            and mem_changed
            and rec.qos == "Burstable"
            and any(_resize_policy(pod, c.name, "memory") != "RestartContainer" for c in rec.containers)
        ):
            return "In-place resize of containers with swap is not supported."
        if rec.qos == "Guaranteed" and cfg.cpu_manager_policy == "static" and cpu_changed:
            return (
                'Resize is infeasible for Guaranteed Pods alongside CPU Manager policy "static"'
                if new_texts
                else "Resize is infeasible for Guaranteed Pods alongside CPU Manager static policy"
            )
        if rec.qos == "Guaranteed" and cfg.memory_manager_policy == "Static" and mem_changed:
            return (
                'Resize is infeasible for Guaranteed Pods alongside Memory Manager policy "Static"'
                if new_texts
                else "Resize is infeasible for Guaranteed Pods alongside Memory Manager static policy"
            )
        for resource in ("memory", "cpu"):
            cap = node.allocatable.get(resource, 0)
            if request.get(resource, 0) > cap:
                return (
                    f"Node didn't have enough capacity: {resource}, requested: {request.get(resource, 0)}, "
                    f"capacity: {cap}"
                )
        return ""

    def _try_allocate(self, rec: KubeletPod, pod: dict[str, Any], node: _Node) -> bool:
        """One admission attempt of the desired resources; True when accepted."""
        gen = int(pod["metadata"].get("generation") or 1)
        desired = _desired(pod)
        request = podres.total_requests(
            (req for _n, kind, req, _l in desired if kind == "container"),
            ((req, kind == "sidecar") for _n, kind, req, _l in desired if kind != "container"),
        )
        reason, message = "", ""
        infeasible = self._infeasible(rec, pod, node, request)
        if infeasible:
            reason, message = "Infeasible", infeasible
        else:
            others: Vec = {}
            for key in node.pods:
                if key != rec.key:
                    others = podres.add(others, self._pods[key].alloc_total())
            failure = _insufficient(request, others, node.allocatable, ("cpu", "memory"))
            if failure:
                reason, message = "Deferred", failure[1]
        if reason:
            changed = (rec.resize, rec.resize_msg, rec.resize_gen) != (reason, message, gen)
            if not rec.resize:
                rec.cond_times[RESIZE_PENDING] = self.clock.now()
            rec.resize, rec.resize_msg, rec.resize_gen = reason, message, gen
            if changed:
                event = "ResizeInfeasible" if reason == "Infeasible" else "ResizeDeferred"
                self.recorder.record(
                    pod, "Warning", event, f"Pod resize {reason}: {_summary(pod, gen, message)}", host=node.name
                )
            return False
        # Accepted: allocation checkpoint, PodResizeInProgress with empty reason, actuation later.
        by_name = {name: (req, lim) for name, _k, req, lim in desired}
        for c in rec.containers:
            c.req, c.lim = (dict(v) for v in by_name[c.name])
        rec.resize, rec.resize_msg, rec.resize_gen = "", "", gen
        rec.cond_times.pop(RESIZE_PENDING, None)
        if not rec.in_progress:
            rec.cond_times[RESIZE_IN_PROGRESS] = self.clock.now()
        rec.in_progress, rec.in_progress_gen, rec.error = True, gen, ""
        self.recorder.record(
            pod, "Normal", "ResizeStarted", f"Pod resize started: {_summary(pod, gen, '')}", host=node.name
        )
        if rec.running:
            self._schedule_actuation(rec)
        self._schedule_pass(node.name, "pod_resized")
        return True

    def _schedule_actuation(self, rec: KubeletPod) -> None:
        if rec.timer:
            rec.timer.cancel()
        key = rec.key
        rec.timer = self.clock.call_later(self._nodes[rec.node].config.actuation_delay, lambda: self._actuate(key))

    def _actuate(self, key: PodKey) -> None:
        """The runtime applies the allocation: live update, restart, or a memory-decrease error."""
        rec = self._pods.get(key)
        if rec is None or rec.terminating or not rec.running or not rec.in_progress:
            return
        rec.timer = None
        pod = self._get(key)
        if pod is None:
            return
        errors: list[str] = []
        for c in rec.containers:
            if c.act_req == c.req and c.act_lim == c.lim:
                continue
            new_mem = c.lim.get("memory")
            old_mem = c.act_lim.get("memory")
            restart = any(
                _resize_policy(pod, c.name, r) == "RestartContainer"
                for r in ("cpu", "memory")
                if c.req.get(r) != c.act_req.get(r) or c.lim.get(r) != c.act_lim.get(r)
            )
            if not restart and new_mem is not None and (old_mem is None or new_mem < old_mem) and c.usage >= new_mem:
                errors.append(f"memory limit ({new_mem}) below current usage")
                continue
            c.act_req, c.act_lim = dict(c.req), dict(c.lim)
            if restart:
                self._restart(rec, c, "Error", 137, f"Container {c.name} resize requires restart")
        gen = rec.in_progress_gen
        if errors:
            message = "; ".join(errors)
            if rec.error != message:
                self.recorder.record(
                    pod, "Warning", "ResizeError", f"Pod resize error: {_summary(pod, gen, message)}", host=rec.node
                )
            rec.error = message
        else:
            rec.in_progress, rec.error = False, ""
            rec.cond_times.pop(RESIZE_IN_PROGRESS, None)
            self.recorder.record(
                pod, "Normal", "ResizeCompleted", f"Pod resize completed: {_summary(pod, gen, '')}", host=rec.node
            )
        written = self._write(rec, pod)
        if not errors:
            if written is not None:
                for obs in self.observers:
                    getattr(obs, "pod_resized", _noop)(written)
            self._schedule_pass(rec.node, "pod_resized")  # a completed resize may make room for others

    def _restart(self, rec: KubeletPod, c: KubeletContainer, reason: str, exit_code: int, message: str) -> None:
        now = self.clock.now()
        c.last_terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": rfc3339(c.started_at),
            "finishedAt": rfc3339(now),
            "containerID": container_id(rec, c),
        }
        if message:
            c.last_terminated["message"] = message
        c.restart_count += 1
        c.started_at = now
        c.usage = 0
        pod = self._get(rec.key)
        if pod is not None:
            for obs in self.observers:
                getattr(obs, "container_restarted", _noop)(pod, c.name, reason)

    # -- retry queue ------------------------------------------------------------------------------
    def _schedule_pass(self, node_name: str, trigger: str = "pod_updated") -> None:
        node = self._nodes.get(node_name)
        if node is None or node.pass_scheduled or not self._has_pending(node):
            return
        node.pass_scheduled = True
        self.clock.call_later(0, lambda: self._retry_pass(node_name, trigger))

    def _has_pending(self, node: _Node) -> bool:
        return any(self._pods[k].resize == "Deferred" or self._pods[k].error for k in node.pods)

    def _sorted_pending(self, node: _Node) -> list[PodKey]:
        pending = [self._pods[k] for k in node.pods if self._pods[k].resize == "Deferred" or self._pods[k].error]

        def sort_key(rec: KubeletPod) -> tuple[int, int, int, float, str]:
            pod = self._get(rec.key)
            increases = 1
            if pod is not None:
                desired = {n: req for n, _k, req, _l in _desired(pod)}
                increases = int(
                    any(v > c.req.get(r, 0) for c in rec.containers for r, v in desired.get(c.name, {}).items())
                )
            since = rec.cond_times.get(RESIZE_PENDING, rec.cond_times.get(RESIZE_IN_PROGRESS, 0.0))
            return (increases, -rec.priority, 0 if rec.qos == "Guaranteed" else 1, since, rec.key[1])

        return [r.key for r in sorted(pending, key=sort_key)]

    def _retry_pass(self, node_name: str, trigger: str) -> None:
        node = self._nodes.get(node_name)
        if node is None:
            return
        node.pass_scheduled = False
        self._arm_ticker(node, node.config.retry_delay)
        if node.config.stalled:
            return
        order = self._sorted_pending(node)
        if not order:
            return
        node.retry_log.append((self.clock.now(), trigger, [k[1] for k in order]))
        for key in order:
            rec = self._pods.get(key)
            pod = self._get(key)
            if rec is None or pod is None:
                continue
            if rec.resize == "Deferred":
                self._try_allocate(rec, pod, node)
                self._write(rec, pod)
            elif rec.error:
                self._actuate(key)
        node.pass_scheduled = False

    # -- status -----------------------------------------------------------------------------------
    def _write(self, rec: KubeletPod, pod: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Render the kubelet-owned status and write it when it changed."""
        pod = self._get(rec.key) if pod is None else pod
        if pod is None or pod["metadata"].get("uid") != rec.uid:
            return None
        old = pod.get("status") or {}
        new = render_status(rec, old, self.clock.now())
        if new == old:
            return pod
        obj = dict(pod)
        obj["status"] = new
        self.status_writes += 1
        self._writing = rec.key
        try:
            return self.store.update("pods", obj, subresource="status")
        except Exception as exc:
            if getattr(exc, "code", None) == 409:
                self._mark(rec.key)  # somebody wrote in between: re-sync from the fresh object
                return None
            if getattr(exc, "code", None) == 404:
                return None
            raise
        finally:
            self._writing = None


# -- helpers --------------------------------------------------------------------------------------
def _noop(*_args: Any) -> None:
    return None


def _key(obj: dict[str, Any]) -> PodKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "default", meta["name"])


def _image(pod: dict[str, Any], name: str) -> str:
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
        if c.get("name") == name:
            return str(c.get("image") or "")
    return ""


def _minor(version: str) -> int:
    parts = version.lstrip("v").split(".")
    return int(parts[1]) if len(parts) > 1 else int(parts[0])


def _insufficient(request: Vec, used: Vec, allocatable: Vec, order: tuple[str, ...]) -> tuple[str, str] | None:
    """``InsufficientResourceError`` for the first resource that does not fit (``noderesources.Fits`` order)."""
    names = list(order) + sorted(k for k in request if k not in order and k not in ("pods",))
    for name in names:
        want = request.get(name, 0)
        if want <= 0 and name != "pods":
            continue
        cap = allocatable.get(name, 0)
        if name == "pods":
            if used.get("pods", 0) + 1 > cap:
                used_pods = used.get("pods", 0)
                return name, f"Node didn't have enough resource: pods, requested: 1, used: {used_pods}, capacity: {cap}"
            continue
        if used.get(name, 0) + want > cap:
            if name not in ("cpu", "memory", "ephemeral-storage"):  # extended resources print whole units
                want, cap, used = want // 1000, cap // 1000, {name: used.get(name, 0) // 1000}
            used_n = used.get(name, 0)
            return name, f"Node didn't have enough resource: {name}, requested: {want}, used: {used_n}, capacity: {cap}"
    return None
