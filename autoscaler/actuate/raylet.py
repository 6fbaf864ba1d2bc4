"""Tell a live raylet its new size, or drain it, through the GCS (``AutoscalerStateService``).

Order (see the design): grow the pod, then the raylet; shrink the raylet first and record the totals
its reply returns (Ray clamps a shrink so ``available`` never goes below zero), then shrink the pod
to those totals. Drain with the idle-termination reason right before a pod is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ray.core.generated import autoscaler_pb2

from autoscaler.model import CANONICAL_TO_RAY, Resources
from autoscaler.observe.ray_gcs import GcsConnection

#: Ray's unit-instance resources (Ray 2.60 ``ray_config_def.h``: ``predefined_unit_instance_resources``
#: = "GPU", ``custom_unit_instance_resources`` = the rest). The raylet rejects resizing them.
UNIT_INSTANCE_RESOURCES = frozenset({"GPU", "neuron_cores", "TPU", "NPU", "HPU", "RBLN", "FURIOSA", "TTNPU", "MBLT"})
#: What Ray answers when a node got work between our decision and the drain.
_NOT_IDLE = "no longer idle"


class UnitResourceResizeError(ValueError):
    """A resize asked to change a unit-instance resource (GPU, TPU, …); nothing was sent."""


class DrainOutcome(str, Enum):
    ACCEPTED = "accepted"
    NOT_IDLE = "not_idle"  # Ray refused: the node picked up work; keep the pod
    REJECTED = "rejected"  # any other refusal (message in ``DrainResult.message``)


@dataclass(frozen=True, slots=True)
class DrainResult:
    outcome: DrainOutcome
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome is DrainOutcome.ACCEPTED


def ray_resource_name(canonical: str) -> str:
    return CANONICAL_TO_RAY.get(canonical, canonical)


class RayletActuator:
    """Resize or drain raylets of one Ray cluster. Shares the reader's ``GcsConnection``."""

    def __init__(
        self,
        connection: GcsConnection,
        *,
        unit_instance_resources: Iterable[str] = UNIT_INSTANCE_RESOURCES,
        logger: logging.Logger | None = None,
    ) -> None:
        self.connection = connection
        self.unit_instance_resources = frozenset(unit_instance_resources)
        self._log = logger or logging.getLogger(__name__)

    def check_resizable(self, target: Resources) -> None:
        """Raise ``UnitResourceResizeError`` naming the first unit-instance resource in ``target``."""
        for name in target:
            ray_name = ray_resource_name(name)
            if ray_name in self.unit_instance_resources:
                raise UnitResourceResizeError(
                    f"cannot resize Ray resource {ray_name!r}: it is a unit-instance resource (whole devices "
                    f"such as GPUs) and Ray rejects changing it at runtime; keep it static and resize only "
                    f"CPU, memory and custom resources"
                )

    async def resize(self, node_id: str, target: Resources) -> Resources:
        """Set the raylet's totals for the resources in ``target`` (others are left alone) and return the
        totals Ray applied. After a shrink those can be larger than asked (clamped to what is in use)."""
        self.check_resizable(target)
        request = autoscaler_pb2.ResizeRayletResourceInstancesRequest(
            node_id=bytes.fromhex(node_id), resources=target.to_ray()
        )
        reply = await self.connection.call("autoscaler", "ResizeRayletResourceInstances", request)
        applied = Resources.from_ray(reply.total_resources)
        clamped = {k: applied.get(k) for k in target if applied.get(k) != target.get(k)}
        if clamped:
            self._log.info("raylet %s resize to %s clamped by Ray: %s", node_id[:12], target, clamped)
        return applied

    async def drain_idle(self, node_id: str, reason: str, deadline_ms: int = 0) -> DrainResult:
        """Ask Ray to drain an idle raylet before its pod is deleted. Ray then stops the raylet; delete
        the pod promptly, or the container restarts and rejoins as a new node."""
        request = autoscaler_pb2.DrainNodeRequest(
            node_id=bytes.fromhex(node_id),
            reason=autoscaler_pb2.DRAIN_NODE_REASON_IDLE_TERMINATION,
            reason_message=reason,
            deadline_timestamp_ms=deadline_ms,
        )
        reply = await self.connection.call("autoscaler", "DrainNode", request)
        if reply.is_accepted:
            return DrainResult(DrainOutcome.ACCEPTED)
        message = reply.rejection_reason_message
        outcome = DrainOutcome.NOT_IDLE if _NOT_IDLE in message.lower() else DrainOutcome.REJECTED
        return DrainResult(outcome, message)
