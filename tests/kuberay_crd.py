"""KubeRay's real RayCluster CRD (v1.7.0), kept in the tree so every machine checks objects against it.

``tests/data/kuberay/ray.io_rayclusters.v1.7.0.yaml.xz`` is ``../shared/reference/kuberay-crd/`` compressed
(13 KB instead of 934 KB; see ``tests/data/kuberay/README.md``). Tests used to read the reference copy
beside the repository and skipped where it was missing, as on a fresh clone in CI.
"""

from __future__ import annotations

import copy
import functools
import lzma
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_FILE = Path(__file__).parent / "data" / "kuberay" / "ray.io_rayclusters.v1.7.0.yaml.xz"


@functools.cache
def _v1_schema() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # ~1 MB of YAML: the C loader takes a second, not ten
    crd = yaml.load(lzma.decompress(CRD_FILE.read_bytes()).decode("utf-8"), Loader=loader)
    v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = v1["schema"]["openAPIV3Schema"]
    return schema


def _strict(schema: Any) -> None:
    """``additionalProperties: false`` on every object schema that does not preserve unknown fields."""
    if isinstance(schema, dict):
        if (schema.get("type") == "object" and "properties" in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema):
            schema["additionalProperties"] = False
        for v in schema.values():
            _strict(v)
    elif isinstance(schema, list):
        for v in schema:
            _strict(v)


def raycluster_validator(strict: bool) -> jsonschema.Draft7Validator:
    """A validator for RayCluster objects per the CRD's ``v1`` schema. ``strict``: unknown fields are
    errors too (the API server would prune them silently; a field rva writes must not vanish)."""
    schema = copy.deepcopy(_v1_schema())
    if strict:
        _strict(schema)
    return jsonschema.Draft7Validator(schema)
