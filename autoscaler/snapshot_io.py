"""Snapshot ↔ JSON-ready dicts, for ``rva explain FILE``, built-in scenarios and tests.

Resources are written as quantities in canonical names: ``{"cpu": "1500m", "memory": "4Gi",
"gpu": "1", "fast_disk": "2"}`` (plain numbers are accepted when reading). Label selectors are a list
of ``{"key", "operator", "values"}`` constraints, or Ray's task syntax ``{"zone": "in(a,b)"}``.
Fields equal to their default are omitted when writing and defaulted when reading.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from autoscaler.model import MEMORY, LabelConstraint, LabelSelector, Resources, Snapshot
from autoscaler.quantity import format_bytes, format_millicores, to_bytes, to_milli

__all__ = [
    "dump_snapshot",
    "load_snapshot",
    "read_snapshot",
    "resources_from_json",
    "resources_to_json",
    "snapshot_from_dict",
    "snapshot_to_dict",
]


class SnapshotFormatError(ValueError):
    """A snapshot document that does not match the model; the message names the field path."""


def resources_to_json(res: Resources) -> dict[str, str]:
    return {k: format_bytes(v) if k == MEMORY else format_millicores(v) for k, v in res._items}


def resources_from_json(data: Mapping[str, Any] | None) -> Resources:
    return Resources.of({k: to_bytes(v) if k == MEMORY else to_milli(v) for k, v in (data or {}).items()})


def _selector_to_json(sel: LabelSelector) -> list[dict[str, Any]]:
    return [{"key": c.key, "operator": c.operator.value, "values": list(c.values)} for c in sel.constraints]


def _selector_from_json(data: Any) -> LabelSelector:
    if isinstance(data, Mapping):
        return LabelSelector.parse({str(k): str(v) for k, v in data.items()})
    return LabelSelector.of(LabelConstraint.of(c["key"], c["operator"], c["values"]) for c in data)


def _encode(value: Any) -> Any:
    if isinstance(value, Resources):
        return resources_to_json(value)
    if isinstance(value, LabelSelector):
        return _selector_to_json(value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
            )
            if default is not dataclasses.MISSING and v == default:
                continue
            out[f.name] = _encode(v)
        return out
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(tp: Any, data: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return _decode(args[0], data, path)
    if tp is Resources:
        return resources_from_json(data)
    if tp is LabelSelector:
        return _selector_from_json(data)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            raise SnapshotFormatError(f"{path}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SnapshotFormatError(f"{path}: unknown fields {unknown}; allowed: {sorted(names)}")
        kwargs = {k: _decode(hints[k], v, f"{path}.{k}") for k, v in data.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:
            raise SnapshotFormatError(f"{path}: {e}") from None
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return tuple(_decode(inner, v, f"{path}[{i}]") for i, v in enumerate(data))
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        kv = typing.get_args(tp)
        inner = kv[1] if kv else Any
        return {str(k): _decode(inner, v, f"{path}.{k}") for k, v in data.items()}
    if tp is float and isinstance(data, int | float):
        return float(data)
    return data


def snapshot_to_dict(snapshot: Snapshot) -> dict[str, Any]:
    out = _encode(snapshot)
    assert isinstance(out, dict)
    return out


def snapshot_from_dict(data: Mapping[str, Any]) -> Snapshot:
    out = _decode(Snapshot, data, "snapshot")
    assert isinstance(out, Snapshot)
    return out


def dump_snapshot(snapshot: Snapshot, indent: int | None = 2) -> str:
    return json.dumps(snapshot_to_dict(snapshot), indent=indent, sort_keys=False)


def load_snapshot(text: str) -> Snapshot:
    """A snapshot from JSON text: the snapshot object itself, or ``{"snapshot": …}`` (scenario files)."""
    data = json.loads(text)
    if isinstance(data, Mapping) and "snapshot" in data:
        data = data["snapshot"]
    return snapshot_from_dict(data)


def read_snapshot(path: str | Path) -> Snapshot:
    return load_snapshot(Path(path).read_text(encoding="utf-8"))
