"""Guards: QoS preservation, resizable keys, caps, cooldown, dry run."""

import dataclasses

from autoscaler.model import QoSClass, Resources
from autoscaler.plan.guards import Budget, limits_for, resize_problem, resized_requests, worth_shrinking
from tests.planning import GI, demand, group, node, pod, res, run_plan, snapshot

G = group("cpu", cpu=4, mem_gi=16)


def test_guaranteed_moves_limits_with_requests() -> None:
    p = pod("a", G)
    req = resized_requests(p, 6000, 20 * GI)
    assert limits_for(p, req) == req


def test_burstable_keeps_each_gap_and_missing_keys_stay_missing() -> None:
    p = pod("a", G, qos=QoSClass.BURSTABLE, size=Resources.of(cpu=2000, memory=4 * GI),
            limits=Resources.of(memory=6 * GI))  # no cpu limit
    req = resized_requests(p, 3000, 5 * GI)
    lim = limits_for(p, req)
    assert lim == Resources.of(memory=7 * GI)
    assert resize_problem(p, req, lim, 35) is None


def test_resize_problems() -> None:
    p = pod("a", G, size=res(4, 16, gpu=1), limits=res(4, 16, gpu=1))
    assert resize_problem(p, res(4, 16), res(4, 16), 35) == "resource keys would be added or removed"
    assert resize_problem(p, res(4, 16, gpu=2), res(4, 16, gpu=2), 35) == "gpu is not resizable in place"
    assert resize_problem(p, res(4, 8, gpu=1), res(4, 8, gpu=1), 33) == "Kubernetes 1.33 rejects memory-limit decreases"
    assert resize_problem(p, res(4, 8, gpu=1), res(4, 8, gpu=1), 34) is None
    b = pod("b", G, qos=QoSClass.BURSTABLE, size=res(2, 8), limits=res(4, 8))
    assert resize_problem(b, res(4, 8), res(4, 8), 35) == "a Burstable pod would become Guaranteed"


def test_budget_and_hysteresis() -> None:
    b = Budget(per_node=1, per_cluster=2)
    assert b.take(0) and not b.take(0) and b.take(1) and not b.take(2)
    assert worth_shrinking(10_000, 8_000, 0.1) and not worth_shrinking(10_000, 9_500, 0.1)


def test_existing_in_flight_resizes_count_against_caps() -> None:
    from autoscaler.model import InFlightResize, ResizeState

    g = group("cpu", cpu=4, mem_gi=16, replicas=2, max_replicas=2)
    r = res(6, 16)
    busy = dataclasses.replace(pod("a", g, "n1", in_use=res(4, 4)), requests=r, limits=r,
                               resize_state=ResizeState.IN_PROGRESS, resize_since=9_990.0,
                               in_flight=InFlightResize(r, r, res(4, 16), res(4, 16), 9_990.0, 2, "x"))
    other = pod("b", g, "n1", in_use=res(4, 4))
    snap = snapshot([busy, other], [node("n1", 32, 64)], [g], demands=(demand(4, 1, count=1),))
    p = run_plan(snap, "concurrency: {perNode: 1}")
    assert p.actions == () and p.unserved[0].reason.value == "AtMaxReplicas"
    assert run_plan(snap, "concurrency: {perNode: 2}").actions[0].pod == "b"


def test_dry_run_suppresses_every_action() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=1)
    snap = snapshot([pod("a", g, "n1", in_use=res(4, 4))], [node("n1", 4, 16)], [g], demands=(demand(1, 1),))
    normal = run_plan(snap)
    dry = run_plan(snap, "dryRun: true")
    assert normal.actions and dry.actions == ()
    assert dry.suppressed == normal.actions
    assert any(n.startswith("DryRun") for n in dry.notes)
