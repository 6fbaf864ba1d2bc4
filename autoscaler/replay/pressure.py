"""Memory pressure in the replay, as the daemon gets it: rva agents sampling each worker pod's cgroup every
second, and the daemon's detector turning the samples into the snapshot's ``Pressure`` entries.

* The *agent* (sidecar mode, one per worker pod) is simulated: each sample reads what the simulated
  kernel would show in the pod's cgroup — ``memory.current`` = the memory the simulated Ray reports to
  the kubelet (raylet baseline + its running tasks' use; the kubelet OOM-kills the container above its
  limit), ``memory.max`` = the container's actual memory limit (``status.containerStatuses[].resources``,
  what the kubelet applied), the working set = usage (the simulated Ray has no page cache), the
  ``oom_kill`` count of the pod's cgroup (the kubelet's OOM kills of the Ray container, counted for the
  agent's lifetime), and an identity that changes with a container restart or a new limit (container ID
  and limit, as the agent's ``identity_of``). PSI is not simulated (no model of stalls): ``None``, so
  only the usage ratio and OOM kills count.
* The *detector* is the daemon's: :func:`autoscaler.observe.pressure.detect_all` with the policy mapped by
  :func:`~autoscaler.observe.pressure_source.thresholds_for` per worker group and each pod's
  ``PodContext`` from :func:`~autoscaler.observe.pressure_source.context_for` (startup grace, cooldown,
  resize in flight), fed one sample per pod per loop (the rva loop is the agent's 1 s cadence). The
  daemon scrapes every 2 s and folds both samples at once; the result is the same, at most 1 s later.
* Kubelet OOM kills reach the planner twice, as in the daemon: through the agent's ``oom_kill`` count
  here, and through the pod's ``lastState: OOMKilled`` that ``SnapshotBuilder`` merges in.

One shortcut, exact: a pod whose inputs (identity, usage, limit, OOM count, skip context) are unchanged
since its last detection, which counted no window and reset or held (below the trigger levels), gets the
same detection again — the detector is at a fixed point there — so it is not fed again; nor is a pod
the detector skipped (startup grace, cooldown, resize in flight) until that skip's timer ends. Its
``Pressure`` keeps the time of that sample (the planner does not read ``sampled_at``). With a
:class:`~autoscaler.replay.meter.MeteredRay` (what the runner uses), which says whose reported usage
changed, a loop only visits those pods and the ones off their fixed point, plus every pod when a pod
object, Ray's node set or the policy changed: a 1,000-pod cluster costs a few detector steps per loop,
not 1,000. ``shortcut=False`` feeds every running pod every loop (tests compare the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autoscaler.model import MEMORY, Pressure, Resources
from autoscaler.observe.pressure import (
    Detection,
    Outcome,
    PodContext,
    PodPressureState,
    PressureSample,
    Thresholds,
    detect_all,
)
from autoscaler.observe.pressure_source import context_for, thresholds_for
from autoscaler.policy import Policy
from autoscaler.replay.adapters import StoreIndex
from autoscaler.replay.quiet import planner_view
from autoscaler.sim.ray_runtime import SimulatedRay

AGENT_INSTANCE = "sim-agent"
#: outcomes after which an identical sample gives an identical detection, if no window is counted
_FIXED = (Outcome.RESET, Outcome.HELD)
#: the same, until the skip rule's timer (startup grace, cooldown) ends
_SKIPS = (Outcome.STARTUP_GRACE, Outcome.COOLDOWN, Outcome.RESIZE_IN_FLIGHT)


@dataclass(frozen=True, slots=True)
class _Container:
    """One worker pod object, as its agent and the detector's context see it."""

    running: bool
    container_id: str
    limit: int | None
    group: str
    context: PodContext


def _container(pod: dict[str, Any]) -> _Container:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    name = ((spec.get("containers") or [{}])[0]).get("name")
    cs: dict[str, Any] = next((c for c in status.get("containerStatuses") or () if c.get("name") == name), {})
    limit = Resources.from_k8s((cs.get("resources") or {}).get("limits")).get(MEMORY) or None
    running = status.get("phase") == "Running" and "running" in (cs.get("state") or {})
    group = ((pod.get("metadata") or {}).get("labels") or {}).get("ray.io/group", "")
    return _Container(running, str(cs.get("containerID", "")), limit, group, context_for(pod))


class SimAgents:
    """The agents of one RayCluster's worker pods and the daemon's detector over them. :meth:`sample` once
    per loop; ``pressure`` is the snapshot's mapping, ``version`` changes whenever the planner's view of
    it (:func:`~autoscaler.replay.quiet.planner_view`, and which pods have one) changes."""

    def __init__(self, ray: SimulatedRay, index: StoreIndex, *, shortcut: bool = True) -> None:
        self.ray = ray
        self.index = index
        self.shortcut = shortcut  # False: every running pod's agent feeds the detector every loop (tests)
        self.pressure: dict[str, Pressure] = {}
        self.version = 0
        self.detections: dict[str, Detection] = {}
        self.detector_steps = 0
        self._pods: dict[int, tuple[dict[str, Any], str | None, _Container]] = {}
        self._where: dict[str, tuple[tuple[str, str], _Container]] = {}  # running worker pods, by name
        self._ooms: dict[tuple[str, str], int] = {}  # the pod cgroup's oom_kill, for the agent's lifetime
        self._states: dict[str, PodPressureState] = {}
        self._inputs: dict[str, tuple[object, ...]] = {}
        self._until: dict[str, float] = {}  # pods off their fixed point: re-detect at (or after) this time
        self._views: dict[str, tuple[object, ...]] = {}
        self._thresholds: tuple[Policy, dict[str, Thresholds]] | None = None
        self._scanned: tuple[object, ...] | None = None
        self._dirty: set[tuple[str, str]] = set()
        #: what the kubelet was told each pod's container uses (MeteredRay), else Ray's current use (scan)
        self._reported: dict[tuple[str, str], int] | None = getattr(ray, "reported", None)
        listeners = getattr(ray, "usage_listeners", None)
        if self._reported is not None and isinstance(listeners, list):
            listeners.append(self._dirty.add)
        else:
            self._reported = None
        if ray.cluster is not None:
            ray.cluster.kubelet.observers.append(self)

    # -- kubelet observer: the kernel's oom_kill counter -------------------------------------------
    def container_restarted(self, pod: dict[str, Any], container: str, reason: str) -> None:
        first = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
        if reason == "OOMKilled" and container == first:
            md = pod["metadata"]
            key = (md.get("namespace") or "default", md["name"])
            self._ooms[key] = self._ooms.get(key, 0) + 1
            self._dirty.add(key)

    def pod_stopped(self, key: tuple[str, str]) -> None:
        self._ooms.pop(key, None)

    # -- one round --------------------------------------------------------------------------------
    def _threshold(self, policy: Policy, group: str) -> Thresholds:
        if self._thresholds is None or self._thresholds[0] is not policy:
            self._thresholds = (policy, {})
        cache = self._thresholds[1]
        th = cache.get(group)
        if th is None:
            th = cache[group] = thresholds_for(policy.resolve(group))
        return th

    def _scan(self) -> None:
        """Which worker pods run a container (an agent has a cgroup to read), from the store's objects;
        each object is converted once (same object, same resourceVersion: the same answer)."""
        seen: dict[int, tuple[dict[str, Any], str | None, _Container]] = {}
        where: dict[str, tuple[tuple[str, str], _Container]] = {}
        for (ns, name), pod in self.index.workers.items():
            rv = (pod.get("metadata") or {}).get("resourceVersion")
            hit = self._pods.get(id(pod))
            if hit is None or hit[0] is not pod or hit[1] != rv or not rv:
                hit = (pod, rv, _container(pod))
            seen[id(pod)] = hit
            if hit[2].running:
                where[name] = ((ns or "default", name), hit[2])
        self._pods, self._where = seen, where

    def _skip_ends(self, ctx: PodContext, th: Thresholds, at: float) -> float:
        """When a skip rule the detector applied at ``at`` may stop applying (or another take over)."""
        ends = [t for t in (None if ctx.last_resized_at is None else ctx.last_resized_at + th.cooldown_s,
                            None if ctx.started_at is None else ctx.started_at + th.startup_grace_s)
                if t is not None and t > at]
        return min(ends, default=math.inf)

    def sample(self, policy: Policy, now: float) -> int:
        """Every worker pod's agent samples now; the detector runs over the new samples. Returns ``version``."""
        scan_key = (self.index.writes, self.ray.structure_version, policy)
        full = not self.shortcut or self._reported is None or self._scanned is None or any(
            a is not b and a != b for a, b in zip(scan_key, self._scanned, strict=True))
        if full:
            self._scan()
            self._scanned = scan_key
            names: Any = self._where
        else:
            names = {k[1] for k in self._dirty if k[1] in self._where}
            names.update(n for n in self._until if n in self._where)
        self._dirty.clear()
        due: dict[str, dict[str, PressureSample]] = {}
        contexts: dict[str, dict[str, PodContext]] = {}
        inputs_now: dict[str, tuple[object, ...]] = {}
        reported = self._reported
        for name in names:
            key, c = self._where[name]
            usage = reported.get(key, 0) if reported is not None else self.ray.memory_used(*key)
            ooms = self._ooms.get(key, 0)
            inputs = (c.container_id, c.limit, usage, ooms, c.context, policy)
            if self.shortcut and self._inputs.get(name) == inputs and self._until.get(name, math.inf) > now:
                continue  # the detector's fixed point: the same detection again
            inputs_now[name] = inputs
            due.setdefault(c.group, {})[name] = PressureSample(
                pod=name, sampled_at=now, agent_sampled_at=now, identity=f"{c.container_id}|{c.limit}",
                agent_instance=AGENT_INSTANCE, psi_some_avg10=None, psi_full_avg10=None, psi_some_total_us=None,
                usage_bytes=usage, working_set_bytes=usage, limit_bytes=c.limit, peak_usage_bytes=None,
                oom_kills_total=ooms,
            )
            contexts.setdefault(c.group, {})[name] = c.context
        changed = False
        if full:
            for gone in [n for n in self._inputs if n not in self._where]:
                for d in (self.detections, self._states, self._inputs, self._until, self._views):
                    d.pop(gone, None)  # type: ignore[attr-defined]
                if self.pressure.pop(gone, None) is not None:
                    changed = True
        for group, samples in due.items():
            th = self._threshold(policy, group)
            states, dets = detect_all(self._states, {n: (s,) for n, s in samples.items()}, contexts[group], th, now)
            self.detector_steps += len(dets)
            for name, det in dets.items():
                self.detections[name] = det
                self._inputs[name] = inputs_now[name]
                st = states.get(name)
                if st is not None:
                    self._states[name] = st
                else:
                    self._states.pop(name, None)
                until = now  # off the fixed point: feed every sample
                if st is not None and st.windows == 0:
                    if det.outcome in _FIXED:
                        until = math.inf
                    elif det.outcome in _SKIPS:
                        until = self._skip_ends(contexts[group][name], th, now)
                if until == math.inf:
                    self._until.pop(name, None)
                else:
                    self._until[name] = until
                if det.pressure is None:
                    if self.pressure.pop(name, None) is not None:
                        self._views.pop(name, None)
                        changed = True
                    continue
                self.pressure[name] = det.pressure
                view = planner_view(det.pressure)
                if self._views.get(name) != view:
                    self._views[name] = view
                    changed = True
        if changed:
            self.version += 1
        return self.version
