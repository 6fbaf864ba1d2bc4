"""Resizes in flight: skipped, unless the kubelet said no (then revert and fall back)."""

import dataclasses

import pytest

from autoscaler.actions import RevertResize
from autoscaler.model import InFlightResize, PodState, ResizeState
from tests.planning import GI, demand, group, kinds, node, pod, res, run_plan, snapshot

G = group("cpu", cpu=4, mem_gi=16, replicas=1)
TARGET = res(10, 20)


def resizing(state: ResizeState, since: float, message: str = "") -> PodState:
    base = pod("a", G, "n1", in_use=res(4, 4))
    return dataclasses.replace(
        base, requests=TARGET, limits=TARGET, resize_state=state, resize_since=since, resize_message=message,
        in_flight=InFlightResize(TARGET, TARGET, res(4, 16), res(4, 16), since - 1, 2, "DemandFitsInPlace"),
    )


def snap_with(p: PodState, minor: int = 35) -> object:
    return snapshot([p], [node("n1", 8, 64)], [G], demands=(demand(3, 1),), server_minor=minor)


def test_infeasible_reverts_and_falls_back_at_once() -> None:
    p = run_plan(snap_with(resizing(ResizeState.INFEASIBLE, 9_995.0, "Node didn't have enough capacity")))
    assert kinds(p) == [("RevertResize", "a", "ResizeInfeasible"), ("ScaleOut", "cpu", "DemandNeedsNewPods")]
    revert = p.actions[0]
    assert isinstance(revert, RevertResize)
    assert revert.requests == res(4, 16) and revert.limits == res(4, 16)  # what the kubelet allocated
    assert "enough capacity" in revert.why


def test_deferred_waits_for_its_timeout() -> None:
    young = run_plan(snap_with(resizing(ResizeState.DEFERRED, 9_900.0)))
    assert young.actions == ()  # its growth is on its way: no scale-out either
    old = run_plan(snap_with(resizing(ResizeState.DEFERRED, 9_000.0)))
    assert kinds(old)[0] == ("RevertResize", "a", "ResizeDeferredTimeout")
    assert kinds(old)[1][0] == "ScaleOut"
    custom = run_plan(snap_with(resizing(ResizeState.DEFERRED, 9_900.0)),
                      "groups: {cpu: {vertical: {resizeTimeouts: {deferred: 1m}}}}")
    assert kinds(custom)[0][2] == "ResizeDeferredTimeout"


@pytest.mark.parametrize(("state", "since", "reason"), [
    (ResizeState.ERROR, 9_990.0, "ResizeError"),
    (ResizeState.IN_PROGRESS, 5_000.0, "ResizeInProgressTimeout"),
])
def test_errors_and_stuck_progress_revert(state: ResizeState, since: float, reason: str) -> None:
    assert kinds(run_plan(snap_with(resizing(state, since))))[0] == ("RevertResize", "a", reason)


def test_in_progress_is_left_alone() -> None:
    assert run_plan(snap_with(resizing(ResizeState.IN_PROGRESS, 9_990.0))).actions == ()


def test_revert_on_133_keeps_the_memory_limit() -> None:
    p = run_plan(snap_with(resizing(ResizeState.INFEASIBLE, 9_995.0), minor=33))
    revert = p.actions[0]
    assert revert.limits["memory"] == 20 * GI and revert.requests["memory"] == 20 * GI  # Guaranteed stays
    assert revert.requests["cpu"] == 4000
