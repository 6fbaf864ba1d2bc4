"""The kustomize manifests: every rendered object validates, and the Deployment, RayCluster, monitoring
objects and NetworkPolicy say what the docs promise."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from autoscaler import annotations as ann
from autoscaler import cli
from autoscaler.policy import load_policy
from tests.deploy.conftest import Obj, one, schema_validator
from tests.kuberay_crd import raycluster_validator

K8S_VERSIONS = ("1.33", "1.35")
CRD_KINDS = {"RayCluster", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
#: The agent's default --port, read from its real command line.
AGENT_PORT: int = cli.build_parser(["agent"]).parse_args(["agent"]).port
SCHEMA_OF = {"ServiceMonitor": "servicemonitor", "PodMonitor": "podmonitor", "PrometheusRule": "prometheusrule",
             "RayCluster": "raycluster"}


def _k8s_errors(obj: Obj, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return ["<no schema>"]
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path))}: {e.message}"]
    return []


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", ["base", "examples"])
def test_every_builtin_object_validates_strictly(
    overlay: str, version: str, base_objects: list[Obj], example_objects: list[Obj]
) -> None:
    objs = base_objects if overlay == "base" else example_objects
    kinds = set()
    for obj in objs:
        if obj["kind"] in CRD_KINDS:
            continue  # no schema in kubernetes-validate: checked against our schemas below
        kinds.add(obj["kind"])
        assert _k8s_errors(obj, version) == [], f"{obj['kind']}/{obj['metadata']['name']} invalid at {version}"
    assert {"Deployment", "Role", "ClusterRole", "Service", "NetworkPolicy", "PodDisruptionBudget",
            "ConfigMap", "ServiceAccount", "RoleBinding", "ClusterRoleBinding"} <= kinds


def test_crd_kinds_are_really_unknown_to_kubernetes_validate(example_objects: list[Obj]) -> None:
    for kind in CRD_KINDS:
        assert _k8s_errors(one(example_objects, kind), "1.35") == ["<no schema>"]


def test_strict_validation_catches_unknown_fields(base_objects: list[Obj]) -> None:
    deployment = copy.deepcopy(one(base_objects, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resizePolicyy"] = []
    assert _k8s_errors(deployment, "1.35")


@pytest.mark.parametrize("kind", sorted(SCHEMA_OF))
def test_custom_resources_validate_against_schemas_of_the_fields_used(kind: str, example_objects: list[Obj]) -> None:
    obj = one(example_objects, kind)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schema_validator(SCHEMA_OF[kind]).iter_errors(obj)]
    assert errors == []


@pytest.mark.parametrize("kind", sorted(SCHEMA_OF))
def test_custom_resource_schemas_reject_mistakes(kind: str, example_objects: list[Obj]) -> None:
    obj = copy.deepcopy(one(example_objects, kind))
    obj["spec"]["unknownField"] = 1
    assert list(schema_validator(SCHEMA_OF[kind]).iter_errors(obj))
    broken = copy.deepcopy(one(example_objects, kind))
    if kind == "PrometheusRule":
        broken["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    elif kind == "RayCluster":
        broken["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    elif kind == "ServiceMonitor":
        broken["spec"]["endpoints"][0]["interval"] = "15"
    else:
        broken["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    assert list(schema_validator(SCHEMA_OF[kind]).iter_errors(broken))


def test_raycluster_validates_against_the_real_kuberay_crd(example_objects: list[Obj]) -> None:
    validator = raycluster_validator(strict=True)
    rc = one(example_objects, "RayCluster")
    assert [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(rc)] == []
    broken = copy.deepcopy(rc)
    broken["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resizePolicy"][0]["oops"] = 1
    assert list(validator.iter_errors(broken))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_raycluster_pod_templates_validate_as_kubernetes_pod_templates(
    version: str, example_objects: list[Obj]
) -> None:
    rc = one(example_objects, "RayCluster")
    groups = [("head", rc["spec"]["headGroupSpec"])] + [(g["groupName"], g) for g in rc["spec"]["workerGroupSpecs"]]
    for name, group in groups:
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name},
                    "template": group["template"]}
        assert _k8s_errors(template, version) == [], f"group {name}"


# ---------------------------------------------------------------------------------------------------
# The Deployment
# ---------------------------------------------------------------------------------------------------


def test_deployment_is_hardened_and_highly_available(base_objects: list[Obj]) -> None:
    d = one(base_objects, "Deployment", "rva")
    spec = d["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert spec["replicas"] == 2
    assert pod["serviceAccountName"] == one(base_objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {t["topologyKey"] for t in pod["topologySpreadConstraints"]} >= {"kubernetes.io/hostname"}
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts, "a writable /tmp is needed with a read-only root filesystem"


def test_deployment_runs_a_registered_rva_command_on_the_metrics_port(base_objects: list[Obj]) -> None:
    c = one(base_objects, "Deployment", "rva")["spec"]["template"]["spec"]["containers"][0]
    command = c["args"][0]
    assert command in cli.COMMANDS, f"`rva {command}` is not a registered rva command (autoscaler/cli.py COMMANDS)"
    assert "--namespace=$(POD_NAMESPACE)" in c["args"], "one managed namespace keeps RBAC namespaced"
    port = next(p for p in c["ports"] if p["name"] == "metrics")["containerPort"]
    assert f"--metrics-port={port}" in c["args"]
    svc = one(base_objects, "Service", "rva-metrics")
    assert svc["spec"]["selector"].items() <= one(base_objects, "Deployment")["spec"]["template"]["metadata"][
        "labels"].items()


def test_pdb_and_service_select_the_deployment(base_objects: list[Obj]) -> None:
    labels = one(base_objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pdb = one(base_objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] == 1
    sm = one(base_objects, "ServiceMonitor")
    svc = one(base_objects, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}


def test_network_policy_allows_exactly_what_rva_talks_to(base_objects: list[Obj]) -> None:
    from autoscaler.daemon import DaemonSettings

    np = one(base_objects, "NetworkPolicy")
    labels = one(base_objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert {443, 6443, 53, DaemonSettings().gcs_port, AGENT_PORT} == egress_ports
    ingress_ports = {p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"metrics"}


def test_all_rva_images_are_the_same(example_objects: list[Obj]) -> None:
    images: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "image" and isinstance(v, str) and "rva" in v:
                    images.add(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(example_objects)
    assert len(images) == 1 and ":" in next(iter(images)), images


def test_policy_configmaps_are_labelled_and_valid(example_objects: list[Obj]) -> None:
    from autoscaler.policies import DEFAULT_POLICY_NAME
    from autoscaler.policy import POLICY_KEY

    cms = [o for o in example_objects if o["kind"] == "ConfigMap"]
    assert DEFAULT_POLICY_NAME in {c["metadata"]["name"] for c in cms}
    for cm in cms:
        assert cm["metadata"]["labels"][ann.POLICY_LABEL] == "true"
        load_policy(cm["data"][POLICY_KEY], cm["metadata"]["name"])


# ---------------------------------------------------------------------------------------------------
# The example RayCluster
# ---------------------------------------------------------------------------------------------------


def test_example_raycluster_is_opted_in_and_matches_its_policy(example_objects: list[Obj]) -> None:
    from autoscaler.daemon import cluster_refusal, opted_in

    rc = one(example_objects, "RayCluster")
    assert opted_in(rc) and cluster_refusal(rc) is None
    assert rc["spec"]["enableInTreeAutoscaling"] is False
    policy_cm = one(example_objects, "ConfigMap", rc["metadata"]["annotations"][ann.POLICY])
    policy = load_policy(policy_cm["data"]["policy.yaml"])
    groups = [g["groupName"] for g in rc["spec"]["workerGroupSpecs"]]
    assert {"cpu", "l4-spot", "l4-ondemand"} <= set(groups)
    assert set(policy.groups) - {"*"} == set(groups), "the policy names exactly the RayCluster's groups"
    spot, ondemand = policy.resolve("l4-spot").horizontal, policy.resolve("l4-ondemand").horizontal
    assert spot.priority is not None and ondemand.priority is not None and spot.priority > ondemand.priority
    for g in ("l4-spot", "l4-ondemand"):
        assert "gpu" not in str(policy.resolve(g).vertical.resources).lower()


def _affinity_keys(template: Obj) -> set[str]:
    terms = template["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    return {e["key"] for t in terms for e in t["matchExpressions"]}


def test_example_worker_groups_are_resizable_labelled_and_carry_the_agent(example_objects: list[Obj]) -> None:
    rc = one(example_objects, "RayCluster")
    for g in rc["spec"]["workerGroupSpecs"]:
        name = g["groupName"]
        pod = g["template"]["spec"]
        ray = pod["containers"][0]
        policies = {p["resourceName"]: p["restartPolicy"] for p in ray["resizePolicy"]}
        assert policies == {"cpu": "NotRequired", "memory": "NotRequired"}, name
        env = {e["name"]: e.get("value") for e in ray["env"]}
        assert int(env["RAY_max_resource_shapes_per_load_report"]) > 100, name
        assert "RAY_memory_usage_threshold" in env, name
        assert g["labels"]["ray.io/node-group"] == name
        assert g["labels"]["ray.io/market-type"] in ("spot", "on-demand")
        assert "labels" not in g.get("rayStartParams", {}), "KubeRay >= 1.5 rejects rayStartParams.labels"
        (agent,) = [c for c in pod["initContainers"] if c["name"] == "rva-agent"]
        assert agent["restartPolicy"] == "Always", "native sidecar"
        assert agent["args"][0] == "agent" and "--mode=sidecar" in agent["args"]
        port = next(p for p in agent["ports"] if p["name"] == "rva-agent")["containerPort"]
        assert port == AGENT_PORT == int(g["template"]["metadata"]["annotations"][ann.AGENT_PORT])
        env_agent = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in agent["env"]}
        assert env_agent["POD_UID"] == "metadata.uid"
        mount = next(m for m in agent["volumeMounts"] if m["name"] == "host-cgroup")
        assert mount["readOnly"] is True
        assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    by_name = {g["groupName"]: g for g in rc["spec"]["workerGroupSpecs"]}
    assert by_name["l4-spot"]["labels"]["ray.io/market-type"] == "spot"
    assert by_name["l4-ondemand"]["labels"]["ray.io/market-type"] == "on-demand"
    for g in ("l4-spot", "l4-ondemand"):
        assert {"cloud.google.com/gke-spot", "karpenter.sh/capacity-type"} <= _affinity_keys(by_name[g]["template"])
        assert by_name[g]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_podmonitor_finds_the_agents(example_objects: list[Obj]) -> None:
    pm = one(example_objects, "PodMonitor")
    rc = one(example_objects, "RayCluster")
    assert {e["port"] for e in pm["spec"]["podMetricsEndpoints"]} == {"rva-agent"}
    # KubeRay labels every Ray pod ray.io/is-ray-node=yes; the selector must match that.
    assert pm["spec"]["selector"]["matchLabels"] == {"ray.io/is-ray-node": "yes"}
    targets = {r["targetLabel"] for e in pm["spec"]["podMetricsEndpoints"] for r in e["relabelings"]}
    assert {"cluster", "group"} <= targets
    assert rc["metadata"]["namespace"] == pm["metadata"]["namespace"]
