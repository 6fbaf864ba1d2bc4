"""Placement groups: PACK / SPREAD / STRICT_PACK / STRICT_SPREAD, all or nothing."""

from autoscaler.actions import GrowPod, ScaleOut
from autoscaler.model import Bundle, Gang, GangStrategy, LabelSelector
from tests.planning import group, kinds, node, pod, res, run_plan, snapshot


def gang(strategy: GangStrategy, *cpus: float, selector: dict[str, str] | None = None) -> Gang:
    sels = (LabelSelector.parse(selector),) if selector else ()
    return Gang("pg-1", strategy, tuple(Bundle(res(c, 1), sels) for c in cpus))


def two_idle_pods(max_replicas: int = 4) -> tuple:
    g = group("cpu", cpu=4, mem_gi=16, replicas=2, max_replicas=max_replicas)
    pods = [pod("a", g, "n1", in_use=res(1, 1)), pod("b", g, "n2", in_use=res(1, 1))]  # 3 CPUs free each
    return g, pods, [node("n1", 4, 16), node("n2", 4, 16)]


def test_pack_and_spread_use_free_capacity_anywhere() -> None:
    g, pods, nodes = two_idle_pods()
    for strategy in (GangStrategy.PACK, GangStrategy.SPREAD):
        assert run_plan(snapshot(pods, nodes, [g], gangs=(gang(strategy, 1.5, 1.5, 1.5),))).actions == ()


def test_strict_pack_needs_one_pod() -> None:
    g, pods, nodes = two_idle_pods()
    p = run_plan(snapshot(pods, nodes, [g], gangs=(gang(GangStrategy.STRICT_PACK, 2, 2),)))
    assert kinds(p) == [("ScaleOut", "cpu", "DemandNeedsNewPods")]  # 4 CPUs on one Ray node: a new pod
    roomy = [node("n1", 8, 32), node("n2", 4, 16)]
    (grow,) = run_plan(snapshot(pods, roomy, [g], gangs=(gang(GangStrategy.STRICT_PACK, 2, 2),))).actions
    assert isinstance(grow, GrowPod) and grow.pod == "a"


def test_strict_spread_needs_distinct_pods() -> None:
    g, pods, nodes = two_idle_pods()
    p = run_plan(snapshot(pods, nodes, [g], gangs=(gang(GangStrategy.STRICT_SPREAD, 1, 1, 1),)))
    (scale,) = p.actions
    assert isinstance(scale, ScaleOut) and scale.count == 1  # a, b and one new pod


def test_all_or_nothing() -> None:
    g, pods, nodes = two_idle_pods(max_replicas=2)
    p = run_plan(snapshot(pods, nodes, [g], gangs=(gang(GangStrategy.STRICT_SPREAD, 1, 1, 1),)))
    assert p.actions == ()  # two bundles would fit, the third cannot: nothing is done
    assert len(p.unserved) == 1 and isinstance(p.unserved[0].demand, Gang)
    assert p.unserved[0].reason.value == "AtMaxReplicas"


def test_gang_selectors() -> None:
    g, pods, nodes = two_idle_pods()
    other = group("gpu", cpu=8, mem_gi=32, replicas=0, labels={"acc": "L4"})
    p = run_plan(snapshot(pods, nodes, [g, other], gangs=(gang(GangStrategy.PACK, 2, selector={"acc": "L4"}),)))
    assert kinds(p) == [("ScaleOut", "gpu", "DemandNeedsNewPods")]
