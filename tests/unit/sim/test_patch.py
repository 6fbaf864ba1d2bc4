"""The three patch types and their error statuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.sim.patch import (
    APPLY,
    JSON_PATCH,
    MERGE,
    STRATEGIC,
    PatchError,
    apply_json_patch,
    apply_patch,
    merge_patch,
    strategic_merge,
)


def _pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
        "spec": {
            "containers": [
                {"name": "ray", "image": "ray:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                 "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                  {"resourceName": "memory", "restartPolicy": "RestartContainer"}],
                 "ports": [{"containerPort": 6379}], "volumeMounts": [{"name": "v", "mountPath": "/tmp"}]},
                {"name": "agent", "image": "agent:1"},
            ],
            "tolerations": [{"key": "a", "operator": "Exists"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]},
    }


def test_strategic_merges_containers_by_name_and_keeps_untouched_fields() -> None:
    out = strategic_merge(_pod(), {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "3"}}}]}},
                          "Pod")
    ray = out["spec"]["containers"][0]
    assert ray["image"] == "ray:1" and ray["resources"]["requests"] == {"cpu": "3", "memory": "1Gi"}
    assert ray["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert out["spec"]["containers"][1] == {"name": "agent", "image": "agent:1"}


def test_strategic_merge_keys_follow_the_go_types() -> None:
    patch = {
        "spec": {"containers": [{"name": "ray", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                                 "ports": [{"containerPort": 8265}],
                                 "resizePolicy": [{"resourceName": "memory", "restartPolicy": "NotRequired"}]}],
                 "tolerations": [{"key": "b", "operator": "Exists"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        "metadata": {"finalizers": ["y"]},
    }
    out = strategic_merge(_pod(), patch, "Pod")
    ray = out["spec"]["containers"][0]
    assert ray["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}]
    assert [p["containerPort"] for p in ray["ports"]] == [6379, 8265]
    # resizePolicy and tolerations are atomic lists in k8s.io/api: replaced, not merged.
    assert ray["resizePolicy"] == [{"resourceName": "memory", "restartPolicy": "NotRequired"}]
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "PodScheduled",
                                                                                  "status": "True"}]
    assert out["metadata"]["finalizers"] == ["x", "y"]


def test_strategic_null_deletes_and_directives() -> None:
    out = strategic_merge(_pod(), {
        "metadata": {"labels": {"a": None}, "$deleteFromPrimitiveList/finalizers": ["x"]},
        "spec": {"containers": [{"name": "agent", "$patch": "delete"},
                                {"name": "ray", "resources": {"limits": {"memory": None}}}],
                 "$setElementOrder/containers": [{"name": "ray"}]},
    }, "Pod")
    assert out["metadata"]["labels"] == {"b": "2"} and out["metadata"]["finalizers"] == []
    assert [c["name"] for c in out["spec"]["containers"]] == ["ray"]
    assert out["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2"}
    replaced = strategic_merge(_pod(), {"metadata": {"labels": {"$patch": "replace", "z": "9"}}}, "Pod")
    assert replaced["metadata"]["labels"] == {"z": "9"}
    whole = strategic_merge(_pod(), {"spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "i"}]}},
                            "Pod")
    assert whole["spec"]["containers"] == [{"name": "new", "image": "i"}]


def test_strategic_element_without_merge_key_is_400() -> None:
    with pytest.raises(PatchError) as e:
        strategic_merge(_pod(), {"spec": {"containers": [{"image": "x"}]}}, "Pod")
    assert e.value.code == 400 and "does not contain declared merge key: name" in e.value.message


def test_merge_patch_replaces_lists_rfc7386() -> None:
    out = merge_patch(_pod(), {"spec": {"containers": [{"name": "ray", "resources": {}}]},
                               "metadata": {"labels": {"a": None, "c": "3"}}})
    assert out["spec"]["containers"] == [{"name": "ray", "resources": {}}]
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}


def test_json_patch_ops_and_escaping() -> None:
    doc = {"metadata": {"annotations": {"ray.io/ippr": "x", "a~b": "1"}}, "spec": {"list": [1, 2]}}
    out = apply_json_patch(doc, [
        {"op": "test", "path": "/metadata/annotations/ray.io~1ippr", "value": "x"},
        {"op": "replace", "path": "/metadata/annotations/a~0b", "value": "2"},
        {"op": "add", "path": "/spec/list/-", "value": 3},
        {"op": "add", "path": "/spec/list/0", "value": 0},
        {"op": "remove", "path": "/spec/list/1"},
        {"op": "copy", "from": "/spec/list", "path": "/spec/copy"},
        {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved/2", "value": 3.0},
    ])
    assert out["metadata"]["annotations"] == {"ray.io/ippr": "x", "a~b": "2"}
    assert out["spec"] == {"list": [0, 2, 3], "moved": [0, 2, 3]}
    assert doc["spec"]["list"] == [1, 2]  # input untouched


@pytest.mark.parametrize("op", [
    {"op": "replace", "path": "/spec/missing", "value": 1},
    {"op": "remove", "path": "/spec/missing"},
    {"op": "add", "path": "/nope/deeper", "value": 1},
    {"op": "test", "path": "/spec/list/0", "value": 9},
    {"op": "replace", "path": "/spec/list/5", "value": 1},
    {"op": "bogus", "path": "/spec"},
])
def test_json_patch_application_errors_are_422(op: dict[str, Any]) -> None:
    with pytest.raises(PatchError) as e:
        apply_json_patch({"spec": {"list": [1]}}, [op])
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert e.value.message == "the server rejected our request due to an error in our request"


def test_dict_sent_as_json_patch_is_400_like_the_real_server() -> None:
    with pytest.raises(PatchError) as e:
        apply_patch(JSON_PATCH, {"spec": {}}, {"spec": {"replicas": 2}}, "RayCluster")
    assert e.value.code == 400
    assert e.value.message == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"


def test_malformed_bodies_are_400() -> None:
    for ctype in (STRATEGIC, MERGE, JSON_PATCH):
        with pytest.raises(PatchError) as e:
            apply_patch(ctype, {}, b"{not json", "Pod")
        assert e.value.code == 400


def test_apply_patch_yaml_merges_containers_by_name() -> None:
    body = "spec:\n  containers:\n  - name: ray\n    resources:\n      requests:\n        cpu: '4'\n"
    out = apply_patch(APPLY, _pod(), body, "Pod")
    assert out["spec"]["containers"][0]["image"] == "ray:1"
    assert out["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "4"


def test_bytes_bodies_are_decoded() -> None:
    out = apply_patch(STRATEGIC, _pod(), json.dumps({"metadata": {"labels": {"c": "3"}}}).encode(), "Pod")
    assert out["metadata"]["labels"] == {"a": "1", "b": "2", "c": "3"}
