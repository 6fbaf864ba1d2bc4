"""Policy ConfigMaps users apply: `rva policy check` accepts them and rva's watch (label selector) sees them.
The content of ``policies/*.yaml`` is tested by tests/unit/test_policy.py; this checks the deployment side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoscaler import annotations as ann
from tests.deploy.conftest import REPO

MANIFEST_POLICIES = sorted(p for p in (REPO / "manifests").rglob("policy-configmap.yaml"))
EXAMPLE_POLICIES = sorted((REPO / "policies").glob("*.yaml"))


def test_rva_policy_check_accepts_the_shipped_policy_configmaps() -> None:
    assert len(MANIFEST_POLICIES) >= 2
    out = subprocess.run([sys.executable, "-m", "autoscaler.cli", "policy", "check", *map(str, MANIFEST_POLICIES)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(": ok") == len(MANIFEST_POLICIES)


def test_rva_policy_check_rejects_a_broken_one(tmp_path: Path) -> None:
    doc = yaml.safe_load(MANIFEST_POLICIES[0].read_text())
    doc["data"]["policy.yaml"] = doc["data"]["policy.yaml"].replace("perNode: 2", "perNode: zero")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    out = subprocess.run([sys.executable, "-m", "autoscaler.cli", "policy", "check", str(bad)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert "concurrency.perNode" in out.stderr


@pytest.mark.parametrize("path", MANIFEST_POLICIES + EXAMPLE_POLICIES, ids=lambda p: str(p.relative_to(REPO)))
def test_policy_configmaps_carry_the_label_rva_watches(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    if doc.get("kind") != "ConfigMap":
        pytest.skip("a bare policy document, not a ConfigMap")
    labels = doc["metadata"].get("labels") or {}
    assert labels.get(ann.POLICY_LABEL) == "true", (
        f"rva only watches ConfigMaps labelled {ann.POLICY_LABEL}=true; "
        f"`kubectl apply -f {path.name}` would be ignored")


def test_the_batch_example_is_the_policy_the_efficiency_benchmark_runs() -> None:
    """docs/efficiency.md reports rva on tpch-gke with policies/batch.yaml: the two must not drift."""
    from autoscaler.policy import load_policy_file, parse_policy
    from autoscaler.replay.scenario import load_scenario

    shipped = load_policy_file(REPO / "policies" / "batch.yaml")
    assert shipped == parse_policy(dict(load_scenario("tpch-gke").rva_policy))
    assert shipped != parse_policy({})  # it is not just the default
