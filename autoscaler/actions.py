"""What the planner decides and the actuators carry out. Plain data, no behaviour.

Every action carries a machine-readable ``reason`` (a :class:`Reason` code, used in metrics labels
and Events) and a human sentence (``why``) for logs, Events and ``rva explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from autoscaler.model import Demand, Gang, Resources


class Reason(str, Enum):
    # growth
    DEMAND_FITS_IN_PLACE = "DemandFitsInPlace"  # pending demand served by growing a pod
    MEMORY_PRESSURE = "MemoryPressure"  # sustained PSI / usage ratio
    OOM_KILLED = "OOMKilled"  # VPA-style bump after an OOM kill
    # horizontal
    DEMAND_NEEDS_NEW_PODS = "DemandNeedsNewPods"  # could not grow enough in place
    FALLBACK_GROUP = "FallbackGroup"  # scaled a fallback group (primary stocked out / full)
    MIN_REPLICAS = "MinReplicas"
    STOCKOUT_CLEANUP = "StockoutCleanup"  # remove pods stuck Unschedulable in a stocked-out group
    # shrink / removal
    IDLE_SHRINK = "IdleShrink"
    OVERSIZED = "Oversized"
    IDLE_TIMEOUT = "IdleTimeout"
    # in-flight handling
    RESIZE_INFEASIBLE = "ResizeInfeasible"
    RESIZE_DEFERRED_TIMEOUT = "ResizeDeferredTimeout"
    RESIZE_ERROR = "ResizeError"
    RESIZE_IN_PROGRESS_TIMEOUT = "ResizeInProgressTimeout"
    # not acted on
    INFEASIBLE_DEMAND = "InfeasibleDemand"
    SATISFIED = "Satisfied"
    COOLDOWN = "Cooldown"
    CONCURRENCY_CAP = "ConcurrencyCap"
    DRY_RUN = "DryRun"
    # not acted on (added with the planner)
    AT_MAX_REPLICAS = "AtMaxReplicas"  # every label-matching group is at its maxReplicas
    STOCKED_OUT = "StockedOut"  # the matching groups are stocked out (backoff not expired)
    WAITING_FOR_CAPACITY = "WaitingForCapacity"  # feasible, but no room now (node full, caps, cooldown)


@dataclass(frozen=True, slots=True)
class GrowPod:
    """Resize a pod up in place (pod first, then the raylet once the kubelet has applied it)."""

    pod: str
    requests: Resources  # new container-0 requests (full cpu/memory set, keys unchanged)
    limits: Resources
    reason: Reason
    why: str
    #: bytes the raylet's memory grows by (None: the limit's change). Less than the pod's growth: the
    #: growth pays ``vertical.memoryReserve`` first (model.memory_debt) and memory grown for pressure is
    #: not Ray's to schedule
    ray_memory: int | None = None


@dataclass(frozen=True, slots=True)
class ShrinkPod:
    """Resize a pod down in place (raylet first; the pod patch uses the raylet's clamped totals)."""

    pod: str
    requests: Resources
    limits: Resources
    reason: Reason
    why: str
    #: bytes the raylet's memory changes by, ≤ 0 (None: the limit's change). Ray gives up only what it
    #: counts beyond the new limit less ``vertical.memoryReserve`` (model.ray_memory_after_shrink): memory
    #: grown for pressure was never Ray's, so shrinking it away takes nothing from Ray
    ray_memory: int | None = None


@dataclass(frozen=True, slots=True)
class RevertResize:
    """Put a pod's spec back to what the kubelet allocated, so a stale resize is never applied."""

    pod: str
    requests: Resources
    limits: Resources
    reason: Reason
    why: str


@dataclass(frozen=True, slots=True)
class ScaleOut:
    """Raise a worker group's replicas (``count`` new pods, ``replicas`` is the new total)."""

    group: str
    count: int
    replicas: int
    reason: Reason
    why: str


@dataclass(frozen=True, slots=True)
class RemovePod:
    """Drain the raylet through the GCS, then delete the pod via ``workersToDelete``."""

    pod: str
    group: str
    replicas: int  # the group's replicas after this removal
    reason: Reason
    why: str
    drain: bool = True  # False for pods whose raylet never registered (stuck Pending)


@dataclass(frozen=True, slots=True)
class Unserved:
    """Demand rva cannot serve now (infeasible, capped, or waiting), with why."""

    demand: Demand | Gang
    count: int
    reason: Reason
    why: str


Action = GrowPod | ShrinkPod | RevertResize | ScaleOut | RemovePod


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's output for one cluster and one instant."""

    actions: tuple[Action, ...] = ()
    unserved: tuple[Unserved, ...] = ()
    #: Decisions not taken and why (cooldown, caps, dry run) — for ``rva explain`` and metrics.
    notes: tuple[str, ...] = field(default=())
    #: Actions decided but not to be carried out (policy ``dryRun``); the actuator ignores them.
    suppressed: tuple[Action, ...] = field(default=())

    def of_type(self, kind: type) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]
