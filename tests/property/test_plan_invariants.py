"""Planner invariants on generated clusters (hypothesis)."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.actions import GrowPod, Plan, RemovePod, ScaleOut, ShrinkPod
from autoscaler.model import CPU, MEMORY, Demand, LabelSelector, Pressure, Resources, Snapshot
from autoscaler.plan import plan
from autoscaler.plan.horizontal import ensure_min_replicas, scale_out
from autoscaler.plan.inflight import handle_in_flight
from autoscaler.plan.packing import fit_free, ordered, pending_of
from autoscaler.plan.rows import build
from autoscaler.plan.vertical import grow_in_place, size_growth
from autoscaler.policy import Policy, parse_policy
from tests.planning import apply_plan, group, node, pod, res, snapshot
from tests.unit.plan.test_plan_fast_paths import assert_derived_is_projected, assert_fast_paths_match_a_plain_scan

NOW = 100_000.0
LABELS = {"zone": ["a", "b"], "market": ["spot", "od"]}
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def selectors(draw: st.DrawFn) -> tuple[LabelSelector, ...]:
    chain = []
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(LABELS)))
        value = draw(st.sampled_from(LABELS[key]))
        negate = draw(st.booleans())
        chain.append(LabelSelector.parse({key: ("!" if negate else "") + value}))
    return tuple(chain)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Snapshot, Policy]:
    groups = []
    for i in range(draw(st.integers(1, 3))):
        labels = {k: draw(st.sampled_from(v)) for k, v in LABELS.items() if draw(st.booleans())}
        replicas = draw(st.integers(0, 3))
        gpu = 1 if draw(st.integers(0, 5)) == 0 else 0
        groups.append(group(
            f"g{i}", cpu=draw(st.sampled_from([2, 4, 8])), mem_gi=draw(st.sampled_from([4, 8, 16])), gpu=gpu,
            replicas=replicas, min_replicas=draw(st.integers(0, replicas)),
            max_replicas=replicas + draw(st.integers(0, 3)), labels=labels,
            num_of_hosts=draw(st.sampled_from([1, 1, 1, 2])),
            stocked_out_until=NOW + 100 if draw(st.integers(0, 6)) == 0 else None,
        ))
    pods, nodes, pressure = [], [], {}
    for g in groups:
        for j in range(g.replicas * g.num_of_hosts):
            name = f"{g.name}-p{j}"
            if draw(st.integers(0, 6)) == 0:
                pods.append(pod(name, g, None, ray=False, phase="Pending"))
                continue
            size = g.template_requests
            if draw(st.booleans()):  # already grown
                size = size + res(draw(st.sampled_from([0, 2, 4])), draw(st.sampled_from([0, 4])))
            frac = draw(st.sampled_from([0.0, 0.5, 1.0]))
            in_use = Resources.of({k: math.floor(v * frac) for k, v in size.items() if k in (CPU, MEMORY)})
            idle = draw(st.sampled_from([0.0, 30.0, 700.0, 3000.0])) if frac == 0.0 else 0.0
            nname = f"n-{name}"
            spare = res(draw(st.sampled_from([0, 1, 4, 12])), draw(st.sampled_from([0, 2, 16, 48])))
            nodes.append(node(nname, 0, 0))
            nodes[-1] = dataclasses.replace(nodes[-1], allocatable=size + spare + res(0, 0, gpu=1))
            last = draw(st.sampled_from([None, NOW - 30, NOW - 5000]))
            pods.append(pod(name, g, nname, size=size, in_use=in_use, idle_s=idle, last_resized_at=last))
            if draw(st.integers(0, 4)) == 0:
                mem = size[MEMORY]
                pressure[name] = Pressure(
                    name, NOW - 1, draw(st.sampled_from([0.0, 40.0])), 0.0, int(mem * 0.95), mem,
                    draw(st.sampled_from([mem // 2, mem, mem * 2])), draw(st.integers(0, 3)),
                    oom_kills=draw(st.integers(0, 1)), last_oom_at=NOW - 10,
                )
    demands = tuple(
        Demand(res(draw(st.sampled_from([0.5, 1, 2, 3, 6])), draw(st.sampled_from([0, 1, 4, 12])),
                   **({"gpu": 1} if draw(st.integers(0, 5)) == 0 else {})),
               draw(st.integers(1, 4)), draw(selectors()))
        for _ in range(draw(st.integers(0, 5)))
    )
    snap = snapshot(pods, nodes, groups, demands=demands, pressure=pressure, taken_at=NOW)
    max_cpu = draw(st.sampled_from([None, "8", "12"]))
    policy = parse_policy({
        "concurrency": {"perNode": 100, "perCluster": 1000},
        "groups": {"*": {
            "vertical": {"sizing": {"mode": draw(st.sampled_from(["fit", "step", "to-max"]))},
                         **({"maxPod": {"cpu": max_cpu}} if max_cpu else {})},
            "allowCpuOnlyOnGpu": draw(st.booleans()),
        }},
    })
    return snap, policy


def _max(policy: Policy, group_name: str, key: str) -> int | None:
    v = policy.resolve(group_name).vertical.max_pod
    return v.cpu if key == CPU else v.memory


@SETTINGS
@given(clusters())
def test_never_above_policy_max_or_node_allocatable(case: tuple[Snapshot, Policy]) -> None:
    snap, policy = case
    p = plan(snap, policy, NOW)
    pods = {x.name: x for x in snap.pods}
    delta: dict[str, Resources] = {}
    for a in p.actions:
        if isinstance(a, GrowPod):
            before = pods[a.pod]
            for key in (CPU, MEMORY):
                bound = _max(policy, before.group, key)
                if bound is not None:
                    assert a.requests[key] <= max(bound, before.requests[key])
            assert a.requests.get("gpu") == before.requests.get("gpu")
            d = (a.requests - before.requests).only(CPU, MEMORY)
            delta[before.node_name or ""] = delta.get(before.node_name or "", Resources()) + d
    for n in snap.nodes:
        after = n.used + delta.get(n.name, Resources())
        for key in (CPU, MEMORY):
            assert after.get(key) <= max(n.allocatable.get(key), n.used.get(key))


@SETTINGS
@given(clusters())
def test_shrink_never_below_peak_with_margin_and_growth_never_shrinks(case: tuple[Snapshot, Policy]) -> None:
    snap, policy = case
    p = plan(snap, policy, NOW)
    pods = {x.name: x for x in snap.pods}
    for a in p.actions:
        before = pods.get(getattr(a, "pod", ""))
        if isinstance(a, ShrinkPod):
            assert before is not None
            pr = snap.pressure.get(a.pod)
            margin = policy.resolve(before.group).shrink.usage_margin
            if a.requests[MEMORY] < before.requests[MEMORY]:
                assert pr is not None
                assert a.requests[MEMORY] >= pr.peak_usage_bytes * (1 + margin)
            assert a.requests.get(CPU) <= before.requests.get(CPU)
            ray = before.ray
            assert ray is not None
            in_use = ray.total - ray.available
            assert a.requests[CPU] >= in_use.get(CPU)
            if a.ray_memory is not None:  # Ray keeps what it uses and never counts more than the new limit
                after = ray.total.get(MEMORY) + a.ray_memory
                assert a.ray_memory <= 0 and after >= max(0, in_use.get(MEMORY))
                assert after <= (a.limits.get(MEMORY) or a.requests.get(MEMORY))
        if isinstance(a, GrowPod):
            assert before is not None
            assert a.requests.get(CPU) >= before.requests.get(CPU)
            assert a.requests.get(MEMORY) >= before.requests.get(MEMORY)


@SETTINGS
@given(clusters())
def test_replicas_within_bounds(case: tuple[Snapshot, Policy]) -> None:
    snap, policy = case
    p = plan(snap, policy, NOW)
    for a in p.actions:
        if isinstance(a, ScaleOut):
            g = snap.group(a.group)
            assert g is not None
            assert g.replicas < a.replicas <= max(g.max_replicas, g.replicas)
            assert a.count == (a.replicas - g.replicas) * g.num_of_hosts
            assert not (g.stocked_out_until and g.stocked_out_until > NOW)
        if isinstance(a, RemovePod):
            g = snap.group(a.group)
            assert g is not None and a.replicas >= g.min_replicas


@SETTINGS
@given(clusters())
def test_deterministic(case: tuple[Snapshot, Policy]) -> None:
    snap, policy = case
    assert plan(snap, policy, NOW) == plan(snap, policy, NOW)
    # a fresh, equal policy object gives the same plan too (no hidden state)
    assert plan(snap, parse_policy(policy.model_dump(by_alias=True, mode="json", exclude_unset=True)), NOW) == \
        plan(snap, policy, NOW)


@SETTINGS
@given(clusters())
def test_each_bundle_is_served_once(case: tuple[Snapshot, Policy]) -> None:
    """Bundles served in place are never also scaled out for: in place + new pods + unserved = demand."""
    snap, policy = case
    ws = build(snap, policy, NOW)
    handle_in_flight(ws)
    ensure_min_replicas(ws)
    items = ordered(ws, [pending_of(ws, d.shape, d, d.count) for d in snap.demands])
    for item in items:
        fit_free(ws, [item])
        grow_in_place(ws, [item])
    after_growth = [i.in_place for i in items]
    size_growth(ws)
    scale_out(ws, items)
    for item, grown_in_place in zip(items, after_growth, strict=True):
        assert item.in_place + item.new_pods + item.remaining == item.demand.count
        assert item.in_place >= grown_in_place
        assert item.remaining >= 0
    unserved = {id(u.subject): u.units for u in ws.unserved}
    for item in items:
        assert unserved.get(id(item.demand), 0) == item.remaining


def _changes(p: Plan) -> list[object]:
    return list(p.actions)


@SETTINGS
@given(clusters())
def test_apply_then_replan_yields_no_new_actions(case: tuple[Snapshot, Policy]) -> None:
    snap, policy = case
    first = plan(snap, policy, NOW)
    after = apply_plan(snap, first, NOW)
    second = plan(after, policy, NOW + 1)
    assert _changes(second) == [], (first, second)


@SETTINGS
@given(clusters())
def test_the_settle_rounds_workspace_is_the_projected_snapshots(case: tuple[Snapshot, Policy]) -> None:
    """The settle round derives its workspace from the first round's rows instead of building the
    projected snapshot pod by pod: both must give the same rows, room, budget — and round."""
    snap, policy = case
    assert_derived_is_projected(snap, policy, NOW)


@SETTINGS
@given(clusters())
def test_packing_and_growth_match_a_plain_scan_of_every_row(case: tuple[Snapshot, Policy]) -> None:
    assert_fast_paths_match_a_plain_scan(*case)


@st.composite
def shrinkable_pods(draw: st.DrawFn) -> tuple[Snapshot, Policy]:
    """One grown, idle-ish pod whose raylet counts anything from a quarter of its limit (memory grown
    for pressure stays out of Ray) to all of it (as KubeRay starts it), with some memory in use."""
    g = group("cpu", cpu=4, mem_gi=16, replicas=1)
    mem_gi = draw(st.sampled_from([20, 32, 48, 64]))
    size = res(4, mem_gi)
    ray_mem = int(size[MEMORY] * draw(st.sampled_from([0.25, 0.5, 0.9, 1.0])))
    used_mem = int(ray_mem * draw(st.sampled_from([0.0, 0.3, 0.8])))
    p = pod("p", g, "n1", size=size, last_resized_at=NOW - 5000)
    assert p.ray is not None
    ray = dataclasses.replace(p.ray, total=res(4, 0) + Resources.of({MEMORY: ray_mem}),
                              available=res(4, 0) + Resources.of({MEMORY: ray_mem - used_mem}))
    peak = int(size[MEMORY] * draw(st.sampled_from([0.1, 0.3, 0.6])))
    pressure = {"p": Pressure("p", NOW - 1, 0.0, 0.0, peak // 2, size[MEMORY], peak, 0)}
    snap = snapshot([dataclasses.replace(p, ray=ray)], [node("n1", 16, 128)], [g], pressure=pressure, taken_at=NOW)
    reserve = draw(st.sampled_from(["0", "512Mi", "2Gi"]))
    return snap, parse_policy({"groups": {"*": {"vertical": {"memoryReserve": reserve}}}})


@SETTINGS
@given(shrinkable_pods())
def test_a_shrink_leaves_ray_what_it_uses_and_no_more_than_the_new_limit_less_the_reserve(
    case: tuple[Snapshot, Policy],
) -> None:
    snap, policy = case
    shrinks = [a for a in plan(snap, policy, NOW).actions if isinstance(a, ShrinkPod)]
    before = snap.pods[0]
    assert before.ray is not None
    total, used = before.ray.total.get(MEMORY), (before.ray.total - before.ray.available).get(MEMORY)
    reserve = policy.resolve("cpu").vertical.memory_reserve or 0
    for a in shrinks:
        if a.requests[MEMORY] == before.requests[MEMORY]:
            continue
        assert a.ray_memory is not None
        after = total + a.ray_memory
        assert after == max(used, min(total, a.limits[MEMORY] - reserve))  # never gains, never below use
        assert after <= a.limits[MEMORY]
        replanned = plan(apply_plan(snap, Plan((a,)), NOW), policy, NOW + 1)
        assert not [x for x in replanned.actions if isinstance(x, ShrinkPod)]  # and it is done
