"""The plain data rva reasons about: resources, pods, nodes, worker groups, Ray demand, pressure.

Everything here is frozen and free of I/O. Observers build these; the planner reads them.

Canonical units (integers, so arithmetic is exact and vectorises):
  * ``cpu``     millicores            (Kubernetes ``cpu``; Ray ``CPU`` cores × 1000)
  * ``memory``  bytes                 (Kubernetes ``memory``; Ray ``memory``)
  * ``gpu``     milli-GPUs            (Kubernetes ``nvidia.com/gpu``; Ray ``GPU`` × 1000)
  * any other   milli-units           (Ray custom resources × 1000; Kubernetes extended resources × 1000)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from autoscaler.quantity import format_bytes, format_millicores, to_bytes, to_milli

CPU = "cpu"
MEMORY = "memory"
GPU = "gpu"

#: Ray resource name ↔ rva canonical name for the built-in resources.
RAY_TO_CANONICAL = {"CPU": CPU, "memory": MEMORY, "GPU": GPU}
CANONICAL_TO_RAY = {v: k for k, v in RAY_TO_CANONICAL.items()}
#: Kubernetes resource name ↔ rva canonical name (GPU vendors map to ``gpu``).
K8S_GPU_NAMES = ("nvidia.com/gpu", "amd.com/gpu")
#: Ray resources that are bookkeeping, not capacity rva manages.
RAY_IGNORED_PREFIXES = ("node:", "object_store_memory", "accelerator_type:", "bundle_group_")

#: Label rva implies for every worker group (Ray does not; see README "Labels").
NODE_GROUP_LABEL = "ray.io/node-group"


def _is_bytes(name: str) -> bool:
    return name == MEMORY


@dataclass(frozen=True, slots=True)
class Resources(Mapping[str, int]):
    """An immutable resource vector in canonical integer units. Missing keys are zero."""

    _items: tuple[tuple[str, int], ...] = ()

    @staticmethod
    def of(values: Mapping[str, int] | None = None, /, **kw: int) -> Resources:
        merged = dict(values or {})
        merged.update(kw)
        return Resources(tuple(sorted((k, int(v)) for k, v in merged.items() if int(v) != 0)))

    # Mapping protocol -------------------------------------------------------------------------
    def __getitem__(self, key: str) -> int:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def get(self, key: str, default: int = 0) -> int:  # type: ignore[override]
        for k, v in self._items:
            if k == key:
                return v
        return default

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return "Resources(" + ", ".join(f"{k}={_show(k, v)}" for k, v in self._items) + ")"

    # Arithmetic -------------------------------------------------------------------------------
    def _combine(self, other: Mapping[str, int], op: Any) -> Resources:
        keys = set(self) | set(other)
        return Resources.of({k: op(self.get(k), other.get(k, 0)) for k in keys})

    def __add__(self, other: Mapping[str, int]) -> Resources:  # type: ignore[override]
        return self._combine(other, lambda a, b: a + b)

    def __sub__(self, other: Mapping[str, int]) -> Resources:
        return self._combine(other, lambda a, b: a - b)

    def maximum(self, other: Mapping[str, int]) -> Resources:
        return self._combine(other, max)

    def minimum(self, other: Mapping[str, int]) -> Resources:
        return self._combine(other, min)

    def scale(self, factor: float) -> Resources:
        return Resources.of({k: math.ceil(v * factor) for k, v in self._items})

    def fits_in(self, capacity: Mapping[str, int]) -> bool:
        """True when every component is ≤ the same component of ``capacity``."""
        return all(v <= capacity.get(k, 0) for k, v in self._items)

    def only(self, *names: str) -> Resources:
        return Resources.of({k: v for k, v in self._items if k in names})

    def without(self, *names: str) -> Resources:
        return Resources.of({k: v for k, v in self._items if k not in names})

    # Conversions ------------------------------------------------------------------------------
    @staticmethod
    def from_k8s(values: Mapping[str, Any] | None) -> Resources:
        """From a Kubernetes ResourceList (``{"cpu": "1500m", "memory": "2Gi"}``)."""
        out: dict[str, int] = {}
        for name, q in (values or {}).items():
            if name == MEMORY or name.startswith("hugepages-") or name == "ephemeral-storage":
                out[name] = to_bytes(q)
            elif name in K8S_GPU_NAMES:
                out[GPU] = out.get(GPU, 0) + to_milli(q)
            else:
                out[name] = to_milli(q)
        return Resources.of(out)

    def to_k8s(self, gpu_name: str = "nvidia.com/gpu") -> dict[str, str]:
        """To a Kubernetes ResourceList with canonical quantity strings."""
        out: dict[str, str] = {}
        for k, v in self._items:
            if k == CPU:
                out[CPU] = format_millicores(v)
            elif _is_bytes(k) or k.startswith("hugepages-") or k == "ephemeral-storage":
                out[k] = format_bytes(v)
            elif k == GPU:
                out[gpu_name] = format_millicores(v)
            else:
                out[k] = format_millicores(v)
        return out

    @staticmethod
    def from_ray(values: Mapping[str, float] | None) -> Resources:
        """From a Ray resource dict (``{"CPU": 1.5, "memory": 2**31, "GPU": 1, "fast_disk": 1}``)."""
        out: dict[str, int] = {}
        for name, amount in (values or {}).items():
            if name.startswith(RAY_IGNORED_PREFIXES):
                continue
            key = RAY_TO_CANONICAL.get(name, name)
            out[key] = math.ceil(amount) if key == MEMORY else math.ceil(round(amount * 1000, 6))
        return Resources.of(out)

    def to_ray(self) -> dict[str, float]:
        """To a Ray resource dict (cores and GPUs as floats, memory in bytes)."""
        return {
            CANONICAL_TO_RAY.get(k, k): float(v) if k == MEMORY else v / 1000 for k, v in self._items
        }


def _show(name: str, v: int) -> str:
    if name == MEMORY:
        return format_bytes(v)
    if name == CPU:
        return format_millicores(v)
    return str(v / 1000)


ZERO = Resources()


# --------------------------------------------------------------------------------------------------
# Label selectors (Ray semantics)
# --------------------------------------------------------------------------------------------------


class LabelOperator(str, Enum):
    IN = "IN"
    NOT_IN = "NOT_IN"


@dataclass(frozen=True, slots=True)
class LabelConstraint:
    key: str
    operator: LabelOperator
    values: tuple[str, ...]  # sorted, so equal selectors compare equal

    @staticmethod
    def of(key: str, operator: LabelOperator | str, values: Iterable[str]) -> LabelConstraint:
        return LabelConstraint(key, LabelOperator(operator), tuple(sorted(set(values))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Ray's rule: IN needs the value in the set; NOT_IN passes when the key is missing."""
        value = labels.get(self.key)
        if self.operator is LabelOperator.IN:
            return value is not None and value in self.values
        return value is None or value not in self.values

    def __str__(self) -> str:
        op = "in" if self.operator is LabelOperator.IN else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """All constraints must hold. The empty selector matches every node."""

    constraints: tuple[LabelConstraint, ...] = ()

    @staticmethod
    def of(constraints: Iterable[LabelConstraint]) -> LabelSelector:
        return LabelSelector(tuple(sorted(constraints, key=lambda c: (c.key, c.operator.value, c.values))))

    @staticmethod
    def parse(selector: Mapping[str, str]) -> LabelSelector:
        """From Ray's task syntax: ``{"k": "v", "k2": "!v", "k3": "in(a,b)", "k4": "!in(a,b)"}``."""
        out = []
        for key, expr in selector.items():
            expr = expr.strip()
            negate = expr.startswith("!")
            if negate:
                expr = expr[1:].strip()
            if expr.startswith(("in(", "notin(")) and expr.endswith(")"):
                if expr.startswith("notin("):
                    negate = not negate
                inner = expr[expr.index("(") + 1 : -1]
                values = [v.strip() for v in inner.split(",") if v.strip()]
            else:
                values = [expr]
            out.append(LabelConstraint.of(key, LabelOperator.NOT_IN if negate else LabelOperator.IN, values))
        return LabelSelector.of(out)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(c.matches(labels) for c in self.constraints)

    def __str__(self) -> str:
        return "{" + ", ".join(str(c) for c in self.constraints) + "}"


ANY_NODE = LabelSelector()


class GangStrategy(str, Enum):
    PACK = "PACK"
    SPREAD = "SPREAD"
    STRICT_PACK = "STRICT_PACK"
    STRICT_SPREAD = "STRICT_SPREAD"


@dataclass(frozen=True, slots=True)
class Demand:
    """``count`` pending Ray tasks/actors of one shape.

    ``selectors`` is Ray's ordered list: the primary selector first, then each fallback. An empty
    tuple means "any node" (same as one empty selector).
    """

    shape: Resources
    count: int
    selectors: tuple[LabelSelector, ...] = ()

    def selector_chain(self) -> tuple[LabelSelector, ...]:
        return self.selectors or (ANY_NODE,)


@dataclass(frozen=True, slots=True)
class Bundle:
    shape: Resources
    selectors: tuple[LabelSelector, ...] = ()

    def selector_chain(self) -> tuple[LabelSelector, ...]:
        return self.selectors or (ANY_NODE,)


@dataclass(frozen=True, slots=True)
class Gang:
    """A pending placement group: all bundles or none."""

    id: str
    strategy: GangStrategy
    bundles: tuple[Bundle, ...]
    state: str = "PENDING"  # Ray's placement-group state: PENDING / RESCHEDULING


# --------------------------------------------------------------------------------------------------
# Kubernetes and Ray state
# --------------------------------------------------------------------------------------------------


class QoSClass(str, Enum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


class ResizeState(str, Enum):
    """The kubelet's view of a pod's last resize, from its conditions."""

    NONE = "None"  # no PodResizePending / PodResizeInProgress condition
    DEFERRED = "Deferred"  # PodResizePending reason=Deferred
    INFEASIBLE = "Infeasible"  # PodResizePending reason=Infeasible
    IN_PROGRESS = "InProgress"  # PodResizeInProgress, empty reason
    ERROR = "Error"  # PodResizeInProgress reason=Error


@dataclass(frozen=True, slots=True)
class InFlightResize:
    """A resize rva started and has not finished; persisted in a pod annotation."""

    target_requests: Resources
    target_limits: Resources
    previous_requests: Resources
    previous_limits: Resources
    started_at: float
    generation: int  # pod metadata.generation returned by the resize PATCH
    reason: str  # the reason code of the action that started it
    raylet_done: bool = False  # downsize: raylet already shrunk / upsize: raylet already grown
    #: bytes the raylet's memory changes by, as the plan decided (an upsize: what it gains once applied;
    #: a downsize, raylet first: what it released, ≤ 0). None: a record written before the memory
    #: reserve: the capacity's change
    ray_memory: int | None = None


def memory_debt(ray_total_memory: int, capacity_memory: int, reserve: int | None) -> int:
    """How much of a pod's memory Ray counts beyond ``capacity − reserve``.

    KubeRay starts a raylet with ``--memory`` = the container's limit, but the raylet, its idle
    workers and the object store live in the same cgroup: a pod Ray packs full of tasks by their
    ``memory`` is over its limit. rva keeps a reserve out of Ray's view on pods it grows; the first
    growth of such a pod pays this debt before Ray gains anything."""
    if not reserve:
        return 0
    return max(0, ray_total_memory - (capacity_memory - reserve))


def ray_memory_after_shrink(ray_total_memory: int, ray_used_memory: int, capacity_memory: int,
                            reserve: int | None) -> int:
    """What a raylet's memory total should be once its pod shrinks to ``capacity_memory``: at most
    ``capacity − reserve`` (see :func:`memory_debt`), never below what Ray has in use, never more than
    it counts now (memory grown for pressure was never Ray's: shrinking it away takes nothing)."""
    return max(ray_used_memory, min(ray_total_memory, capacity_memory - (reserve or 0)))


def ray_capacity(requests: Resources, limits: Resources) -> Resources:
    """The cpu/memory a raylet reports for a pod of this size (KubeRay renders limits, else requests)."""
    return Resources.of({r: limits.get(r) or requests.get(r) for r in (CPU, MEMORY)})


def raylet_change(ray_total: Resources, rec: InFlightResize) -> Resources:
    """What the raylet's cpu/memory total changes by when ``rec`` is carried out: the capacity's
    change, but for memory what the plan decided (growth pays the reserve first, memory grown for
    pressure stays out of Ray: see :func:`memory_debt`)."""
    before = ray_capacity(rec.previous_requests, rec.previous_limits)
    after = ray_capacity(rec.target_requests, rec.target_limits)
    memory = after.get(MEMORY) - before.get(MEMORY) if rec.ray_memory is None else rec.ray_memory
    return Resources.of({CPU: after.get(CPU) - before.get(CPU), MEMORY: memory})


@dataclass(frozen=True, slots=True)
class RayNodeState:
    """What the Ray GCS says about the raylet in a pod."""

    node_id: str  # hex
    instance_id: str  # RAY_CLOUD_INSTANCE_ID = pod name
    node_type: str  # group name
    total: Resources
    available: Resources
    labels: Mapping[str, str]
    idle_duration_s: float
    status: str  # RUNNING / IDLE / DRAINING / DEAD
    started_at: float | None = None  # epoch seconds; read only when two raylets claim one pod


@dataclass(frozen=True, slots=True)
class PodState:
    """One Ray worker pod (container 0 is the Ray container)."""

    name: str
    namespace: str
    group: str
    node_name: str | None
    phase: str  # Pending / Running / Succeeded / Failed
    qos: QoSClass
    container: str
    requests: Resources  # desired (spec)
    limits: Resources
    allocated: Resources  # status.containerStatuses[0].allocatedResources (requests)
    actual_requests: Resources  # status.containerStatuses[0].resources
    actual_limits: Resources
    generation: int = 1
    observed_generation: int = 0
    resize_state: ResizeState = ResizeState.NONE
    resize_message: str = ""
    resize_since: float | None = None  # lastTransitionTime of the pending/in-progress condition
    resizable: bool = True  # cpu and memory resizePolicy are NotRequired (or absent)
    created_at: float = 0.0
    started_at: float | None = None  # Ready / container start
    restart_count: int = 0
    deleting: bool = False
    unschedulable_since: float | None = None  # PodScheduled=False reason=Unschedulable
    in_flight: InFlightResize | None = None
    last_resized_at: float | None = None  # end of the last resize (cooldown)
    ray: RayNodeState | None = None  # None until its raylet registers

    def accounted(self) -> Resources:
        """What the scheduler counts for this pod: max(desired, allocated, actual) requests."""
        desired = self.requests if self.resize_state is not ResizeState.INFEASIBLE else ZERO
        return desired.maximum(self.allocated).maximum(self.actual_requests)


@dataclass(frozen=True, slots=True)
class NodeState:
    """A Kubernetes node that runs (or can run) managed pods."""

    name: str
    allocatable: Resources
    labels: Mapping[str, str]
    #: Σ over *all* pods on the node of ``max(spec request, allocated, actual)``.
    used: Resources
    ready: bool = True
    unschedulable: bool = False

    def free(self) -> Resources:
        return self.allocatable - self.used


@dataclass(frozen=True, slots=True)
class GroupState:
    """A KubeRay worker group with what rva needs to size and scale it."""

    name: str
    index: int  # position in spec.workerGroupSpecs (guarded by a JSON-patch test op)
    labels: Mapping[str, str]  # group labels: + ray.io/node-group=<name>
    replicas: int
    min_replicas: int
    max_replicas: int
    num_of_hosts: int
    #: container 0 of the pod template: the size new pods start with.
    template_requests: Resources
    template_limits: Resources
    #: Ray logical resources of a new pod (from rayStartParams/resources or the limits).
    ray_resources: Resources
    priority: int = 0
    workers_to_delete: tuple[str, ...] = ()
    stocked_out_until: float | None = None  # set by the daemon when new pods stay Unschedulable

    def has_gpu(self) -> bool:
        return self.ray_resources.get(GPU) > 0 or self.template_requests.get(GPU) > 0


@dataclass(frozen=True, slots=True)
class Pressure:
    """Memory pressure of one pod, as the detector sees it this loop."""

    pod: str
    sampled_at: float
    psi_some_avg10: float  # percent, 0..100
    psi_full_avg10: float
    usage_bytes: int
    limit_bytes: int | None
    peak_usage_bytes: int
    consecutive_windows: int  # windows in a row above the PSI or usage-ratio threshold
    oom_kills: int = 0  # OOM kills since the detector's baseline for this container identity
    last_oom_at: float | None = None
    identity: str = ""
    #: usage − inactive file pages (the kubelet's working set); page cache alone is not pressure.
    working_set_bytes: int = 0
    #: why the detector is not counting windows now ("startup_grace", "cooldown", "resize_in_flight"),
    #: in which case ``consecutive_windows`` is 0; "" when it is.
    skip_reason: str = ""
    #: the PSI 'some' percent the detector judged: max(avg10, stall rate from PSI totals since the previous
    #: sample). avg10 lags a sudden stall by several seconds; this does not.
    stall_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the planner needs about one RayCluster at one instant."""

    namespace: str
    cluster: str
    taken_at: float
    pods: tuple[PodState, ...]
    nodes: tuple[NodeState, ...]
    groups: tuple[GroupState, ...]
    demands: tuple[Demand, ...] = ()
    gangs: tuple[Gang, ...] = ()
    #: ``request_resources`` bundles: capacity the cluster must be able to hold.
    constraints: tuple[Demand, ...] = ()
    pressure: Mapping[str, Pressure] = field(default_factory=dict)
    #: Minor version of the API server (1.33 rejects memory-limit decreases through /resize).
    server_minor: int = 35
    demand_truncated: bool = False

    def pod(self, name: str) -> PodState | None:
        return next((p for p in self.pods if p.name == name), None)

    def group(self, name: str) -> GroupState | None:
        return next((g for g in self.groups if g.name == name), None)
