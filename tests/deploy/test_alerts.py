"""Alerts: promtool accepts the rules and their unit tests pass; each alert has a firing and a quiet
test, a runbook section, and uses only metrics rva exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from autoscaler.metrics import Metrics
from autoscaler.testing.rules import PROMETHEUS_RULE, alerts, write_rules_file
from tests.deploy.conftest import REPO, requires_promtool

RULES_TEST = Path(__file__).resolve().parent / "rules_test.yml"
OPERATIONS = REPO / "docs" / "operations.md"
EXPECTED = {"RvaNoLeader", "RvaResizeFailures", "RvaResizeStuck", "RvaActionFailures", "RvaGroupStockout",
            "RvaDemandUnserved", "RvaPolicyInvalid", "RvaGcsUnreachable", "RvaSlowLoop", "RvaClusterRefused"}


def daemon_series_names() -> set[str]:
    """Every series name the daemon exports (counters with ``_total``, histograms with their suffixes)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def test_the_promised_alerts_exist() -> None:
    assert {a["alert"] for a in alerts()} == EXPECTED


def test_alerts_use_only_rva_metrics() -> None:
    exported = daemon_series_names()
    for a in alerts():
        used = set(re.findall(r"\b(rva_[a-z0-9_]+)", a["expr"]))
        assert used, a["alert"]
        assert used <= exported, f"{a['alert']} uses unknown metrics {sorted(used - exported)}"


def test_alerts_have_severity_summary_and_a_runbook_section() -> None:
    headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in OPERATIONS.read_text(encoding="utf-8").splitlines() if line.startswith("#")}
    for a in alerts():
        assert a["labels"]["severity"] in {"critical", "warning", "info"}
        assert a["annotations"]["summary"] and a["annotations"]["description"]
        url = a["annotations"]["runbook_url"]
        assert url.endswith("docs/operations.md#" + a["alert"].lower()), url
        assert a["alert"].lower() in headings, f"docs/operations.md has no section for {a['alert']}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    doc = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for t in doc["tests"]:
        for case in t.get("alert_rule_test") or []:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert firing == EXPECTED
    assert quiet == EXPECTED


@requires_promtool
def test_promtool_check_rules(tmp_path: Path) -> None:
    rules = write_rules_file(tmp_path / "rva-rules.yml")
    out = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


@requires_promtool
def test_promtool_test_rules(tmp_path: Path) -> None:
    write_rules_file(tmp_path / "rva-rules.yml", PROMETHEUS_RULE)
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    out = subprocess.run(["promtool", "test", "rules", RULES_TEST.name], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@requires_promtool
def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """A broken alert (threshold never reached) makes the unit tests fail: the tests really test."""
    broken = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    for rule in broken["spec"]["groups"][0]["rules"]:
        if rule["alert"] == "RvaResizeFailures":
            rule["expr"] = rule["expr"].replace(">= 3", ">= 300")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    write_rules_file(tmp_path / "rva-rules.yml", tmp_path / "broken.yaml")
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    out = subprocess.run(["promtool", "test", "rules", RULES_TEST.name], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert out.returncode != 0
    assert "RvaResizeFailures" in out.stdout + out.stderr
