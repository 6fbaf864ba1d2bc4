import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.policy import (
    GroupPolicy,
    Policy,
    PolicyError,
    load_policy,
    load_policy_file,
    parse_duration,
    parse_policy,
    policy_json_schema,
)
from autoscaler.policy_cli import main as policy_main

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "policies").glob("*.yaml"))


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy(text)
    return e.value.errors


def test_absent_policy_is_safe_defaults() -> None:
    for p in (load_policy(""), parse_policy(None), Policy.default()):
        g = p.resolve("anything")
        assert g == GroupPolicy()
        assert g.vertical.enabled and g.vertical.sizing.mode == "fit"
        assert g.vertical.max_pod.cpu is None  # bounded by the node
        assert not g.allow_cpu_only_on_gpu
        assert p.dry_run is False
        assert g.memory_pressure.oom_bump_ratio == 1.2
        assert g.memory_pressure.oom_min_bump == 100 * 2**20


def test_overrides_merge_field_by_field() -> None:
    p = load_policy(
        """
groups:
  "*":
    vertical: {maxPod: {cpu: "8", memory: 32Gi}, cooldown: 1m30s, sizing: {quanta: {cpu: 250m}}}
  gpu-l4:
    vertical: {maxPod: {cpu: "44"}, sizing: {mode: to-max}}
    horizontal: {priority: 10}
"""
    )
    l4 = p.resolve("gpu-l4")
    assert l4.vertical.max_pod.cpu == 44_000
    assert l4.vertical.max_pod.memory == 32 * 2**30  # from "*"
    assert l4.vertical.cooldown == 90.0
    assert l4.vertical.sizing.mode == "to-max"
    assert l4.vertical.sizing.quanta.cpu == 250  # from "*"
    assert l4.vertical.sizing.quanta.memory == 128 * 2**20  # built-in default
    assert l4.horizontal.priority == 10
    other = p.resolve("cpu")
    assert other.vertical.max_pod.cpu == 8000 and other.vertical.sizing.mode == "fit"
    assert other.horizontal.priority is None


def test_configmap_and_bare_forms_agree() -> None:
    bare = "dryRun: true\ngroups: {a: {shrink: {enabled: false}}}\n"
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  policy.yaml: |\n" + "".join(
        f"    {line}\n" for line in bare.splitlines()
    )
    assert load_policy(bare) == load_policy(cm)
    assert load_policy(cm).dry_run
    with pytest.raises(PolicyError, match=r"policy\.yaml"):
        load_policy("kind: ConfigMap\ndata: {other: x}\n")


def test_errors_name_the_field_and_the_allowed_values() -> None:
    errs = errors_of("groups: {gpu-l4: {vertical: {sizing: {mode: max}}}}")
    assert errs == ['groups.gpu-l4.vertical.sizing.mode: must be one of fit, step, to-max (got "max")']
    errs = errors_of("groups: {a: {vertical: {sizing: {headrom: 1}}}}")
    assert errs[0].startswith("groups.a.vertical.sizing.headrom: unknown field; allowed: mode, headroom")
    errs = errors_of("dryrun: true")
    assert errs == ["dryrun: unknown field; allowed: dryRun, concurrency, groups"]
    errs = errors_of("groups: {a: {vertical: {maxPod: {memory: 2GB}}}}")
    assert errs[0].startswith("groups.a.vertical.maxPod.memory: must be a Kubernetes quantity")
    errs = errors_of("groups: {a: {vertical: {cooldown: soon}}}")
    assert "groups.a.vertical.cooldown: must be a duration" in errs[0]
    errs = errors_of("concurrency: {perNode: 0}")
    assert errs[0].startswith("concurrency.perNode: input should be greater than or equal to 1")
    errs = errors_of("groups: {a: {vertical: {resources: [cpu, gpu]}}}")
    assert errs == ['groups.a.vertical.resources.1: must be one of cpu, memory (got "gpu")']


def test_cross_field_errors_after_merge() -> None:
    errs = errors_of('groups: {"*": {vertical: {minPod: {cpu: 10}}}, a: {vertical: {maxPod: {cpu: 2}}}}')
    assert errs == ["groups.a.vertical.minPod.cpu: must be ≤ vertical.maxPod.cpu"]
    errs = errors_of("groups: {a: {horizontal: {minReplicas: 3, maxReplicas: 1}}}")
    assert errs == ["groups.a.horizontal.minReplicas: must be ≤ horizontal.maxReplicas"]


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("1h30m") == 5400 and parse_duration(5) == 5.0
    assert parse_duration("250ms") == 0.25
    for bad in ("5x", "-1s", True, "m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_schema_is_json_and_forbids_extras() -> None:
    schema = policy_json_schema()
    json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert "dryRun" in schema["properties"]
    assert schema["$defs"]["Sizing"]["properties"]["mode"]["enum"] == ["fit", "step", "to-max"]


def test_schema_accepts_every_example_policy() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = policy_json_schema()
    for path in POLICIES:
        doc = yaml.safe_load(path.read_text())
        jsonschema.validate(yaml.safe_load(doc["data"]["policy.yaml"]), schema)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_example_policies_pass_check(path: Path) -> None:
    load_policy_file(path)


def test_examples_exist() -> None:
    names = {p.stem for p in POLICIES}
    assert {"default", "memory-heavy", "gpu-spot-fallback", "conservative-dry-run"} <= names


def test_default_example_is_the_built_in_default() -> None:
    assert load_policy_file(ROOT / "policies" / "default.yaml").resolve("x") == GroupPolicy()


def test_policy_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: {gpu-l4: {vertical: {sizing: {mode: max}}}}\n")
    rc = policy_main(argparse.Namespace(policy_command="check", files=[str(POLICIES[0]), str(bad)]))
    out = capsys.readouterr()
    assert rc == 1
    assert f"{POLICIES[0]}: ok" in out.out
    assert 'groups.gpu-l4.vertical.sizing.mode: must be one of fit, step, to-max (got "max")' in out.err
    rc = policy_main(argparse.Namespace(policy_command="check", files=[str(p) for p in POLICIES]))
    assert rc == 0


def test_rva_policy_commands_end_to_end() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "policy", "check", *map(str, POLICIES)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": ok") == len(POLICIES)
    run = subprocess.run([sys.executable, "-m", "autoscaler.cli", "policy", "schema"],
                         capture_output=True, text=True, check=True)
    assert json.loads(run.stdout)["title"].startswith("rva policy")
