from autoscaler.model import (
    ANY_NODE,
    Demand,
    LabelConstraint,
    LabelOperator,
    LabelSelector,
    ResizeState,
    Resources,
)
from tests.planning import GI, group, pod, res


def test_resources_arithmetic_and_zero_keys() -> None:
    a = Resources.of(cpu=1000, memory=GI)
    b = Resources.of(cpu=500, gpu=1000)
    assert (a + b) == Resources.of(cpu=1500, memory=GI, gpu=1000)
    assert (a - a) == Resources()  # zeros are dropped
    assert a.maximum(b)["gpu"] == 1000
    assert Resources.of(cpu=500).fits_in(a) and not b.fits_in(a)
    assert a.get("gpu") == 0
    assert Resources.of(cpu=1000).scale(1.5)["cpu"] == 1500


def test_resources_kubernetes_and_ray_conversions() -> None:
    r = Resources.from_k8s({"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": 1})
    assert r == Resources.of(cpu=1500, memory=2 * GI, gpu=1000)
    assert r.to_k8s() == {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"}
    ray = Resources.from_ray({"CPU": 1.5, "memory": 2 * GI, "GPU": 1, "node:10.0.0.1": 1, "fast_disk": 2})
    assert ray == Resources.of(cpu=1500, memory=2 * GI, gpu=1000, fast_disk=2000)
    assert Resources.of(cpu=1500, memory=GI).to_ray() == {"CPU": 1.5, "memory": float(GI)}


def test_label_semantics_match_ray() -> None:
    labels = {"ray.io/market-type": "spot", "ray.io/node-group": "cpu"}
    assert LabelConstraint.of("ray.io/market-type", "IN", ["spot", "on-demand"]).matches(labels)
    assert not LabelConstraint.of("zone", LabelOperator.IN, ["a"]).matches(labels)  # IN needs the key
    assert LabelConstraint.of("zone", LabelOperator.NOT_IN, ["a"]).matches(labels)  # NOT_IN passes when missing
    assert not LabelConstraint.of("ray.io/market-type", "NOT_IN", ["spot"]).matches(labels)
    assert ANY_NODE.matches({})


def test_selector_parse_ray_syntax() -> None:
    sel = LabelSelector.parse({"a": "x", "b": "!y", "c": "in(p, q)", "d": "!in(r)"})
    ops = {c.key: (c.operator, c.values) for c in sel.constraints}
    assert ops == {
        "a": (LabelOperator.IN, ("x",)),
        "b": (LabelOperator.NOT_IN, ("y",)),
        "c": (LabelOperator.IN, ("p", "q")),
        "d": (LabelOperator.NOT_IN, ("r",)),
    }
    assert LabelSelector.parse({"c": "in(q,p)"}) == LabelSelector.parse({"c": "in(p, q)"})
    assert Demand(Resources.of(cpu=1), 1).selector_chain() == (ANY_NODE,)


def test_group_labels_include_node_group() -> None:
    g = group("gpu-l4", labels={"ray.io/accelerator-type": "L4"}, gpu=1)
    assert g.labels["ray.io/node-group"] == "gpu-l4"
    assert g.has_gpu()


def test_pod_accounting_is_kubernetes_max_rule() -> None:
    g = group("cpu", cpu=4, mem_gi=16)
    p = pod("p", g)
    assert p.accounted() == res(4, 16)
    import dataclasses

    desired = dataclasses.replace(p, requests=res(8, 16), resize_state=ResizeState.DEFERRED)
    assert desired.accounted() == res(8, 16)  # desired counts unless Infeasible
    infeasible = dataclasses.replace(desired, resize_state=ResizeState.INFEASIBLE)
    assert infeasible.accounted() == res(4, 16)


def test_memory_debt_is_what_ray_counts_beyond_the_limit_less_the_reserve() -> None:
    from autoscaler.model import memory_debt

    gi, mi = 2**30, 2**20
    assert memory_debt(8 * gi, 8 * gi, 512 * mi) == 512 * mi  # KubeRay's --memory = the limit
    assert memory_debt(7 * gi, 8 * gi, 512 * mi) == 0  # Ray already below limit − reserve
    assert memory_debt(8 * gi, 8 * gi, None) == memory_debt(9 * gi, 8 * gi, 0) == 0  # no reserve: as before
