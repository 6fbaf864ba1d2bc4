"""Pure conversion of hand-built ``ClusterResourceState`` protos (shapes as Ray 2.60 emits them)."""

from __future__ import annotations

from ray.core.generated import autoscaler_pb2, common_pb2, gcs_pb2, gcs_service_pb2

from autoscaler.model import Bundle, Demand, Gang, GangStrategy, LabelSelector, Resources
from autoscaler.observe.ray_demand import (
    convert_state,
    duplicate_instance_ids,
    nodes_at_shape_cap,
    parse_gang_details,
    selectors_from_proto,
)

IN, NOT_IN = common_pb2.LABEL_OPERATOR_IN, common_pb2.LABEL_OPERATOR_NOT_IN
GiB = 1024**3


def _selector(*constraints: tuple[str, int, list[str]]) -> common_pb2.LabelSelector:
    sel = common_pb2.LabelSelector()
    for key, op, values in constraints:
        sel.label_constraints.add(label_key=key, operator=op, label_values=values)
    return sel


def _request(bundle: dict[str, float], *selectors: common_pb2.LabelSelector) -> autoscaler_pb2.ResourceRequest:
    req = autoscaler_pb2.ResourceRequest(resources_bundle=bundle)
    req.label_selectors.extend(selectors or [common_pb2.LabelSelector()])
    return req


def _pending(
    state: autoscaler_pb2.ClusterResourceState,
    bundle: dict[str, float],
    count: int,
    *selectors: common_pb2.LabelSelector,
) -> None:
    state.pending_resource_requests.add(request=_request(bundle, *selectors), count=count)


def sel(expr: dict[str, str]) -> LabelSelector:
    return LabelSelector.parse(expr)


def test_nodes_convert_with_canonical_units_labels_and_status() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    state.node_states.add(
        node_id=bytes.fromhex("b96f9ba7" * 7),
        instance_id="raycluster-cpu-workers-xyz12",
        ray_node_type_name="cpu-workers",
        status=autoscaler_pb2.IDLE,
        idle_duration_ms=12_500,
        total_resources={"CPU": 4.0, "memory": 16 * GiB, "worker_slot": 4.0, "node:10.0.0.1": 1.0,
                         "object_store_memory": 3e8},
        available_resources={"CPU": 1.5, "memory": 8 * GiB},
        labels={"ray.io/node-group": "cpu-workers", "disk": "ssd"},
    )  # fmt: skip
    node = convert_state(state).nodes[0]
    assert node.node_id == "b96f9ba7" * 7
    assert node.instance_id == "raycluster-cpu-workers-xyz12" and node.node_type == "cpu-workers"
    assert node.total == Resources.of(cpu=4000, memory=16 * GiB, worker_slot=4000)
    assert node.available == Resources.of(cpu=1500, memory=8 * GiB)
    assert node.labels == {"ray.io/node-group": "cpu-workers", "disk": "ssd"}
    assert node.idle_duration_s == 12.5 and node.status == "IDLE"


def test_demand_normalises_value_order_and_merges_duplicates() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    # Ray emits in(nvme,optane) with either value order: one logical shape, two entries.
    _pending(state, {"CPU": 2.0}, 1, _selector(("team", IN, ["ml"]), ("disk", IN, ["optane", "nvme"])))
    _pending(state, {"CPU": 2.0}, 3, _selector(("disk", IN, ["nvme", "optane"]), ("team", IN, ["ml"])))
    _pending(state, {"CPU": 1.0}, 13)
    _pending(state, {"CPU": 1.0, "memory": 64.0 * GiB}, 3)
    _pending(state, {"CPU": 0.5, "tpu_slice": 1.0}, 1)
    result = convert_state(state)
    assert set(result.demands) == {
        Demand(Resources.of(cpu=2000), 4, (sel({"team": "ml", "disk": "in(nvme,optane)"}),)),
        Demand(Resources.of(cpu=1000), 13, ()),
        Demand(Resources.of(cpu=1000, memory=64 * GiB), 3, ()),
        Demand(Resources.of(cpu=500, tpu_slice=1000), 1, ()),
    }
    assert result.shapes_reported == 5 and result.tasks_reported == 21
    assert not result.truncated


def test_selector_chain_keeps_primary_then_fallbacks_and_not_in() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    _pending(
        state, {"CPU": 1.0}, 2,
        _selector(("ray.io/accelerator-type", IN, ["L4"]), ("ray.io/market-type", IN, ["spot"])),
        _selector(("ray.io/accelerator-type", IN, ["L4"]), ("ray.io/market-type", IN, ["on-demand"])),
    )  # fmt: skip
    _pending(state, {"CPU": 2.0}, 1, _selector(("ray.io/market-type", NOT_IN, ["spot"]), ("disk", IN, ["ssd"])))
    demands = {d.shape: d for d in convert_state(state).demands}
    l4 = demands[Resources.of(cpu=1000)]
    assert l4.selectors == (
        sel({"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}),
        sel({"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"}),
    )
    assert l4.count == 2
    not_spot = demands[Resources.of(cpu=2000)].selectors[0]
    assert not_spot == sel({"ray.io/market-type": "!spot", "disk": "ssd"})
    assert not_spot.matches({"disk": "ssd"}) and not not_spot.matches({"disk": "ssd", "ray.io/market-type": "spot"})


def test_same_shape_with_different_fallback_order_stays_separate() -> None:
    a, b = _selector(("zone", IN, ["a"])), _selector(("zone", IN, ["b"]))
    state = autoscaler_pb2.ClusterResourceState()
    _pending(state, {"CPU": 1.0}, 1, a, b)
    _pending(state, {"CPU": 1.0}, 1, b, a)
    assert len(convert_state(state).demands) == 2


def test_empty_selector_means_any_node() -> None:
    assert selectors_from_proto([common_pb2.LabelSelector()]) == ()
    assert selectors_from_proto([]) == ()
    # A fallback to "anywhere" after a primary is kept: it changes which node wins.
    assert selectors_from_proto([_selector(("zone", IN, ["a"])), common_pb2.LabelSelector()]) == (
        sel({"zone": "a"}),
        LabelSelector(),
    )


def test_placement_group_bound_tasks_are_not_demand() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    pg = "69845719" * 4 + "01000000"
    _pending(state, {f"CPU_group_{pg}": 1.0}, 5)
    _pending(state, {f"CPU_group_0_{pg}": 1.0, "memory": 1.0 * GiB}, 2)
    _pending(state, {"CPU": 1.0, "my_group_size": 1.0}, 1)  # a custom resource that only looks like one
    result = convert_state(state)
    assert result.pg_bound_tasks == 7
    assert result.demands == (Demand(Resources.of(cpu=1000, my_group_size=1000), 1, ()),)


def test_gangs_use_bundle_selectors_and_details() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    pack = state.pending_gang_resource_requests.add(details="ce8541c8:PACK|PENDING")
    pack.requests.extend([_request({"CPU": 2.0}), _request({"CPU": 2.0, "memory": 4.0 * GiB})])
    pack.bundle_selectors.add().resource_requests.extend(list(pack.requests))

    pg = "69845719"
    strict = state.pending_gang_resource_requests.add(details=f"{pg}:STRICT_PACK|RESCHEDULING")
    affinity = autoscaler_pb2.PlacementConstraint(affinity=autoscaler_pb2.AffinityConstraint(label_name=f"_PG_{pg}"))
    legacy = autoscaler_pb2.ResourceRequest(resources_bundle={"CPU": 4.0, "GPU": 1.0}, placement_constraints=[affinity])
    strict.requests.extend([legacy, legacy])  # legacy field: no label selectors
    with_sel = _request({"CPU": 4.0, "GPU": 1.0}, _selector(("ray.io/accelerator-type", IN, ["A100"])))
    with_sel.placement_constraints.append(affinity)
    strict.bundle_selectors.add().resource_requests.extend([with_sel, with_sel])

    spread = state.pending_gang_resource_requests.add(details="0312672b:STRICT_SPREAD|PENDING")
    spread.requests.extend([_request({"CPU": 1.0})] * 3)  # no bundle_selectors at all: legacy only

    gangs = convert_state(state).gangs
    a100 = (sel({"ray.io/accelerator-type": "A100"}),)
    assert gangs == (
        Gang("ce8541c8", GangStrategy.PACK,
             (Bundle(Resources.of(cpu=2000)), Bundle(Resources.of(cpu=2000, memory=4 * GiB)))),
        Gang(pg, GangStrategy.STRICT_PACK, (Bundle(Resources.of(cpu=4000, gpu=1000), a100),) * 2,
             state="RESCHEDULING"),
        Gang("0312672b", GangStrategy.STRICT_SPREAD, (Bundle(Resources.of(cpu=1000)),) * 3),
    )  # fmt: skip


def test_later_bundle_selector_alternatives_extend_the_chain_when_shapes_match() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    gang = state.pending_gang_resource_requests.add(details="aa:PACK|PENDING")
    gang.bundle_selectors.add().resource_requests.append(_request({"CPU": 1.0}, _selector(("zone", IN, ["a"]))))
    gang.bundle_selectors.add().resource_requests.append(_request({"CPU": 1.0}, _selector(("zone", IN, ["b"]))))
    gang.bundle_selectors.add().resource_requests.append(_request({"CPU": 2.0}, _selector(("zone", IN, ["c"]))))
    (bundle,) = convert_state(state).gangs[0].bundles
    assert bundle.selectors == (sel({"zone": "a"}), sel({"zone": "b"}))


def test_parse_gang_details() -> None:
    assert parse_gang_details("abc:STRICT_SPREAD|PENDING") == ("abc", GangStrategy.STRICT_SPREAD, "PENDING")
    assert parse_gang_details("abc:SPREAD") == ("abc", GangStrategy.SPREAD, "PENDING")
    assert parse_gang_details("abc:SOMETHING_NEW|PENDING")[1] is GangStrategy.PACK


def test_cluster_resource_constraints_become_demands() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    constraint = state.cluster_resource_constraints.add()
    constraint.resource_requests.add(request=_request({"CPU": 8.0}), count=2)
    constraint.resource_requests.add(request=_request({"GPU": 1.0}, _selector(("ray.io/accelerator-type", IN, ["L4"]))),
                                     count=1)  # fmt: skip
    assert convert_state(state).constraints == (
        Demand(Resources.of(cpu=8000), 2, ()),
        Demand(Resources.of(gpu=1000), 1, (sel({"ray.io/accelerator-type": "L4"}),)),
    )


def _usage(*shape_counts: int) -> gcs_service_pb2.GetAllResourceUsageReply:
    reply = gcs_service_pb2.GetAllResourceUsageReply()
    for i, n in enumerate(shape_counts):
        data = gcs_pb2.ResourcesData(node_id=bytes([i]) * 28)
        for j in range(n):
            data.resource_load_by_shape.resource_demands.add(shape={f"s{j}": 1.0})
        reply.resource_usage_data.batch.append(data)
    return reply


def test_truncation_from_per_raylet_reports() -> None:
    assert nodes_at_shape_cap(_usage(100, 7), 100) == (bytes([0]).hex() * 28,)
    assert nodes_at_shape_cap(_usage(99, 60), 100) == ()
    state = autoscaler_pb2.ClusterResourceState()
    for i in range(120):  # 2 raylets, 60 distinct shapes each: many, but nobody at the cap
        _pending(state, {f"s{i}": 1.0}, 1)
    assert not convert_state(state, nodes_at_cap=()).truncated
    # Without the per-raylet view, fall back to the merged list reaching the cap.
    assert convert_state(state).truncated
    capped = convert_state(state, nodes_at_cap=("ab",))
    assert capped.truncated and capped.nodes_at_shape_cap == ("ab",)


def test_duplicate_live_instance_ids() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    state.node_states.add(node_id=b"\x01", instance_id="pod-a", status=autoscaler_pb2.DEAD)
    state.node_states.add(node_id=b"\x02", instance_id="pod-a", status=autoscaler_pb2.RUNNING)
    assert not duplicate_instance_ids(state)
    state.node_states.add(node_id=b"\x03", instance_id="pod-a", status=autoscaler_pb2.IDLE)
    assert duplicate_instance_ids(state)


def test_conversion_is_deterministic_and_cache_safe() -> None:
    state = autoscaler_pb2.ClusterResourceState()
    for i in range(50):
        _pending(state, {"CPU": 1.0, f"s{i}": 1.0}, i + 1, _selector(("k", IN, [str(i), "x"])))
    first = convert_state(state)
    second = convert_state(autoscaler_pb2.ClusterResourceState.FromString(state.SerializeToString()))
    assert first == second and first.tasks_reported == sum(range(1, 51))
