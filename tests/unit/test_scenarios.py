"""The benchmark scenario generator: deterministic, the sizes asked for, realistic content."""

from __future__ import annotations

from collections import Counter

import pytest

from autoscaler.bench.scenarios import GROUP_KINDS, SIZES, Scenario, generate
from autoscaler.model import GPU, NODE_GROUP_LABEL, GangStrategy, LabelOperator


@pytest.fixture(scope="module")
def small() -> Scenario:
    return generate(100, 200, seed=7)


def test_same_seed_same_scenario_other_seed_differs(small: Scenario) -> None:
    assert generate(100, 200, seed=7) == small
    assert generate(100, 200, seed=8).snapshot.pods != small.snapshot.pods


@pytest.mark.parametrize(("pods", "shapes"), [(100, 200), (1_000, 2_000)])
def test_sizes(pods: int, shapes: int) -> None:
    s = generate(pods, shapes, seed=1)
    assert (s.pods, s.shapes) == (pods, shapes)
    assert len(s.snapshot.gangs) == shapes // 20
    keys = [(d.shape, d.selectors) for d in s.snapshot.demands]
    assert len(set(keys)) == len(keys)  # distinct shapes, as the GCS aggregates them


def test_issue_sizes_are_the_three_asked_for() -> None:
    assert SIZES == ((100, 200), (1_000, 2_000), (10_000, 2_000))


def test_twenty_labelled_groups_with_spot_on_demand_and_gpu(small: Scenario) -> None:
    groups = small.snapshot.groups
    assert len(groups) == len(GROUP_KINDS) == 20
    assert all(g.labels[NODE_GROUP_LABEL] == g.name for g in groups)
    markets = Counter(g.labels["ray.io/market-type"] for g in groups)
    assert markets == {"spot": 10, "on-demand": 10}
    accelerators = sorted(g.name for g in groups if g.has_gpu())
    assert accelerators == ["a100-on-demand", "a100-spot", "l4-on-demand", "l4-spot"]
    l4_spot = small.snapshot.group("l4-spot")
    assert l4_spot is not None and l4_spot.replicas == l4_spot.max_replicas  # forces the fallback
    assert all(g.min_replicas <= g.replicas <= g.max_replicas for g in groups)


def test_pods_sit_on_nodes_with_room_to_grow(small: Scenario) -> None:
    snap = small.snapshot
    nodes = {n.name: n for n in snap.nodes}
    running = [p for p in snap.pods if p.phase == "Running"]
    assert len(running) >= 90
    assert all(p.node_name in nodes and p.ray is not None for p in running)
    assert all(n.used.fits_in(n.allocatable) for n in snap.nodes)
    roomy = [p for p in running if nodes[p.node_name or ""].free().get("cpu") >= p.requests.get("cpu")]
    assert len(roomy) > len(running) // 2
    assert all(p.requests.only("cpu", "memory").fits_in(small.pod_max[p.group]) for p in snap.pods)


def test_demand_has_selectors_fallbacks_gangs_and_pressure(small: Scenario) -> None:
    snap = small.snapshot
    chains = [d.selectors for d in snap.demands]
    assert any(len(c) == 0 for c in chains)
    assert any(len(c) >= 2 for c in chains)  # fallbacks
    ops = {c.operator for chain in chains for s in chain for c in s.constraints}
    assert ops == {LabelOperator.IN, LabelOperator.NOT_IN}
    assert any(d.shape.get(GPU) for d in snap.demands)
    assert {g.strategy for g in snap.gangs} == set(GangStrategy)
    assert all(2 <= len(g.bundles) <= 4 for g in snap.gangs)
    running = [p for p in snap.pods if p.phase == "Running"]
    assert len(snap.pressure) == len(running) // 10
    assert set(snap.pressure) <= {p.name for p in running}
