"""``pods/resize`` registry behaviour and ``ValidatePodResize`` (reference §1.2–1.3, §5.3, §6 cases 3–6)."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.sim.store import ApiError, ObjectStore

SMP = "application/strategic-merge-patch+json"
JSONP = "application/json-patch+json"


def _container(name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
               policy: dict[str, str] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    c: dict[str, Any] = {"name": name, "image": f"img/{name}:1", "resources": res}
    if policy:
        c["resizePolicy"] = [{"resourceName": k, "restartPolicy": v} for k, v in policy.items()]
    return c


def _make(store: ObjectStore, name: str, *containers: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return store.create("pods", {"metadata": {"name": name, "namespace": "default", **meta},
                                 "spec": {"containers": list(containers)}})


def _resize(store: ObjectStore, name: str, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return store.patch("pods", "default", name, {"spec": {"containers": containers}, **extra}, SMP, "resize")


def _error(fn: Any) -> ApiError:
    with pytest.raises(ApiError) as e:
        fn()
    return e.value


# ---------------------------------------------------------------- case 3: QoS
def test_case3_best_effort_cannot_gain_a_request() -> None:
    s = ObjectStore()
    _make(s, "be", _container("c"))
    err = _error(lambda: _resize(s, "be", [{"name": "c", "resources": {"requests": {"memory": "40Mi"}}}]))
    assert err.code == 422 and err.reason == "Invalid"
    assert err.message == 'Pod "be" is invalid: spec: Invalid value: "BestEffort": Pod QOS Class may not change ' \
                          "as a result of resizing"
    assert err.details == {"name": "be", "kind": "Pod", "causes": [{
        "reason": "FieldValueInvalid", "field": "spec",
        "message": 'Invalid value: "BestEffort": Pod QOS Class may not change as a result of resizing'}]}


def test_case3_guaranteed_patching_only_cpu_request() -> None:
    s = ObjectStore()
    _make(s, "g", _container("c", limits={"cpu": "100m", "memory": "200Mi"}))
    err = _error(lambda: _resize(s, "g", [{"name": "c", "resources": {"requests": {"cpu": "50m"}}}]))
    assert err.message == 'Pod "g" is invalid: spec: Invalid value: "Guaranteed": Pod QOS Class may not change ' \
                          "as a result of resizing"


def test_burstable_reaching_requests_equal_limits_shows_current_class() -> None:
    s = ObjectStore()
    _make(s, "victim", _container("c", {"cpu": "100m", "memory": "100Mi"}, {"cpu": "200m", "memory": "200Mi"}))
    err = _error(lambda: _resize(s, "victim", [{"name": "c", "resources": {"requests": {"cpu": "200m",
                                                                                          "memory": "200Mi"}}}]))
    assert 'spec: Invalid value: "Burstable": Pod QOS Class may not change' in err.message


# ---------------------------------------------------------------- case 4: removals and renames
def test_case4_removing_a_limit() -> None:
    s = ObjectStore()
    _make(s, "b", _container("c", {"cpu": "100m", "memory": "100Mi"}, {"cpu": "200m", "memory": "200Mi"}))
    err = _error(lambda: _resize(s, "b", [{"name": "c", "resources": {"limits": {"memory": None}}}]))
    assert err.code == 422
    assert err.message == 'Pod "b" is invalid: spec.containers[0].resources.limits: Forbidden: ' \
                          "resource limits cannot be removed"
    assert err.details is not None and err.details["causes"][0]["reason"] == "FieldValueForbidden"


def test_case4_removing_a_request() -> None:
    s = ObjectStore()
    _make(s, "b", _container("c", {"cpu": "100m", "memory": "100Mi"}, {"memory": "200Mi"}))
    err = _error(lambda: _resize(s, "b", [{"name": "c", "resources": {"requests": {"cpu": None}}}]))
    assert err.message == 'Pod "b" is invalid: spec.containers[0].resources.requests: Forbidden: ' \
                          "resource requests cannot be removed"


def test_case4_reordering_containers_is_an_aggregated_error() -> None:
    s = ObjectStore()
    pod = _make(s, "two", _container("c1", {"cpu": "100m"}), _container("c2", {"cpu": "100m"}))
    pod["spec"]["containers"].reverse()
    err = _error(lambda: s.update("pods", pod, "resize"))
    assert err.message == (
        'Pod "two" is invalid: [spec.containers[0].name: Forbidden: containers may not be renamed or reordered on '
        "resize, spec.containers[1].name: Forbidden: containers may not be renamed or reordered on resize]")
    assert [c["field"] for c in (err.details or {})["causes"]] == ["spec.containers[0].name",
                                                                   "spec.containers[1].name"]


def test_adding_a_container_on_resize_is_refused() -> None:
    s = ObjectStore()
    pod = _make(s, "one", _container("c1", {"cpu": "100m"}))
    pod["spec"]["containers"].append(_container("c2"))
    err = _error(lambda: s.update("pods", pod, "resize"))
    assert err.code == 422 and "containers may not be added or removed on resize" in err.message


# ---------------------------------------------------------------- case 5: memory-limit decrease by version
def _case5(minor: int) -> tuple[ObjectStore, Any]:
    s = ObjectStore(server_minor=minor)
    _make(s, "mem", _container("c", {"memory": "200Mi"}, {"memory": "200Mi"}))

    def patch() -> dict[str, Any]:
        return _resize(s, "mem", [{"name": "c", "resources": {"requests": {"memory": "150Mi"},
                                                             "limits": {"memory": "150Mi"}}}])
    return s, patch


def test_case5_memory_limit_decrease_rejected_on_133() -> None:
    _, patch = _case5(33)
    err = _error(patch)
    assert err.code == 422
    assert err.message == ('Pod "mem" is invalid: spec.containers[0].resources.limits[memory]: Forbidden: memory '
                           "limits cannot be decreased unless resizePolicy is RestartContainer")


@pytest.mark.parametrize("minor", [34, 35])
def test_case5_memory_limit_decrease_allowed_from_134(minor: int) -> None:
    _, patch = _case5(minor)
    pod = patch()
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"memory": "150Mi"}
    assert pod["metadata"]["generation"] == 2


def test_memory_limit_decrease_with_restart_container_is_allowed_on_133() -> None:
    s = ObjectStore(server_minor=33)
    _make(s, "m", _container("c", {"memory": "200Mi"}, {"memory": "200Mi"}, {"memory": "RestartContainer"}))
    pod = _resize(s, "m", [{"name": "c", "resources": {"requests": {"memory": "100Mi"},
                                                      "limits": {"memory": "100Mi"}}}])
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"memory": "100Mi"}


def test_adding_a_memory_limit_rejected_on_133() -> None:
    s = ObjectStore(server_minor=33)
    _make(s, "m", _container("c", {"cpu": "100m", "memory": "100Mi"}))
    err = _error(lambda: _resize(s, "m", [{"name": "c", "resources": {"limits": {"memory": "300Mi"}}}]))
    assert err.message == ('Pod "m" is invalid: spec.containers[0].resources.limits[memory]: Forbidden: memory '
                           "limits cannot be added unless resizePolicy is RestartContainer")


# ---------------------------------------------------------------- case 6: generation
def test_case6_generation_bookkeeping() -> None:
    s = ObjectStore()
    pod = _make(s, "gen", _container("c", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"}))
    assert pod["metadata"]["generation"] == 1
    body = [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]
    first = _resize(s, "gen", body)
    assert first["metadata"]["generation"] == 2
    second = _resize(s, "gen", body)
    assert second["metadata"]["generation"] == 2
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


# ---------------------------------------------------------------- what /resize keeps and drops
def test_resize_keeps_image_and_untouched_resources_and_drops_other_changes() -> None:
    s = ObjectStore()
    _make(s, "p", _container("ray", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"}),
          _container("sidecar", {"cpu": "100m"}), labels={"a": "1"})
    out = s.patch("pods", "default", "p", {
        "metadata": {"labels": {"a": "2"}, "annotations": {"x": "y"}},
        "spec": {"containers": [{"name": "ray", "image": "evil:2", "resources": {"requests": {"cpu": "1500m"}},
                                 "resizePolicy": [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]}],
                 "activeDeadlineSeconds": 5},
        "status": {"phase": "Failed"},
    }, SMP, "resize")
    ray = out["spec"]["containers"][0]
    assert ray["image"] == "img/ray:1"
    assert ray["resources"] == {"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert ray["resizePolicy"] == [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]
    assert out["spec"]["containers"][1]["resources"] == {"requests": {"cpu": "100m"}}
    assert out["metadata"]["labels"] == {"a": "1"} and "annotations" not in out["metadata"]
    assert "activeDeadlineSeconds" not in out["spec"] and out["status"]["phase"] == "Pending"


def test_json_patch_with_numeric_quantities_is_canonicalised() -> None:
    s = ObjectStore()
    _make(s, "p", _container("c", {"cpu": "1", "memory": "1Gi"}, {"cpu": "4", "memory": "8Gi"}))
    out = s.patch("pods", "default", "p", [
        {"op": "replace", "path": "/spec/containers/0/resources/requests/cpu", "value": 2.0},
        {"op": "replace", "path": "/spec/containers/0/resources/requests/memory", "value": 2147483648},
    ], JSONP, "resize")
    assert out["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "2", "memory": "2147483648"}


def test_static_pod_is_refused_first() -> None:
    s = ObjectStore()
    _make(s, "static", _container("c", {"cpu": "1"}), annotations={"kubernetes.io/config.mirror": "abc"})
    err = _error(lambda: _resize(s, "static", [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "1"}}}]))
    assert err.message == 'Pod "static" is invalid: []: Forbidden: static pods cannot be resized'


def test_pod_level_resources_are_refused() -> None:
    s = ObjectStore()
    s.create("pods", {"metadata": {"name": "pl"}, "spec": {
        "resources": {"requests": {"cpu": "1"}}, "containers": [_container("c", {"cpu": "500m"})]}})
    err = _error(lambda: _resize(s, "pl", [{"name": "c", "resources": {"requests": {"cpu": "600m"}}}]))
    assert err.message == 'Pod "pl" is invalid: []: Forbidden: pods with pod-level resources cannot be resized'


def test_non_cpu_memory_change_is_refused() -> None:
    s = ObjectStore()
    _make(s, "gpu", _container("c", {"cpu": "1", "nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}))
    err = _error(lambda: _resize(s, "gpu", [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "2"},
                                                                         "limits": {"nvidia.com/gpu": "2"}}}]))
    assert err.message == 'Pod "gpu" is invalid: spec: Forbidden: only cpu and memory resources are mutable'


def test_spec_validation_runs_first_and_errors_aggregate() -> None:
    s = ObjectStore(server_minor=33)
    _make(s, "agg", _container("c", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "300m", "memory": "300Mi"}))
    err = _error(lambda: _resize(s, "agg", [{"name": "c", "resources": {
        "requests": {"cpu": "500m"}, "limits": {"memory": "100Mi"}}}]))
    assert err.message == (
        'Pod "agg" is invalid: [spec.containers[0].resources.requests: Invalid value: "500m": must be less than or '
        'equal to cpu limit of 300m, spec.containers[0].resources.requests: Invalid value: "200Mi": must be less '
        "than or equal to memory limit of 100Mi, spec.containers[0].resources.limits[memory]: Forbidden: memory "
        "limits cannot be decreased unless resizePolicy is RestartContainer]")


def test_running_pod_without_status_resources_is_refused() -> None:
    s = ObjectStore()
    pod = _make(s, "old", _container("c", {"cpu": "1"}))
    pod["status"]["containerStatuses"] = [{"name": "c", "state": {"running": {}}, "ready": True, "restartCount": 0,
                                           "image": "img/c:1", "imageID": ""}]
    s.update("pods", pod, "status")
    err = _error(lambda: _resize(s, "old", [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]))
    assert err.message == 'Pod "old" is invalid: spec: Forbidden: Pod running on node without support for resize'


def test_sidecar_resize_is_allowed_and_plain_init_container_is_immutable() -> None:
    s = ObjectStore()
    s.create("pods", {"metadata": {"name": "sc"}, "spec": {
        "initContainers": [{**_container("side", {"cpu": "100m"}), "restartPolicy": "Always"},
                           _container("init", {"cpu": "100m"})],
        "containers": [_container("c", {"cpu": "1"})]}})
    out = s.patch("pods", "default", "sc", {"spec": {"initContainers": [
        {"name": "side", "resources": {"requests": {"cpu": "200m"}}}]}}, SMP, "resize")
    assert out["spec"]["initContainers"][0]["resources"]["requests"] == {"cpu": "200m"}
    err = _error(lambda: s.patch("pods", "default", "sc", {"spec": {"initContainers": [
        {"name": "init", "resources": {"requests": {"cpu": "300m"}}}]}}, SMP, "resize"))
    assert err.message == ('Pod "sc" is invalid: spec: Forbidden: '
                           "resources for non-sidecar init containers are immutable")


def test_plain_pod_patch_changing_resources_gets_the_real_422() -> None:
    s = ObjectStore()
    _make(s, "p", _container("c", {"cpu": "1"}))
    err = _error(lambda: s.patch("pods", "default", "p", {"spec": {"containers": [
        {"name": "c", "resources": {"requests": {"cpu": "2"}}}]}}, SMP))
    assert err.code == 422
    assert err.message.startswith(
        'Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
        "it was previously negative)\n")


def test_get_on_resize_returns_the_full_pod() -> None:
    s = ObjectStore()
    _make(s, "p", _container("c", {"cpu": "1"}))
    pod = s.get("pods", "default", "p")
    assert s.update("pods", pod, "resize")["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
