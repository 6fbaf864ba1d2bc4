"""The alert rules as a plain Prometheus rules file, extracted from the shipped PrometheusRule.

The PrometheusRule in ``manifests/base/prometheusrule.yaml`` is the one source; promtool needs a plain
rules file (``groups:`` at the top), so tests and users extract ``spec``:

    python -m autoscaler.testing.rules rva-rules.yml
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from autoscaler.testing.manifests import MANIFESTS

PROMETHEUS_RULE = MANIFESTS / "base" / "prometheusrule.yaml"


def rule_groups(path: Path = PROMETHEUS_RULE) -> dict[str, Any]:
    """``{"groups": [...]}`` of the PrometheusRule at ``path``."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if doc.get("kind") != "PrometheusRule":
        raise ValueError(f"{path}: not a PrometheusRule")
    return {"groups": doc["spec"]["groups"]}


def alerts(path: Path = PROMETHEUS_RULE) -> list[dict[str, Any]]:
    return [r for g in rule_groups(path)["groups"] for r in g["rules"] if "alert" in r]


def write_rules_file(dest: Path, source: Path = PROMETHEUS_RULE) -> Path:
    dest.write_text(yaml.safe_dump(rule_groups(source), sort_keys=False), encoding="utf-8")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m autoscaler.testing.rules OUT.yml", file=sys.stderr)
        return 2
    print(write_rules_file(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
