"""Pass 1: demand that fits free (or arriving) capacity needs nothing."""

import dataclasses

from autoscaler.model import InFlightResize, ResizeState
from tests.planning import demand, group, kinds, node, pod, res, run_plan, snapshot


def test_demand_on_free_capacity_needs_nothing() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=2)
    pods = [pod("a", g, "n1", in_use=res(1, 1)), pod("b", g, "n2", in_use=res(2, 2))]
    snap = snapshot(pods, [node("n1"), node("n2")], [g], demands=(demand(1, 1, count=5),))
    p = run_plan(snap)
    assert p.actions == () and p.unserved == ()


def test_pods_on_their_way_count_as_capacity() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=3)
    pods = [
        pod("a", g, "n1", in_use=res(4, 4)),
        pod("pending", g, None, ray=False, phase="Pending"),  # scheduled soon
        pod("starting", g, "n1", ray=False),  # running, raylet not registered yet
    ]  # replicas=3 with 3 pods; a 4th replica below is still to be created
    snap = snapshot(pods, [node("n1", 4.5, 64)], [g], demands=(demand(2, 2, count=4),))
    assert run_plan(snap).actions == ()
    more = dataclasses.replace(snap, groups=(dataclasses.replace(g, replicas=4),), demands=(demand(2, 2, count=6),))
    assert run_plan(more).actions == ()  # the missing replica holds 2 more


def test_accepted_resize_in_flight_counts_as_capacity() -> None:
    g = group("cpu", cpu=4, mem_gi=16, replicas=1)
    target = res(8, 16)
    p = dataclasses.replace(
        pod("a", g, "n1", in_use=res(4, 4)),
        requests=target, limits=target, resize_state=ResizeState.IN_PROGRESS, resize_since=9_990.0,
        in_flight=InFlightResize(target, target, res(4, 16), res(4, 16), 9_990.0, 2, "DemandFitsInPlace"),
    )
    snap = snapshot([p], [node("n1", 4.5, 64)], [g], demands=(demand(2, 1, count=2),))
    assert run_plan(snap).actions == ()  # the 4 CPUs on their way hold both bundles


def test_selector_limits_where_demand_fits() -> None:
    a = group("a", replicas=1, labels={"zone": "a"})
    b = group("b", replicas=0, labels={"zone": "b"})
    pods = [pod("a1", a, "n1")]  # idle: 4 CPUs free, but in zone a
    snap = snapshot(pods, [node("n1", 4, 16)], [a, b], demands=(demand(1, 1, selectors=({"zone": "b"},)),))
    assert kinds(run_plan(snap)) == [("ScaleOut", "b", "DemandNeedsNewPods")]


def test_not_in_passes_when_the_key_is_missing() -> None:
    g = group("cpu", replicas=1)  # no market-type label
    snap = snapshot([pod("a", g, "n1")], [node("n1", 4, 16)], [g],
                    demands=(demand(1, 1, selectors=({"ray.io/market-type": "!spot"},)),))
    assert run_plan(snap).actions == () and run_plan(snap).unserved == ()


def test_node_group_label_is_implied() -> None:
    a, b = group("a", replicas=1), group("b", replicas=1)
    pods = [pod("a1", a, "n1", in_use=res(4, 16)), pod("b1", b, "n2", in_use=res(4, 16))]
    snap = snapshot(pods, [node("n1", 4, 16), node("n2", 4, 16)], [a, b],
                    demands=(demand(1, 1, selectors=({"ray.io/node-group": "b"},)),))
    assert kinds(run_plan(snap)) == [("ScaleOut", "b", "DemandNeedsNewPods")]
