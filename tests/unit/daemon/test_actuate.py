"""Actuator bodies and the executor's write ordering, with in-memory fakes for the APIs."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from autoscaler import annotations as ann
from autoscaler.actions import GrowPod, Plan, Reason, RemovePod, RevertResize, ScaleOut, ShrinkPod
from autoscaler.actuate.events import EventRecorder
from autoscaler.actuate.executor import PlanExecutor
from autoscaler.actuate.raylet import DrainOutcome, DrainResult
from autoscaler.actuate.replicas import ReplicaWriter, replicas_patch
from autoscaler.actuate.resize import PodResizer, is_complete, resize_body
from autoscaler.metrics import Metrics
from autoscaler.model import (
    GroupState,
    InFlightResize,
    PodState,
    QoSClass,
    RayNodeState,
    ResizeState,
    Resources,
    Snapshot,
)

GI = 2**30


class FakeResponse:
    def __init__(self, body: dict[str, Any]) -> None:
        self._data = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._data

    def release(self) -> None:
        pass


class FakeApi:
    """Records calls in order; answers like the API server would for these writes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.generation = 1

    async def patch_namespaced_pod_resize(self, name: str, namespace: str, body: Any, **kw: Any) -> FakeResponse:
        self.calls.append(("resize", body))
        assert kw["_content_type"] == "application/strategic-merge-patch+json"
        self.generation += 1
        return FakeResponse({"metadata": {"name": name, "generation": self.generation}})

    async def patch_namespaced_pod(self, name: str, namespace: str, body: Any, **kw: Any) -> FakeResponse:
        self.calls.append(("annotate", body))
        return FakeResponse({"metadata": {"name": name, "annotations": body["metadata"]["annotations"]}})

    async def patch_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                             body: Any, **kw: Any) -> FakeResponse:
        self.calls.append(("raycluster", body))
        assert kw["_content_type"] == "application/json-patch+json"
        return FakeResponse({"metadata": {"name": name}})

    async def create_namespaced_event(self, namespace: str, body: Any, **kw: Any) -> FakeResponse:
        self.calls.append(("event", body["reason"]))
        return FakeResponse(body)


class FakeRaylets:
    def __init__(self, clamp: Resources | None = None, drain: DrainOutcome = DrainOutcome.ACCEPTED) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.clamp = clamp
        self.drain = drain

    async def resize(self, node_id: str, target: Resources) -> Resources:
        self.calls.append(("resize", target))
        return target.maximum(self.clamp) if self.clamp is not None else target

    async def drain_idle(self, node_id: str, reason: str, deadline_ms: int = 0) -> DrainResult:
        self.calls.append(("drain", node_id))
        busy = "The node to be idle terminated is no longer idle."
        return DrainResult(self.drain, busy if self.drain != DrainOutcome.ACCEPTED else "")


def pod(**kw: Any) -> PodState:
    base = PodState(
        name="w1", namespace="ray", group="cpu", node_name="n1", phase="Running", qos=QoSClass.BURSTABLE,
        container="ray-worker", requests=Resources.of(cpu=2000, memory=4 * GI),
        limits=Resources.of(cpu=4000, memory=8 * GI), allocated=Resources.of(cpu=2000, memory=4 * GI),
        actual_requests=Resources.of(cpu=2000, memory=4 * GI), actual_limits=Resources.of(cpu=4000, memory=8 * GI),
        generation=1, observed_generation=1,
        ray=RayNodeState("ab" * 14, "w1", "cpu", Resources.of(cpu=4000, memory=8 * GI),
                         Resources.of(cpu=1000, memory=2 * GI), {}, 0.0, "RUNNING"),
    )
    return replace(base, **kw)


GROUP = GroupState("cpu", 0, {"ray.io/node-group": "cpu"}, 2, 0, 10, 1, Resources.of(cpu=2000), Resources.of(cpu=4000),
                   Resources.of(cpu=4000), workers_to_delete=("old",))


def snap(*pods: PodState) -> Snapshot:
    return Snapshot("ray", "rc", 0.0, tuple(pods), (), (GROUP,))


def executor(api: FakeApi, raylets: FakeRaylets | None, leader: bool = True) -> PlanExecutor:
    return PlanExecutor(cluster="rc", namespace="ray", resizer=PodResizer(api), replicas=ReplicaWriter(api),
                        raylets=raylets, events=EventRecorder(api, "test"), metrics=Metrics(),
                        may_act=lambda: leader)


def test_resize_body_is_keyed_by_container_and_keeps_keys() -> None:
    p = pod(limits=Resources.of(cpu=4000))  # no memory limit: must not add one
    body = resize_body(p, Resources.of(cpu=3500, memory=6 * GI), Resources.of(cpu=5500, memory=9 * GI))
    assert body == {"spec": {"containers": [{"name": "ray-worker", "resources": {
        "requests": {"cpu": "3500m", "memory": "6Gi"}, "limits": {"cpu": "5500m"}}}]}}


def test_replicas_patch_guards_the_group_and_sends_both_fields() -> None:
    ops = replicas_patch(2, "l4-spot", 3, ["a", "b"])
    assert ops[0] == {"op": "test", "path": "/spec/workerGroupSpecs/2/groupName", "value": "l4-spot"}
    assert {"op": "replace", "path": "/spec/workerGroupSpecs/2/replicas", "value": 3} in ops
    assert {"op": "add", "path": "/spec/workerGroupSpecs/2/scaleStrategy",
            "value": {"workersToDelete": ["a", "b"]}} in ops


def record(target_cpu: int = 3000, gen: int = 2) -> InFlightResize:
    return InFlightResize(Resources.of(cpu=target_cpu, memory=4 * GI),
                          Resources.of(cpu=target_cpu + 2000, memory=8 * GI),
                          Resources.of(cpu=2000, memory=4 * GI), Resources.of(cpu=4000, memory=8 * GI), 10.0, gen,
                          "DemandFitsInPlace")


def test_is_complete_needs_conditions_gone_generation_and_actual() -> None:
    applied = dict(actual_requests=Resources.of(cpu=3000, memory=4 * GI),
                   actual_limits=Resources.of(cpu=5000, memory=8 * GI))
    assert is_complete(pod(in_flight=record(), observed_generation=2, **applied))
    assert not is_complete(pod(in_flight=record(), observed_generation=1, **applied))  # kubelet not synced yet
    assert not is_complete(pod(in_flight=record(), observed_generation=2))  # actual still old
    assert not is_complete(pod(in_flight=record(), observed_generation=2, resize_state=ResizeState.IN_PROGRESS,
                               **applied))
    near = dict(actual_requests=Resources.of(cpu=2995, memory=4 * GI),
                actual_limits=Resources.of(cpu=5000, memory=8 * GI))
    assert is_complete(pod(in_flight=record(), observed_generation=2, **near))  # kubelet CPU rounding tolerated


async def test_grow_patches_resize_then_records_generation() -> None:
    api = FakeApi()
    ex = executor(api, FakeRaylets())
    plan = Plan((GrowPod("w1", Resources.of(cpu=3000, memory=4 * GI), Resources.of(cpu=5000, memory=8 * GI),
                         Reason.DEMAND_FITS_IN_PLACE, "1 task of 3 CPU"),))
    report = await ex.execute(snap(pod()), plan, 50.0)
    assert report.done == ["GrowPod w1"]
    kinds = [c[0] for c in api.calls]
    assert kinds[:2] == ["resize", "annotate"]  # the record carries the generation the resize returned
    rec = ann.decode_in_flight(api.calls[1][1]["metadata"]["annotations"][ann.IN_FLIGHT])
    assert rec is not None and rec.generation == 2 and rec.started_at == 50.0
    assert rec.target_requests.get("cpu") == 3000 and rec.previous_requests.get("cpu") == 2000


async def test_completion_grows_raylet_by_the_pod_delta_then_clears_record() -> None:
    api, raylets = FakeApi(), FakeRaylets()
    ex = executor(api, raylets)
    done = pod(in_flight=record(), observed_generation=2, actual_requests=Resources.of(cpu=3000, memory=4 * GI),
               actual_limits=Resources.of(cpu=5000, memory=8 * GI))
    report = await ex.complete_resizes(snap(done), 60.0)
    assert report.done == ["completed w1"]
    # Ray capacity follows the limits: 4 → 5 CPU
    assert raylets.calls == [("resize", Resources.of(cpu=5000, memory=8 * GI))]
    annotations = api.calls[0][1]["metadata"]["annotations"]
    assert annotations[ann.IN_FLIGHT] is None and annotations[ann.LAST_RESIZE] == "60.000"


async def test_growth_carries_what_ray_gains_and_completion_gives_ray_only_that() -> None:
    api, raylets = FakeApi(), FakeRaylets()
    ex = executor(api, raylets)
    # the pod grows by 1Gi; the plan gives Ray 512Mi of it (the other 512Mi paid the memory reserve)
    grow = GrowPod("w1", Resources.of(cpu=2000, memory=5 * GI), Resources.of(cpu=4000, memory=9 * GI),
                   Reason.DEMAND_FITS_IN_PLACE, "1 task of 1Gi", ray_memory=512 * 2**20)
    await ex.execute(snap(pod()), Plan((grow,)), 50.0)
    rec = ann.decode_in_flight(api.calls[1][1]["metadata"]["annotations"][ann.IN_FLIGHT])
    assert rec is not None and rec.ray_memory == 512 * 2**20  # survives a daemon restart mid-resize
    done = pod(in_flight=rec, observed_generation=2, actual_requests=grow.requests, actual_limits=grow.limits)
    await ex.complete_resizes(snap(done), 60.0)
    assert raylets.calls == [("resize", Resources.of(cpu=4000, memory=8 * GI + 512 * 2**20))]


def test_a_record_without_ray_memory_reads_back_as_before_the_reserve() -> None:
    rec = record()
    assert ann.decode_in_flight(ann.encode_in_flight(rec)) == rec
    assert "rayMemory" not in ann.encode_in_flight(rec)  # older daemons' records: the limit's change
    kept = replace(rec, ray_memory=256 * 2**20)
    assert ann.decode_in_flight(ann.encode_in_flight(kept)) == kept


async def test_shrink_goes_raylet_first_and_shrinks_pod_only_by_what_ray_released() -> None:
    api = FakeApi()
    raylets = FakeRaylets(clamp=Resources.of(cpu=3000))  # 3 CPUs still in use: Ray keeps 3 of the 4
    ex = executor(api, raylets)
    plan = Plan((ShrinkPod("w1", Resources.of(cpu=500, memory=4 * GI), Resources.of(cpu=2500, memory=8 * GI),
                           Reason.IDLE_SHRINK, "idle"),))
    await ex.execute(snap(pod()), plan, 0.0)
    assert raylets.calls[0] == ("resize", Resources.of(cpu=2500, memory=8 * GI))
    assert api.calls[0][0] == "resize"  # after the raylet
    body = api.calls[0][1]["spec"]["containers"][0]["resources"]
    # asked −1.5 CPU, Ray released 1: requests 2 → 1, limits 4 → 3
    assert body["requests"]["cpu"] == "1" and body["limits"]["cpu"] == "3"


async def test_shrink_takes_from_ray_only_the_memory_the_plan_says_and_a_revert_gives_back_only_that() -> None:
    api, raylets = FakeApi(), FakeRaylets()
    ex = executor(api, raylets)
    # 2Gi of the 8Gi limit were grown for memory pressure: Ray counts 6Gi; shrinking 8 → 7Gi takes none of it
    ray = replace(pod().ray, total=Resources.of(cpu=4000, memory=6 * GI))  # type: ignore[type-var]
    p = pod(ray=ray)
    shrink = ShrinkPod("w1", Resources.of(cpu=2000, memory=3 * GI), Resources.of(cpu=4000, memory=7 * GI),
                       Reason.IDLE_SHRINK, "idle", ray_memory=0)
    report = await ex.execute(snap(p), Plan((shrink,)), 0.0)
    assert report.done == ["ShrinkPod w1"]
    assert raylets.calls == [("resize", Resources.of(cpu=4000, memory=6 * GI))]  # before: 5Gi
    body = api.calls[0][1]["spec"]["containers"][0]["resources"]
    assert body["requests"]["memory"] == "3Gi" and body["limits"]["memory"] == "7Gi"  # the pod shrinks all the same
    rec = ann.decode_in_flight(api.calls[1][1]["metadata"]["annotations"][ann.IN_FLIGHT])
    assert rec is not None and rec.raylet_done and rec.ray_memory == 0

    back = FakeRaylets()
    failed = pod(ray=ray, in_flight=rec, resize_state=ResizeState.ERROR)
    await executor(FakeApi(), back).execute(snap(failed), Plan((RevertResize(
        "w1", p.requests, p.limits, Reason.RESIZE_ERROR, "kubelet error"),)), 1.0)
    assert back.calls == [("resize", Resources.of(cpu=4000, memory=6 * GI))]  # nothing was taken, nothing given


async def test_a_shrink_ray_refuses_in_part_keeps_the_pod_as_big_as_what_ray_still_counts() -> None:
    api = FakeApi()
    raylets = FakeRaylets(clamp=Resources.of(memory=7 * GI))  # 7Gi in use: Ray keeps 7 of the 8Gi
    ex = executor(api, raylets)
    # the plan: 8 → 6Gi, Ray to 6Gi less a 512Mi reserve
    shrink = ShrinkPod("w1", Resources.of(cpu=2000, memory=2 * GI), Resources.of(cpu=4000, memory=6 * GI),
                       Reason.IDLE_SHRINK, "idle", ray_memory=-(2 * GI + 512 * 2**20))
    await ex.execute(snap(pod()), Plan((shrink,)), 0.0)
    assert raylets.calls == [("resize", Resources.of(cpu=4000, memory=6 * GI - 512 * 2**20))]
    body = api.calls[0][1]["spec"]["containers"][0]["resources"]
    assert body["limits"]["memory"] == "7Gi" and body["requests"]["memory"] == "3Gi"  # never below Ray's 7Gi
    rec = ann.decode_in_flight(api.calls[1][1]["metadata"]["annotations"][ann.IN_FLIGHT])
    assert rec is not None and rec.ray_memory == -GI  # what Ray actually released


async def test_revert_of_a_downsize_gives_the_raylet_its_capacity_back() -> None:
    api, raylets = FakeApi(), FakeRaylets()
    ex = executor(api, raylets)
    rec = replace(record(target_cpu=1000), raylet_done=True)
    shrunk = replace(pod().ray, total=Resources.of(cpu=3000, memory=8 * GI))  # type: ignore[type-var]
    p = pod(in_flight=rec, resize_state=ResizeState.ERROR, ray=shrunk)
    plan = Plan((RevertResize("w1", Resources.of(cpu=2000, memory=4 * GI), Resources.of(cpu=4000, memory=8 * GI),
                              Reason.RESIZE_ERROR, "kubelet error"),))
    await ex.execute(snap(p), plan, 0.0)
    assert api.calls[0][0] == "resize" and api.calls[1][1]["metadata"]["annotations"][ann.IN_FLIGHT] is None
    assert api.calls[1][1]["metadata"]["annotations"][ann.LAST_RESIZE] == "0.000"  # cooldown after a revert
    assert raylets.calls == [("resize", Resources.of(cpu=4000, memory=8 * GI))]


async def test_removal_drains_first_and_keeps_busy_nodes() -> None:
    api = FakeApi()
    ex = executor(api, FakeRaylets(drain=DrainOutcome.NOT_IDLE))
    plan = Plan((RemovePod("w1", "cpu", 1, Reason.IDLE_TIMEOUT, "idle 90s"),))
    report = await ex.execute(snap(pod()), plan, 0.0)
    assert not [c for c in api.calls if c[0] == "raycluster"]  # busy: nothing deleted
    assert any("drain refused" in s for s in report.skipped)

    api2, raylets2 = FakeApi(), FakeRaylets()
    await executor(api2, raylets2).execute(snap(pod()), plan, 0.0)
    assert raylets2.calls[0][0] == "drain"
    patch = next(c[1] for c in api2.calls if c[0] == "raycluster")
    assert {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1} in patch
    assert {"op": "add", "path": "/spec/workerGroupSpecs/0/scaleStrategy",
            "value": {"workersToDelete": ["old", "w1"]}} in patch


async def test_scale_out_and_the_leader_fence() -> None:
    plan = Plan((ScaleOut("cpu", 2, 4, Reason.DEMAND_NEEDS_NEW_PODS, "needs 2 pods"),))
    api = FakeApi()
    await executor(api, None).execute(snap(pod()), plan, 0.0)
    patch = next(c[1] for c in api.calls if c[0] == "raycluster")
    assert {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 4} in patch
    follower = FakeApi()
    report = await executor(follower, None, leader=False).execute(snap(pod()), plan, 0.0)
    assert follower.calls == [] and report.skipped


@pytest.mark.parametrize("status", [403, 422])
async def test_rejected_resize_is_counted_and_reported(status: int) -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    class Refusing(FakeApi):
        async def patch_namespaced_pod_resize(self, name: str, namespace: str, body: Any, **kw: Any) -> FakeResponse:
            e = ApiException(status=status, reason="Invalid")
            e.body = json.dumps({"message": "Pod QOS Class may not change as a result of resizing"})
            raise e

    api = Refusing()
    ex = executor(api, FakeRaylets())
    plan = Plan((GrowPod("w1", Resources.of(cpu=3000), Resources.of(cpu=3000), Reason.DEMAND_FITS_IN_PLACE, "x"),))
    report = await ex.execute(snap(pod()), plan, 0.0)
    assert report.failed and "QOS" in report.failed[0]
    assert ex.metrics.resize_outcomes.labels("ray/rc", "rejected")._value.get() == 1
