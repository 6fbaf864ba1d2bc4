"""Pure conversion of Ray's ``ClusterResourceState`` (autoscaler.proto) into rva's model.

No I/O and no logging: ``ray_gcs`` does the reading. Hot path for every GCS poll, so conversions of
repeated shapes and selectors are memoised on plain hashable keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from autoscaler.model import (
    ANY_NODE,
    Bundle,
    Demand,
    Gang,
    GangStrategy,
    LabelConstraint,
    LabelOperator,
    LabelSelector,
    RayNodeState,
    Resources,
)

# common.proto LabelSelectorOperator: 1 = LABEL_OPERATOR_IN, 2 = LABEL_OPERATOR_NOT_IN.
_OPERATORS = {1: LabelOperator.IN, 2: LabelOperator.NOT_IN}
# autoscaler.proto NodeStatus.
_STATUS = {0: "UNSPECIFIED", 1: "RUNNING", 2: "DEAD", 3: "IDLE", 4: "DRAINING"}
DEAD = "DEAD"
# Resources Ray creates for placement-group bundles: "CPU_group_<pg>" and "CPU_group_<i>_<pg>".
# Tasks waiting on them are served by the gang's own reservation, so they are not demand.
_PG_RESOURCE = re.compile(r"_group_(\d+_)?[0-9a-f]{32,}$")

SelectorKey = tuple[tuple[tuple[str, int, tuple[str, ...]], ...], ...]


@dataclass(frozen=True, slots=True)
class RayClusterState:
    """One read of a Ray cluster, in model terms."""

    nodes: tuple[RayNodeState, ...]
    demands: tuple[Demand, ...]
    gangs: tuple[Gang, ...]
    constraints: tuple[Demand, ...]
    #: True when some raylet hit its shape cap, so part of the demand is invisible.
    truncated: bool
    #: Raw ``pending_resource_requests`` entries (before normalisation) and their summed counts.
    shapes_reported: int
    tasks_reported: int
    #: Raylets (node id hex) whose load report held ``shape_cap`` or more shapes.
    nodes_at_shape_cap: tuple[str, ...] = ()
    #: Pending tasks that wait for a placement-group bundle (dropped: the gang already asks for it).
    pg_bound_tasks: int = 0
    session_name: str = ""
    version: int = 0


# --------------------------------------------------------------------------------------------------
# Selectors and shapes
# --------------------------------------------------------------------------------------------------


def _selector_key(selectors: Iterable[Any]) -> SelectorKey:
    return tuple(
        tuple((c.label_key, c.operator, tuple(c.label_values)) for c in s.label_constraints) for s in selectors
    )


@lru_cache(maxsize=4096)
def _selectors_from_key(key: SelectorKey) -> tuple[LabelSelector, ...]:
    out = tuple(
        LabelSelector.of(LabelConstraint.of(k, _OPERATORS.get(op, LabelOperator.IN), vals) for k, op, vals in sel)
        for sel in key
    )
    # Ray sends ``[{}]`` for "no selector"; the model spells that as an empty chain.
    return () if out == (ANY_NODE,) else out


def selectors_from_proto(selectors: Iterable[Any]) -> tuple[LabelSelector, ...]:
    """Ray's ordered ``label_selectors`` (primary, then fallbacks) → model selectors, values sorted."""
    return _selectors_from_key(_selector_key(selectors))


@lru_cache(maxsize=16384)
def _shape_from_key(key: tuple[tuple[str, float], ...]) -> Resources:
    return Resources.from_ray(dict(key))


def shape_from_proto(bundle: Mapping[str, float]) -> Resources:
    return _shape_from_key(tuple(sorted(bundle.items())))


def is_pg_bound(bundle: Mapping[str, float]) -> bool:
    return any(_PG_RESOURCE.search(name) for name in bundle)


def _sort_key(item: tuple[tuple[Resources, tuple[LabelSelector, ...]], int]) -> Any:
    (shape, selectors), _ = item
    return (
        shape._items,
        tuple(tuple((c.key, c.operator.value, c.values) for c in s.constraints) for s in selectors),
    )


def _merged(counts: dict[tuple[Resources, tuple[LabelSelector, ...]], int]) -> tuple[Demand, ...]:
    return tuple(Demand(shape, n, sel) for (shape, sel), n in sorted(counts.items(), key=_sort_key) if n > 0)


class _Canon:
    """One normalised (shape, selectors); identity-hashed so merging counts costs a pointer hash."""

    __slots__ = ("pg_bound", "selectors", "shape", "sort_key")

    def __init__(self, shape: Resources, selectors: tuple[LabelSelector, ...], pg_bound: bool) -> None:
        self.shape, self.selectors, self.pg_bound = shape, selectors, pg_bound
        self.sort_key = _sort_key(((shape, selectors), 0))


# Serialized ResourceRequest → its canonical form. Shapes repeat from poll to poll, so after the first
# read an entry costs one (C) serialisation and a dict hit. Bounded: cleared when it grows too big.
_BY_BYTES: dict[bytes, _Canon] = {}
_BY_KEY: dict[tuple[Resources, tuple[LabelSelector, ...]], _Canon] = {}
_CACHE_LIMIT = 50_000


def _canon(raw: bytes, entry: Any) -> _Canon:
    canon = _BY_BYTES.get(raw)
    if canon is None:
        request = entry.request
        bundle = request.resources_bundle
        key = (shape_from_proto(bundle), selectors_from_proto(request.label_selectors))
        canon = _BY_KEY.get(key)
        if canon is None:
            canon = _BY_KEY[key] = _Canon(key[0], key[1], is_pg_bound(bundle))
        _BY_BYTES[raw] = canon
    return canon


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _split_entry(entry: Any) -> tuple[bytes, int]:
    """A ``ResourceRequestByCount`` → (its ``request`` as bytes, count), from one C-level serialisation.

    Fields serialise in number order: ``0x0A len request`` then ``0x10 count``. Reading the two by hand is
    ~3x cheaper than touching ``entry.request`` from Python, which matters at hundreds of shapes per poll.
    Map order inside ``request`` may vary between serialisations; that only costs a cache miss.
    """
    raw = entry.SerializeToString()
    if not raw or raw[0] != 0x0A:
        return b"", entry.count
    length, pos = _varint(raw, 1)
    end = pos + length
    count = _varint(raw, end + 1)[0] if end < len(raw) and raw[end] == 0x10 else entry.count
    return raw[pos:end], count


def demands_from_proto(requests: Iterable[Any]) -> tuple[tuple[Demand, ...], int, int]:
    """``ResourceRequestByCount`` entries → (merged demands, PG-bound tasks dropped, tasks reported).

    Shapes that differ only in label-value order (Ray emits ``in(a,b)`` either way) merge into one.
    """
    if len(_BY_BYTES) > _CACHE_LIMIT:  # only between calls, so one call never splits a shape
        _BY_BYTES.clear()
        _BY_KEY.clear()
    counts: dict[_Canon, int] = {}
    tasks = 0
    for entry in requests:
        raw, n = _split_entry(entry)
        canon = _canon(raw, entry)
        tasks += n
        counts[canon] = counts.get(canon, 0) + n
    pg_bound = 0
    out = []
    for canon, n in sorted(counts.items(), key=lambda kv: kv[0].sort_key):
        if canon.pg_bound:
            pg_bound += n
        elif n > 0:
            out.append(Demand(canon.shape, n, canon.selectors))
    return tuple(out), pg_bound, tasks


def constraints_from_proto(constraints: Iterable[Any]) -> tuple[Demand, ...]:
    """``request_resources`` (``ClusterResourceConstraint``) → demands the cluster must be able to hold."""
    counts: dict[tuple[Resources, tuple[LabelSelector, ...]], int] = {}
    for constraint in constraints:
        for entry in constraint.resource_requests:
            key = (
                shape_from_proto(entry.request.resources_bundle),
                selectors_from_proto(entry.request.label_selectors),
            )
            counts[key] = counts.get(key, 0) + entry.count
    return _merged(counts)


# --------------------------------------------------------------------------------------------------
# Gangs
# --------------------------------------------------------------------------------------------------


def parse_gang_details(details: str) -> tuple[str, GangStrategy, str]:
    """``"<pg_id_hex>:<STRATEGY>|<STATE>"`` → (pg id, strategy, state). Unknown strategies count as PACK
    (the least constraining), so a new Ray strategy degrades instead of dropping the gang."""
    pg_id, _, rest = details.partition(":")
    strategy, _, state = rest.partition("|")
    try:
        parsed = GangStrategy(strategy)
    except ValueError:
        parsed = GangStrategy.PACK
    return pg_id, parsed, state or "PENDING"


def _bundles(requests: Iterable[Any]) -> list[Bundle]:
    return [Bundle(shape_from_proto(r.resources_bundle), selectors_from_proto(r.label_selectors)) for r in requests]


def gang_from_proto(gang: Any) -> Gang:
    """A ``GangResourceRequest``. Bundle label selectors live only in ``bundle_selectors`` (the legacy
    ``requests`` field drops them). Ray's scheduler uses ``bundle_selectors[0]``; later alternatives
    (future PG fallbacks) are appended to each bundle's selector chain when their shapes line up."""
    pg_id, strategy, state = parse_gang_details(gang.details)
    if len(gang.bundle_selectors) == 0:
        return Gang(pg_id, strategy, tuple(_bundles(gang.requests)), state=state)
    bundles = _bundles(gang.bundle_selectors[0].resource_requests)
    for alternative in list(gang.bundle_selectors)[1:]:
        alt = _bundles(alternative.resource_requests)
        if [b.shape for b in alt] != [b.shape for b in bundles]:
            continue
        bundles = [Bundle(b.shape, b.selector_chain() + a.selector_chain()) for b, a in zip(bundles, alt, strict=True)]
    return Gang(pg_id, strategy, tuple(bundles), state=state)


# --------------------------------------------------------------------------------------------------
# Nodes and truncation
# --------------------------------------------------------------------------------------------------


def node_from_proto(node: Any, started_at: float | None = None) -> RayNodeState:
    return RayNodeState(
        node_id=node.node_id.hex(),
        instance_id=node.instance_id,
        node_type=node.ray_node_type_name,
        total=shape_from_proto(node.total_resources),
        available=shape_from_proto(node.available_resources),
        labels=dict(node.labels),
        idle_duration_s=node.idle_duration_ms / 1000.0,
        status=_STATUS.get(node.status, str(node.status)),
        started_at=started_at,
    )


def duplicate_instance_ids(state: Any) -> bool:
    """True when two live raylets claim the same pod (a container restart before the old one is DEAD)."""
    seen: set[str] = set()
    for node in state.node_states:
        if node.status == 2 or not node.instance_id:
            continue
        if node.instance_id in seen:
            return True
        seen.add(node.instance_id)
    return False


def nodes_at_shape_cap(usage_reply: Any, cap: int) -> tuple[str, ...]:
    """From a ``GetAllResourceUsageReply``: raylets whose own load report holds ``cap`` or more shapes.

    A raylet stops adding shapes at ``max_resource_shapes_per_load_report``, so a report that is full
    is (almost certainly) cut short. The merged ``pending_resource_requests`` cannot show this: the GCS
    folds equal shapes from different raylets together.
    """
    batch = usage_reply.resource_usage_data.batch
    return tuple(sorted(d.node_id.hex() for d in batch if len(d.resource_load_by_shape.resource_demands) >= cap))


def convert_state(
    state: Any,
    *,
    shape_cap: int = 100,
    nodes_at_cap: tuple[str, ...] | None = None,
    start_times: Mapping[str, float] | None = None,
) -> RayClusterState:
    """``ClusterResourceState`` → ``RayClusterState``.

    ``nodes_at_cap`` comes from ``nodes_at_shape_cap`` when the caller read the per-raylet usage; without
    it, truncation falls back to the merged list: ``shape_cap`` or more raw entries.
    """
    requests = state.pending_resource_requests
    demands, pg_bound, tasks = demands_from_proto(requests)
    raw_shapes = len(requests)
    at_cap: tuple[str, ...] = nodes_at_cap or ()
    truncated = raw_shapes >= shape_cap if nodes_at_cap is None else bool(nodes_at_cap)
    times = start_times or {}
    nodes = tuple(node_from_proto(n, times.get(n.node_id.hex())) for n in state.node_states)
    return RayClusterState(
        nodes=nodes,
        demands=demands,
        gangs=tuple(gang_from_proto(g) for g in state.pending_gang_resource_requests),
        constraints=constraints_from_proto(state.cluster_resource_constraints),
        truncated=truncated,
        shapes_reported=raw_shapes,
        tasks_reported=tasks,
        nodes_at_shape_cap=at_cap,
        pg_bound_tasks=pg_bound,
        session_name=state.cluster_session_name,
        version=state.cluster_resource_state_version,
    )
