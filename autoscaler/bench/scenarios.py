"""Seeded benchmark scenarios: one RayCluster with 20 labelled worker groups, pods on nodes, demand.

``generate(pods, shapes, seed)`` is deterministic: the same arguments give an equal snapshot.

* Groups: 16 CPU groups (sizes s/m/l/xl × spot/on-demand × zone a/b) and 4 GPU groups (L4 spot,
  L4 on-demand, A100 on-demand, A100 spot). Every group carries ``ray.io/node-group``,
  ``ray.io/market-type`` and ``ray.io/availability-zone`` labels, GPU groups also
  ``ray.io/accelerator-type``. L4 spot starts at its ``maxReplicas`` (so L4 demand must fall back to
  on-demand) and A100 spot is stocked out.
* Pods: Guaranteed, one or two per node, on nodes whose allocatable is about four pod templates, so
  in-place growth is possible; ~10 % already grown, ~3 % still Pending; Ray state busy / partly
  busy / idle.
* Demand: ``shapes`` distinct entries, of which one in twenty is a gang (PACK, SPREAD, STRICT_PACK,
  STRICT_SPREAD in turn). Task/actor shapes mix plain CPU, spot-then-on-demand fallbacks, zone
  fallbacks, node-group pins, NOT_IN, L4 and A100 GPU chains, big shapes and a few infeasible ones.
* Pressure on 10 % of the running pods (some with a recent OOM kill).

``Scenario.pod_max`` is the per-group pod maximum both rva's policy and Ray's IPPR get.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from autoscaler.model import (
    CPU,
    GPU,
    MEMORY,
    NODE_GROUP_LABEL,
    Bundle,
    Demand,
    Gang,
    GangStrategy,
    GroupState,
    LabelConstraint,
    LabelOperator,
    LabelSelector,
    NodeState,
    PodState,
    Pressure,
    QoSClass,
    RayNodeState,
    Resources,
    Snapshot,
)

GiB = 1024**3
MARKET = "ray.io/market-type"
ZONE = "ray.io/availability-zone"
ACCELERATOR = "ray.io/accelerator-type"
ZONES = ("us-east-1a", "us-east-1b")
#: The three sizes the issue asks for: (pods, shapes).
SIZES: tuple[tuple[int, int], ...] = ((100, 200), (1_000, 2_000), (10_000, 2_000))
#: Node overhead outside the Ray pods (daemonsets, kubelet reservations already subtracted).
SYSTEM_PODS = Resources.of(cpu=250, memory=GiB)


@dataclass(frozen=True, slots=True)
class GroupKind:
    """What the generator needs to know about one worker group."""

    name: str
    pod: Resources  # template requests = limits = Ray resources
    node: Resources  # allocatable of the node type the group runs on
    pod_max: Resources  # per-pod maximum (policy / IPPR)
    labels: Mapping[str, str]
    weight: int  # share of pods
    pods_per_node: int  # at most
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    seed: int
    snapshot: Snapshot
    pod_max: Mapping[str, Resources] = field(default_factory=dict)

    @property
    def pods(self) -> int:
        return len(self.snapshot.pods)

    @property
    def shapes(self) -> int:
        return len(self.snapshot.demands) + len(self.snapshot.gangs)


def _cpu_groups() -> list[GroupKind]:
    sizes = {"s": (2, 8), "m": (4, 16), "l": (8, 32), "xl": (16, 64)}
    weights = {"s": 3, "m": 3, "l": 2, "xl": 1}
    out = []
    for size, (cores, gib) in sizes.items():
        for market in ("spot", "on-demand"):
            for zone in ZONES:
                name = f"cpu-{size}-{market}-{zone[-1]}"
                out.append(
                    GroupKind(
                        name=name,
                        pod=Resources.of(cpu=cores * 1000, memory=gib * GiB),
                        node=Resources.of(cpu=cores * 4000 + 1000, memory=(gib * 4 + 4) * GiB),
                        pod_max=Resources.of(cpu=cores * 3000, memory=gib * 3 * GiB),
                        labels={NODE_GROUP_LABEL: name, MARKET: market, ZONE: zone, "cpu-size": size},
                        weight=weights[size] * 2,
                        pods_per_node=2,
                        priority=10 if market == "spot" else 0,
                    )
                )
    return out


def _gpu_groups() -> list[GroupKind]:
    l4_pod = Resources.of(cpu=6000, memory=24 * GiB, gpu=1000)
    l4_node = Resources.of(cpu=16000, memory=64 * GiB, gpu=1000)
    a100_pod = Resources.of(cpu=10000, memory=80 * GiB, gpu=1000)
    a100_node = Resources.of(cpu=24000, memory=170 * GiB, gpu=2000)
    out = []
    for accel, pod, node, maximum, zone in (
        ("L4", l4_pod, l4_node, Resources.of(cpu=14000, memory=56 * GiB), ZONES[0]),
        ("A100", a100_pod, a100_node, Resources.of(cpu=12000, memory=84 * GiB), ZONES[1]),
    ):
        for market in ("spot", "on-demand"):
            name = f"{accel.lower()}-{market}"
            out.append(
                GroupKind(
                    name=name,
                    pod=pod,
                    node=node,
                    pod_max=maximum,
                    labels={NODE_GROUP_LABEL: name, MARKET: market, ZONE: zone, ACCELERATOR: accel},
                    weight=3 if accel == "L4" else 2,
                    pods_per_node=int(node.get(GPU) // 1000),
                    priority=10 if market == "spot" else 0,
                )
            )
    return out


GROUP_KINDS: tuple[GroupKind, ...] = tuple(_cpu_groups() + _gpu_groups())


def _sel(*constraints: tuple[str, LabelOperator, tuple[str, ...]]) -> LabelSelector:
    return LabelSelector.of(LabelConstraint.of(k, op, v) for k, op, v in constraints)


IN, NOT_IN = LabelOperator.IN, LabelOperator.NOT_IN
SPOT_THEN_ON_DEMAND = (_sel((MARKET, IN, ("spot",))), _sel((MARKET, IN, ("on-demand",))))
ZONE_A_THEN_B = (_sel((ZONE, IN, (ZONES[0],))), _sel((ZONE, IN, (ZONES[1],))))
L4_CHAIN = (
    _sel((ACCELERATOR, IN, ("L4",)), (MARKET, IN, ("spot",))),
    _sel((ACCELERATOR, IN, ("L4",)), (MARKET, IN, ("on-demand",))),
)
A100_CHAIN = (_sel((ACCELERATOR, IN, ("A100",))), _sel((ACCELERATOR, IN, ("L4",))))
ON_DEMAND_ONLY = (_sel((MARKET, NOT_IN, ("spot",))),)
H100 = (_sel((ACCELERATOR, IN, ("H100",))),)


class _Gen:
    def __init__(self, seed: int, taken_at: float) -> None:
        self.rng = random.Random(seed)
        self.now = taken_at
        self.serial = 0

    def hex_id(self, nbytes: int = 28) -> str:
        return self.rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def suffix(self) -> str:
        self.serial += 1
        letters = "bcdfghjklmnpqrstvwxz2456789"
        return "".join(self.rng.choice(letters) for _ in range(5)) + f"{self.serial:x}"

    # ---------------------------------------------------------------- pods and nodes
    def pods_and_nodes(self, count: int) -> tuple[list[PodState], list[NodeState], dict[str, int]]:
        kinds = list(GROUP_KINDS)
        per_group = dict.fromkeys((k.name for k in kinds), 0)
        for kind in self.rng.choices(kinds, weights=[k.weight for k in kinds], k=count):
            per_group[kind.name] += 1
        pods: list[PodState] = []
        nodes: list[NodeState] = []
        for kind in kinds:
            remaining = per_group[kind.name]
            while remaining > 0:
                on_node = min(remaining, self.rng.randint(1, kind.pods_per_node))
                remaining -= on_node
                # Grown pods (up to 2x) must still fit their node together.
                may_grow = (kind.pod.scale(2 * on_node) + SYSTEM_PODS).fits_in(kind.node)
                node_pods = [self.pod(kind, may_grow) for _ in range(on_node)]
                node = self.node(kind, node_pods)
                pods.extend(p if p.phase == "Pending" else _on(p, node.name) for p in node_pods)
                nodes.append(node)
        return pods, nodes, per_group

    def pod(self, kind: GroupKind, may_grow: bool) -> PodState:
        size = kind.pod
        if may_grow and self.rng.random() < 0.10:  # already grown in place once
            grown = kind.pod + kind.pod.only(CPU, MEMORY).scale(self.rng.choice((0.5, 1.0)))
            size = Resources.of({**grown, **grown.only(CPU, MEMORY).minimum(kind.pod_max)})
        name = f"bench-{kind.name}-worker-{self.suffix()}"
        created = self.now - self.rng.uniform(600, 86_400)
        running = self.rng.random() >= 0.03
        actual = size if running else Resources()
        return PodState(
            name=name,
            namespace="ray",
            group=kind.name,
            node_name=None,
            phase="Running" if running else "Pending",
            qos=QoSClass.GUARANTEED,
            container="ray-worker",
            requests=size,
            limits=size,
            allocated=actual,
            actual_requests=actual,
            actual_limits=actual,
            created_at=created,
            started_at=created + 30 if running else None,
            unschedulable_since=None if running else self.now - self.rng.uniform(5, 120),
            ray=self.ray_state(name, kind, size) if running else None,
        )

    def ray_state(self, pod: str, kind: GroupKind, size: Resources) -> RayNodeState:
        node_id = self.hex_id()
        roll = self.rng.random()
        if roll < 0.55:  # busy: no CPU left, a little memory
            available = Resources.of(memory=int(size.get(MEMORY) * self.rng.uniform(0, 0.2)))
            idle, status = 0.0, "RUNNING"
        elif roll < 0.85:  # partly busy
            available = Resources.of(
                cpu=int(size.get(CPU) * self.rng.choice((0.25, 0.5)) // 500 * 500),
                memory=int(size.get(MEMORY) * self.rng.uniform(0.3, 0.5)),
            )
            idle, status = 0.0, "RUNNING"
        else:
            available, idle, status = size, self.rng.uniform(0, 600), "IDLE"
        if size.get(GPU) and status != "IDLE":
            available = available.without(GPU)
        return RayNodeState(
            node_id=node_id, instance_id=pod, node_type=kind.name, total=size, available=available,
            labels={**kind.labels, "ray.io/node-id": node_id}, idle_duration_s=idle, status=status,
        )  # fmt: skip

    def node(self, kind: GroupKind, pods: list[PodState]) -> NodeState:
        used = SYSTEM_PODS
        for p in pods:
            if p.phase != "Pending":
                used = used + p.accounted()
        labels = {
            "topology.kubernetes.io/zone": kind.labels[ZONE],
            "karpenter.sh/capacity-type": kind.labels[MARKET],
            "pool": kind.name,
        }
        return NodeState(name=f"node-{kind.name}-{self.suffix()}", allocatable=kind.node, labels=labels, used=used)

    # ---------------------------------------------------------------- groups
    def groups(self, per_group: Mapping[str, int]) -> list[GroupState]:
        out = []
        for index, kind in enumerate(GROUP_KINDS):
            replicas = per_group[kind.name]
            if kind.name == "l4-spot":
                max_replicas = replicas  # at max: L4 demand must fall back to on-demand
            else:
                max_replicas = replicas + max(8, replicas // self.rng.choice((1, 2, 3)))
            out.append(
                GroupState(
                    name=kind.name, index=index, labels=dict(kind.labels), replicas=replicas,
                    min_replicas=min(replicas, 1 if kind.name.startswith("cpu-s") else 0),
                    max_replicas=max_replicas, num_of_hosts=1, template_requests=kind.pod,
                    template_limits=kind.pod, ray_resources=kind.pod, priority=kind.priority,
                    stocked_out_until=self.now + 300 if kind.name == "a100-spot" else None,
                )
            )  # fmt: skip
        return out

    # ---------------------------------------------------------------- demand
    def shape(self) -> tuple[Resources, tuple[LabelSelector, ...]]:
        r = self.rng
        cores = r.choice((0.25, 0.5, 1, 1, 1.5, 2, 2, 3, 4, 6))
        memory = r.randint(0, 32) * GiB // 2
        cpu_shape = Resources.of(cpu=int(cores * 1000), memory=memory)
        roll = r.random()
        if roll < 0.35:
            return cpu_shape, ()
        if roll < 0.50:
            return cpu_shape, SPOT_THEN_ON_DEMAND
        if roll < 0.60:
            return cpu_shape, ZONE_A_THEN_B
        if roll < 0.68:
            pins = tuple(sorted(r.sample([k.name for k in GROUP_KINDS if k.name.startswith("cpu")], 2)))
            return cpu_shape, (_sel((NODE_GROUP_LABEL, IN, pins)),)
        if roll < 0.73:
            return cpu_shape, ON_DEMAND_ONLY
        if roll < 0.85:
            return Resources.of(cpu=r.choice((1000, 2000, 4000)), memory=r.randint(4, 20) * GiB, gpu=1000), L4_CHAIN
        if roll < 0.90:
            return Resources.of(cpu=r.choice((4000, 8000)), memory=r.randint(32, 72) * GiB, gpu=1000), A100_CHAIN
        if roll < 0.97:  # bigger than most templates: needs growth or a large group
            return Resources.of(cpu=r.choice((8000, 12000, 16000)), memory=r.randint(24, 96) * GiB), ()
        if roll < 0.985:
            return Resources.of(cpu=1000, gpu=1000), H100  # no such group: infeasible
        return Resources.of(cpu=128_000, memory=64 * GiB), ()  # bigger than any pod maximum

    def demands(self, count: int) -> list[Demand]:
        seen: set[tuple[Resources, tuple[LabelSelector, ...]]] = set()
        out: list[Demand] = []
        while len(out) < count:
            shape, selectors = self.shape()
            if (shape, selectors) in seen:
                continue
            seen.add((shape, selectors))
            out.append(Demand(shape=shape, count=min(1 + int(self.rng.expovariate(1.0)), 5), selectors=selectors))
        return out

    def gangs(self, count: int) -> list[Gang]:
        strategies = list(GangStrategy)
        out = []
        for i in range(count):
            strategy = strategies[i % len(strategies)]
            n = self.rng.randint(2, 4)
            if self.rng.random() < 0.2:  # GPU gang on L4
                shape = Resources.of(cpu=2000, memory=8 * GiB, gpu=1000)
                selectors: tuple[LabelSelector, ...] = (L4_CHAIN[1],)
            else:
                shape = Resources.of(cpu=self.rng.choice((1000, 2000, 4000)), memory=self.rng.choice((4, 8)) * GiB)
                selectors = SPOT_THEN_ON_DEMAND if self.rng.random() < 0.3 else ()
            bundles = tuple(Bundle(shape=shape, selectors=selectors) for _ in range(n))
            out.append(Gang(id=self.hex_id(18), strategy=strategy, bundles=bundles))
        return out

    def pressure(self, pods: list[PodState]) -> dict[str, Pressure]:
        running = [p for p in pods if p.phase == "Running"]
        chosen = self.rng.sample(running, max(1, len(running) // 10)) if running else []
        out = {}
        for p in chosen:
            limit = p.limits.get(MEMORY)
            usage = int(limit * self.rng.uniform(0.8, 0.99))
            oom = self.rng.random() < 0.2
            out[p.name] = Pressure(
                pod=p.name, sampled_at=self.now, psi_some_avg10=self.rng.uniform(2, 40),
                psi_full_avg10=self.rng.uniform(0, 10), usage_bytes=usage, limit_bytes=limit,
                peak_usage_bytes=max(usage, int(limit * self.rng.uniform(0.9, 1.0))),
                consecutive_windows=self.rng.randint(0, 6), oom_kills=1 if oom else 0,
                last_oom_at=self.now - self.rng.uniform(1, 60) if oom else None, identity=f"{p.name}/ray-worker/0",
            )  # fmt: skip
        return out


def _on(pod: PodState, node: str) -> PodState:
    return replace(pod, node_name=node)


def generate(pods: int, shapes: int, seed: int = 0, taken_at: float = 1_000_000.0) -> Scenario:
    """A deterministic scenario with ``pods`` worker pods and ``shapes`` demand entries (gangs included)."""
    gen = _Gen(seed, taken_at)
    pod_states, nodes, per_group = gen.pods_and_nodes(pods)
    groups = gen.groups(per_group)
    gang_count = shapes // 20
    snapshot = Snapshot(
        namespace="ray",
        cluster="bench",
        taken_at=taken_at,
        pods=tuple(pod_states),
        nodes=tuple(nodes),
        groups=tuple(groups),
        demands=tuple(gen.demands(shapes - gang_count)),
        gangs=tuple(gen.gangs(gang_count)),
        pressure=gen.pressure(pod_states),
    )
    return Scenario(
        name=f"{pods}-pods-{shapes}-shapes",
        seed=seed,
        snapshot=snapshot,
        pod_max={k.name: k.pod_max for k in GROUP_KINDS},
    )
