"""JSON schemas the simulated apiserver enforces for custom resources (structural defaults + validation).

``raycluster.schema.json`` is rva's own schema of the RayCluster fields it uses (not a copy of the CRD):
``apply_defaults`` fills the CRD defaults (``replicas 0``, ``minReplicas 0``, ``maxReplicas 2147483647``,
``numOfHosts 1``, ``priority 0``) and ``validate`` turns schema violations into field errors in the
apiserver's wording (``spec.workerGroupSpecs[0].replicas: Invalid value: "string": … must be of type
integer``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from autoscaler.sim.apierrors import FieldError

__all__ = ["apply_defaults", "raycluster_schema", "validate"]


@cache
def raycluster_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("raycluster.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        resolved: dict[str, Any] = root["definitions"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def apply_defaults(obj: Any, schema: dict[str, Any] | None = None, root: dict[str, Any] | None = None) -> None:
    """Structural defaulting: every absent property with a ``default`` gets it, recursively."""
    root = root or raycluster_schema()
    schema = _resolve(schema or root, root)
    if isinstance(obj, dict):
        for name, sub in (schema.get("properties") or {}).items():
            sub = _resolve(sub, root)
            if name not in obj and "default" in sub:
                obj[name] = sub["default"]
            if name in obj:
                apply_defaults(obj[name], sub, root)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"], root)


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
               type(None): "null"}


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validate(obj: dict[str, Any]) -> list[FieldError]:
    """Schema violations as field errors; empty when valid (or when jsonschema is not installed)."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema ships with ray and the test extras
        return []
    validator = jsonschema.Draft7Validator(raycluster_schema())
    errors: list[FieldError] = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = _path(err.absolute_path)
        if err.validator == "required":
            missing = str(err.message).split("'")[1]
            errors.append(FieldError("Required", _path([*err.absolute_path, missing])))
        elif err.validator == "type":
            got = _JSON_TYPES.get(type(err.instance), "object")
            errors.append(FieldError("Invalid", path, f'{path} in body must be of type {err.validator_value}: "{got}"',
                                     got))
        elif err.validator == "enum":
            errors.append(FieldError("NotSupported", path, value=err.instance,
                                     supported=tuple(str(v) for v in err.validator_value)))
        else:
            errors.append(FieldError("Invalid", path, str(err.message), err.instance))
    return errors
