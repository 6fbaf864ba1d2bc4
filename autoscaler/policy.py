"""rva policy: what the planner may do, per worker group, read from a ConfigMap's ``policy.yaml``.

A policy has cluster-wide settings (``dryRun``, ``concurrency``) and per-group settings under
``groups``: the ``"*"`` entry overrides the built-in defaults for every group, and an entry named
after a worker group overrides ``"*"`` for that group only. Overrides merge field by field, so a
group entry only lists what differs. Quantities are Kubernetes quantities (``500m``, ``2Gi``),
durations are seconds or strings such as ``90s``, ``5m``, ``1h30m``.

Accepted documents: a whole ConfigMap (``data["policy.yaml"]`` is parsed), or a bare policy.
An absent or empty policy gives :meth:`Policy.default`, which is safe: in-place growth bounded by
the node, no shrink below the pod template, KubeRay's replica bounds, no dry run.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from autoscaler.model import CPU, MEMORY, Resources
from autoscaler.quantity import QuantityError, format_bytes, format_millicores, to_bytes, to_milli

POLICY_KEY = "policy.yaml"
_M = typing.TypeVar("_M", bound=BaseModel)
DEFAULT_GROUP = "*"

# --------------------------------------------------------------------------------------------------
# Scalar types: Kubernetes quantities and durations
# --------------------------------------------------------------------------------------------------

_QUANTITY_SCHEMA = {
    "anyOf": [{"type": "string", "pattern": r"^[+]?[0-9.]+([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"},
                {"type": "number", "minimum": 0}],
    "description": "Kubernetes quantity, e.g. 500m, 2, 4Gi",
}


def _quantity(convert: typing.Callable[[str | int | float], int]) -> typing.Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"must be a Kubernetes quantity such as 500m or 2Gi (got {json.dumps(value)})")
        try:
            out = convert(value)
        except QuantityError:
            raise ValueError(
                f"must be a Kubernetes quantity such as 500m or 2Gi (got {json.dumps(value)})"
            ) from None
        if out < 0:
            raise ValueError(f"must not be negative (got {json.dumps(value)})")
        return out

    return parse


#: CPU in millicores, written as a Kubernetes quantity (``"1500m"``, ``2``).
MilliCpu = Annotated[
    int,
    BeforeValidator(_quantity(to_milli)),
    PlainSerializer(format_millicores, return_type=str, when_used="json"),
    WithJsonSchema(_QUANTITY_SCHEMA),
]
#: Memory in bytes, written as a Kubernetes quantity (``"2Gi"``, ``"512Mi"``).
Bytes = Annotated[
    int,
    BeforeValidator(_quantity(to_bytes)),
    PlainSerializer(format_bytes, return_type=str, when_used="json"),
    WithJsonSchema(_QUANTITY_SCHEMA),
]

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a Go-style duration string (``"90s"``, ``"5m"``, ``"1h30m"``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a duration such as 30s, 5m or 1h, or a number of seconds (got {value})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value.strip()))
    else:
        raise ValueError(
            f"must be a duration such as 30s, 5m or 1h, or a number of seconds (got {json.dumps(value)})"
        )
    if seconds < 0:
        raise ValueError(f"must not be negative (got {json.dumps(value)})")
    return seconds


Seconds = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h))+$"},
                              {"type": "number", "minimum": 0}],
                    "description": "duration: seconds, or a string such as 30s, 5m, 1h30m"}),
]
Fraction01 = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    """Policy sections: camelCase in YAML, unknown keys are errors, values immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --------------------------------------------------------------------------------------------------
# Per-group sections
# --------------------------------------------------------------------------------------------------


class PodSize(_Section):
    """A cpu/memory size for one Ray container; an unset field means "no bound of this kind"."""

    cpu: MilliCpu | None = None
    memory: Bytes | None = None

    def resources(self) -> Resources:
        return Resources.of({k: v for k, v in ((CPU, self.cpu), (MEMORY, self.memory)) if v is not None})


#: fit: just enough for the demand placed, rounded up to quanta, plus headroom;
#: step: multiply the current size by stepFactor until the demand fits;
#: to-max: jump to the maximum the node allows (Ray IPPR's behaviour), for comparison.
SizingMode = Literal["fit", "step", "to-max"]
ResizableResource = Literal["cpu", "memory"]


def _all_resizable() -> list[ResizableResource]:
    return ["cpu", "memory"]


class Quanta(_Section):
    cpu: MilliCpu = Field(default=100, description="CPU sizes are multiples of this")
    memory: Bytes = Field(default=128 * 2**20, description="memory sizes are multiples of this")


class Sizing(_Section):
    mode: SizingMode = "fit"
    headroom: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        default=0.1, description="fit: extra growth as a fraction of the growth the demand needs"
    )
    step_factor: Annotated[float, Field(gt=1.0, le=16.0)] = Field(
        default=2.0, description="step: multiply the current size by this until the demand fits"
    )
    quanta: Quanta = Quanta()


class ResizeTimeouts(_Section):
    deferred: Seconds = Field(default=300.0, description="PodResizePending reason=Deferred for longer → revert")
    in_progress: Seconds = Field(default=3600.0, description="PodResizeInProgress for longer → revert")


class Vertical(_Section):
    enabled: bool = True
    resources: list[ResizableResource] = Field(
        default_factory=_all_resizable, description="which requests rva may resize"
    )
    min_pod: PodSize = Field(default=PodSize(), description="smallest size; unset = the pod template")
    max_pod: PodSize = Field(default=PodSize(), description="largest size; unset = bounded by the node")
    sizing: Sizing = Sizing()
    resize_timeouts: ResizeTimeouts = ResizeTimeouts()
    cooldown: Seconds = Field(default=60.0, description="no new resize of a pod this soon after its last one")
    hysteresis: Fraction01 = Field(default=0.1, description="ignore downsizes smaller than this fraction")
    memory_reserve: Bytes = Field(
        default=512 * 2**20,
        description="memory of a pod rva grows that Ray does not get to schedule: the raylet, idle workers "
        "and object store share the container's limit (0: Ray gets all memory grown for demand; memory grown "
        "for pressure never goes to Ray)",
    )


class MemoryPressure(_Section):
    enabled: bool = True
    psi_some_avg10: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        default=10.0, description="memory PSI 'some' avg10 (percent) at or above which a window counts"
    )
    usage_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.9, description="usage / limit at or above which a window counts"
    )
    consecutive_windows: Annotated[int, Field(ge=1, le=1000)] = 2
    startup_grace: Seconds = 120.0
    grow_factor: Annotated[float, Field(ge=1.0, le=16.0)] = 1.25
    grow_min: Bytes = 256 * 2**20
    oom_bump_ratio: Annotated[float, Field(ge=1.0, le=16.0)] = Field(default=1.2, description="VPA: 1.2")
    oom_min_bump: Bytes = Field(default=100 * 2**20, description="VPA: 100Mi")


class Shrink(_Section):
    enabled: bool = True
    idle_window: Seconds = Field(default=600.0, description="Ray idle (or unused growth) this long → shrink")
    usage_margin: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        default=0.2, description="never shrink memory below peak usage × (1 + usageMargin)"
    )


class Horizontal(_Section):
    enabled: bool = True
    min_replicas: Annotated[int, Field(ge=0)] | None = Field(default=None, description="unset = the RayCluster's")
    max_replicas: Annotated[int, Field(ge=0)] | None = Field(default=None, description="unset = the RayCluster's")
    idle_timeout: Seconds = Field(default=60.0, description="remove pods Ray reports idle this long")
    priority: int | None = Field(default=None, description="higher is tried first; unset = the RayCluster's")
    stockout_backoff: Seconds = Field(default=300.0, description="skip a stocked-out group this long")
    stockout_time: Seconds = Field(
        default=180.0, description="new pods Unschedulable this long mark the group stocked out"
    )


class GroupPolicy(_Section):
    """The effective policy of one worker group (see :meth:`Policy.resolve`)."""

    vertical: Vertical = Vertical()
    memory_pressure: MemoryPressure = MemoryPressure()
    shrink: Shrink = Shrink()
    horizontal: Horizontal = Horizontal()
    allow_cpu_only_on_gpu: bool = Field(
        default=False, description="let demand without GPUs scale out or grow GPU groups"
    )

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> GroupPolicy:
        problems = self.bound_problems()
        if problems:
            raise ValueError(problems[0])
        return self

    def bound_problems(self) -> list[str]:
        """Cross-field rules, as ``path: message`` relative to the group."""
        out = []
        lo, hi = self.vertical.min_pod, self.vertical.max_pod
        for name in (CPU, MEMORY):
            a, b = getattr(lo, name), getattr(hi, name)
            if a is not None and b is not None and a > b:
                out.append(f"vertical.minPod.{name}: must be ≤ vertical.maxPod.{name}")
        h = self.horizontal
        if h.min_replicas is not None and h.max_replicas is not None and h.min_replicas > h.max_replicas:
            out.append("horizontal.minReplicas: must be ≤ horizontal.maxReplicas")
        return out

    def can_resize(self, resource: str) -> bool:
        return self.vertical.enabled and resource in self.vertical.resources


# --------------------------------------------------------------------------------------------------
# The policy document
# --------------------------------------------------------------------------------------------------


class Concurrency(_Section):
    per_node: Annotated[int, Field(ge=1)] = Field(default=2, description="resizes in flight per node")
    per_cluster: Annotated[int, Field(ge=1)] = Field(default=20, description="resizes in flight per RayCluster")


def _merge(base: _M, over: _M) -> _M:
    """``base`` with every field ``over`` set explicitly (recursively for sections)."""
    update: dict[str, Any] = {}
    for name in over.model_fields_set:
        mine, theirs = getattr(base, name), getattr(over, name)
        if isinstance(mine, BaseModel) and isinstance(theirs, type(mine)):
            update[name] = _merge(mine, theirs)
        else:
            update[name] = theirs
    merged = base.model_copy(update=update)
    # keep "explicitly set" information so a later merge on top of this one still works
    object.__setattr__(merged, "__pydantic_fields_set__", base.model_fields_set | over.model_fields_set)
    return merged


class Policy(_Section):
    """A whole policy: cluster settings and per-group overrides (``"*"`` = every group)."""

    dry_run: bool = Field(default=False, description="plan and explain, but never act")
    concurrency: Concurrency = Concurrency()
    groups: dict[str, GroupPolicy] = Field(
        default_factory=dict, description='per-group overrides; "*" applies to every group'
    )
    _resolved: dict[str, GroupPolicy] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _every_group_resolves(self) -> Policy:
        problems = [f"groups.{name}.{p}" for name in self.groups for p in self.resolve(name).bound_problems()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @staticmethod
    def default() -> Policy:
        return Policy()

    def resolve(self, group: str) -> GroupPolicy:
        """The effective policy of ``group``: defaults ← ``"*"`` ← ``group`` (field by field)."""
        hit = self._resolved.get(group)
        if hit is not None:
            return hit
        resolved = GroupPolicy()
        for key in (DEFAULT_GROUP, group):
            override = self.groups.get(key)
            if override is not None:
                resolved = _merge(resolved, override)
        self._resolved[group] = resolved
        return resolved


# --------------------------------------------------------------------------------------------------
# Loading and error messages
# --------------------------------------------------------------------------------------------------


class PolicyError(ValueError):
    """A policy that does not validate; ``errors`` are ``path: message`` lines."""

    def __init__(self, errors: Sequence[str], source: str = "") -> None:
        self.errors = list(errors)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "invalid policy:\n  " + "\n  ".join(self.errors))


def _field_type_at(loc: Sequence[str | int]) -> Any:
    """The annotation reached by following ``loc`` (aliases) from :class:`Policy`; None if lost."""
    current: Any = Policy
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            match = next(
                (f for n, f in current.model_fields.items() if part in (n, f.alias)), None
            )
            if match is None:
                return None
            current = match.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` so the interesting type is left."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _allowed_keys(loc: Sequence[str | int]) -> list[str]:
    tp = _field_type_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _got(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _describe(err: Mapping[str, Any]) -> str:
    loc = [p for p in err["loc"]]
    path = ".".join(str(p) for p in loc) or "(policy)"
    kind = err["type"]
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        allowed = [a.strip().strip("'\"") for a in re.split(r",| or ", expected) if a.strip()]
        return f"{path}: must be one of {', '.join(allowed)} (got {_got(err['input'])})"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown field{hint}"
    if kind == "missing":
        return f"{path}: required field is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "value_error" and not loc:  # cross-field rules already name their paths
        return "\n  ".join(msg.split("; "))
    if kind == "value_error" and ": must be" in msg:
        return "\n  ".join(f"{path}.{m}" for m in msg.split("; "))
    if kind in ("model_type", "dict_type"):
        allowed = _allowed_keys(loc)
        hint = f" with fields {', '.join(allowed)}" if allowed else ""
        return f"{path}: must be a mapping{hint} (got {_got(err['input'])})"
    if "(got " in msg:
        return f"{path}: {msg}"
    return f"{path}: {msg[0].lower() + msg[1:] if msg else msg} (got {_got(err['input'])})"


def parse_policy(data: Mapping[str, Any] | None, source: str = "") -> Policy:
    """Validate a policy mapping (bare policy or a ConfigMap dict). ``None``/empty → defaults."""
    if not data:
        return Policy.default()
    if not isinstance(data, Mapping):
        raise PolicyError([f"(policy): must be a mapping (got {_got(data)})"], source)
    if data.get("kind") == "ConfigMap":
        raw = (data.get("data") or {}).get(POLICY_KEY)
        if raw is None:
            raise PolicyError([f"data.{POLICY_KEY}: required key is missing from the ConfigMap"], source)
        return load_policy(str(raw), source)
    try:
        return Policy.model_validate(dict(data))
    except ValidationError as e:
        raise PolicyError([_describe(err) for err in e.errors()], source) from None


def load_policy(text: str, source: str = "") -> Policy:
    """Parse a YAML document: a ConfigMap carrying ``policy.yaml``, or a bare policy."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError([f"(yaml): {e}"], source) from None
    if data is not None and not isinstance(data, Mapping):
        raise PolicyError([f"(policy): must be a mapping (got {_got(data)})"], source)
    return parse_policy(data, source)


def load_policy_file(path: str | Path) -> Policy:
    p = Path(path)
    return load_policy(p.read_text(encoding="utf-8"), str(p))


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema of a bare policy document (the content of ``policy.yaml``)."""
    schema = Policy.model_json_schema(by_alias=True)
    schema["title"] = "rva policy (ConfigMap data['policy.yaml'])"
    return schema
