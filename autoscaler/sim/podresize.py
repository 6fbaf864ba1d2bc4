"""The pod registry strategy: create defaults, update rules, the status subresource and ``pods/resize``.

Follows ``pkg/registry/core/pod/strategy.go`` and ``pkg/apis/core/validation/validation.go`` as
summarised in the reference (§1.2–1.4, §5.2–5.3): ``/resize`` keeps only containers' ``resources`` and
``resizePolicy`` (``dropNonResizeUpdates``) and runs ``ValidatePodResize`` in order; a plain update that
changes anything but images, ``activeDeadlineSeconds``, added tolerations or the grace period is refused
with ``pod updates may not change fields other than …``. Each ``prepare_*`` returns the object to store
and the field errors (an empty list means valid).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any

from autoscaler.quantity import QuantityError, canonical_quantity
from autoscaler.quantity import parse_quantity as _parse_quantity
from autoscaler.sim.apierrors import ApiError, FieldError

# Quantity parsing is exact (Fractions) and therefore slow; every pod write re-reads the same few values.
canonical: Callable[[str | int | float], str] = lru_cache(maxsize=65536, typed=True)(canonical_quantity)
parse_quantity: Callable[[str | int | float], Fraction] = lru_cache(maxsize=65536, typed=True)(_parse_quantity)

__all__ = [
    "compute_qos",
    "prepare_pod_create",
    "prepare_pod_resize",
    "prepare_pod_status_update",
    "prepare_pod_update",
    "validate_object_name",
]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_CONTAINER_LISTS = ("initContainers", "containers")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_UPDATABLE = ",".join((
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
))


def _clone(x: Any) -> Any:
    if type(x) is dict:
        return {k: _clone(v) for k, v in x.items()}
    if type(x) is list:
        return [_clone(v) for v in x]
    return x


def validate_object_name(name: str, path: str) -> list[FieldError]:
    if len(name) > 253:
        return [FieldError("Invalid", path, "must be no more than 253 characters", name)]
    if not _DNS1123_SUBDOMAIN.match(name):
        return [FieldError("Invalid", path, _SUBDOMAIN_MSG, name)]
    return []


# ---------------------------------------------------------------- quantities and defaults
def _canonical_list(res: Any) -> Any:
    if not isinstance(res, dict):
        return res
    out = {}
    for k, v in res.items():
        try:
            out[k] = canonical(v)
        except QuantityError as e:
            raise ApiError(400, "BadRequest", f'Pod in version "v1" cannot be handled as a Pod: {e}') from None
    return out


def _canonical_requirements(req: Any) -> None:
    if isinstance(req, dict):
        for key in ("requests", "limits"):
            if key in req:
                req[key] = _canonical_list(req[key])


def canonicalise_pod(pod: dict[str, Any]) -> None:
    """Rewrite every resource quantity the way the apiserver serialises it (``1000m`` → ``1``)."""
    spec = pod.get("spec") or {}
    for lst in (*_CONTAINER_LISTS, "ephemeralContainers"):
        for c in spec.get(lst) or []:
            if isinstance(c, dict):
                _canonical_requirements(c.get("resources"))
    _canonical_requirements(spec.get("resources"))
    if "overhead" in spec:
        spec["overhead"] = _canonical_list(spec["overhead"])
    canonicalise_status(pod.get("status") or {})


def canonicalise_status(status: dict[str, Any]) -> None:
    for lst in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(lst) or []:
            if isinstance(cs, dict):
                if "allocatedResources" in cs:
                    cs["allocatedResources"] = _canonical_list(cs["allocatedResources"])
                _canonical_requirements(cs.get("resources"))


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tagless = "@" not in image and ":" not in image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = "Always" if tagless or image.endswith(":latest") else "IfNotPresent"
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    res = c.get("resources")
    if res is None:
        c["resources"] = res = {}
    limits = res.get("limits")
    if isinstance(limits, dict) and limits:
        # SetDefaults_Pod: a missing request defaults to its limit.
        requests = res.setdefault("requests", {})
        if isinstance(requests, dict):
            for k, v in limits.items():
                requests.setdefault(k, v)


def _default_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for lst in _CONTAINER_LISTS:
        for c in spec.get(lst) or []:
            if isinstance(c, dict):
                _default_container(c)


def prepare_pod_create(pod: dict[str, Any]) -> list[FieldError]:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        spec = pod["spec"] = {}
    _default_spec(spec)
    spec.setdefault("priority", 0)  # Priority admission without a PriorityClass
    spec.setdefault("serviceAccountName", "default")  # ServiceAccount admission
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    canonicalise_pod(pod)
    errs = validate_pod_spec(pod)
    pod["status"] = {"phase": "Pending", "qosClass": compute_qos(pod)}
    return errs


# ---------------------------------------------------------------- QoS
def _cpu_mem(res: Any) -> dict[str, Any]:
    return {k: v for k, v in (res or {}).items() if k in ("cpu", "memory")} if isinstance(res, dict) else {}


def compute_qos(pod: dict[str, Any]) -> str:
    """``qos.ComputePodQOS`` over cpu and memory of all containers (pod-level resources win if set)."""
    spec = pod.get("spec") or {}
    pod_res = spec.get("resources") or {}
    if _cpu_mem(pod_res.get("requests")) or _cpu_mem(pod_res.get("limits")):
        sources = [pod_res]
    else:
        sources = [c.get("resources") or {} for lst in _CONTAINER_LISTS for c in spec.get(lst) or []]
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for res in sources:
        req, lim = _cpu_mem(res.get("requests")), _cpu_mem(res.get("limits"))
        for k, v in req.items():
            if parse_quantity(v) != 0:
                requests[k] = requests.get(k, 0) + parse_quantity(v)
        for k, v in lim.items():
            if parse_quantity(v) != 0:
                limits[k] = limits.get(k, 0) + parse_quantity(v)
        if {k for k, v in lim.items() if parse_quantity(v) > 0} != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _pod_qos(pod: dict[str, Any]) -> str:
    """``qos.GetPodQOS``: the stored class when set."""
    return (pod.get("status") or {}).get("qosClass") or compute_qos(pod)


# ---------------------------------------------------------------- spec validation (subset of ValidatePodSpec)
def validate_pod_spec(pod: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = pod.get("spec") or {}
    restart = spec.get("restartPolicy")
    if restart not in ("Always", "OnFailure", "Never"):
        errs.append(FieldError("NotSupported", "spec.restartPolicy", value=restart,
                               supported=("Always", "OnFailure", "Never")))
    if not spec.get("containers"):
        errs.append(FieldError("Required", "spec.containers"))
    names: set[str] = set()
    for lst in _CONTAINER_LISTS:
        for i, c in enumerate(spec.get(lst) or []):
            errs.extend(_validate_container(c, f"spec.{lst}[{i}]", names, restart))
    return errs


def _validate_container(c: Any, path: str, names: set[str], pod_restart: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(c, dict):
        return [FieldError("Invalid", path, "must be an object", c)]
    name = c.get("name")
    if not name:
        errs.append(FieldError("Required", f"{path}.name"))
    elif not _DNS1123_LABEL.match(name):
        errs.append(FieldError("Invalid", f"{path}.name", _LABEL_MSG, name))
    elif name in names:
        errs.append(FieldError("Duplicate", f"{path}.name", value=name))
    else:
        names.add(name)
    if not c.get("image"):
        errs.append(FieldError("Required", f"{path}.image"))
    res = c.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    for kind, lst in (("limits", limits), ("requests", requests)):
        for k, v in lst.items():
            if parse_quantity(v) < 0:
                errs.append(FieldError("Invalid", f"{path}.resources.{kind}[{k}]", "must be greater than or equal to 0",
                                       v))
    for k, v in requests.items():
        if k in limits and parse_quantity(v) > parse_quantity(limits[k]):
            errs.append(FieldError("Invalid", f"{path}.resources.requests",
                                   f"must be less than or equal to {k} limit of {limits[k]}", v))
    seen: set[str] = set()
    for j, pol in enumerate(c.get("resizePolicy") or []):
        ppath = f"{path}.resizePolicy[{j}]"
        rname, rpol = pol.get("resourceName"), pol.get("restartPolicy")
        if rname not in ("cpu", "memory"):
            errs.append(FieldError("NotSupported", f"{ppath}.resourceName", value=rname, supported=("cpu", "memory")))
        elif rname in seen:
            errs.append(FieldError("Duplicate", f"{ppath}.resourceName", value=rname))
        seen.add(str(rname))
        if rpol not in ("NotRequired", "RestartContainer"):
            errs.append(FieldError("NotSupported", f"{ppath}.restartPolicy", value=rpol,
                                   supported=("NotRequired", "RestartContainer")))
        elif pod_restart == "Never" and rpol != "NotRequired":
            errs.append(FieldError("Invalid", f"{ppath}.restartPolicy",
                                   "must be 'NotRequired' when `restartPolicy` is 'Never'", rpol))
    return errs


# ---------------------------------------------------------------- plain update
def _spec_diff(old: Any, new: Any, path: str = "") -> list[str]:
    if type(old) is not type(new) or not isinstance(old, dict | list):
        if old == new:
            return []
        return [f"- \t{path or '.'}: {json.dumps(old)}", f"+ \t{path or '.'}: {json.dumps(new)}"]
    out: list[str] = []
    if isinstance(old, dict):
        for k in sorted(set(old) | set(new)):
            out += _spec_diff(old.get(k), new.get(k), f"{path}.{k}" if path else k)
    else:
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else None
            b = new[i] if i < len(new) else None
            out += _spec_diff(a, b, f"{path}[{i}]")
    return out


def prepare_pod_update(new: dict[str, Any], old: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        spec = new["spec"] = {}
    _default_spec(spec)
    canonicalise_pod(new)
    if "status" in old:
        new["status"] = _clone(old["status"])
    else:
        new.pop("status", None)
    errs = validate_pod_spec(new)
    old_spec = old.get("spec") or {}
    munged = _clone(spec)
    for lst in _CONTAINER_LISTS:
        olds, news = old_spec.get(lst) or [], munged.get(lst) or []
        if len(olds) == len(news):
            for o, n in zip(olds, news, strict=True):
                if isinstance(n, dict) and "image" in o:
                    n["image"] = o["image"]
    for k in ("activeDeadlineSeconds",):
        if k in old_spec:
            munged[k] = old_spec[k]
        else:
            munged.pop(k, None)
    old_grace, new_grace = old_spec.get("terminationGracePeriodSeconds"), munged.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    old_tol, new_tol = old_spec.get("tolerations") or [], munged.get("tolerations") or []
    if all(t in new_tol for t in old_tol):
        if "tolerations" in old_spec:
            munged["tolerations"] = old_spec["tolerations"]
        else:
            munged.pop("tolerations", None)
    if munged != old_spec:
        diff = "\n".join(["  core.PodSpec{", *_spec_diff(old_spec, munged), "  }"])
        detail = f"pod updates may not change fields other than {_UPDATABLE}\n{diff}"
        errs.append(FieldError("Forbidden", "spec", detail))
    return new, errs


# ---------------------------------------------------------------- status subresource
def prepare_pod_status_update(new: dict[str, Any], old: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    # Committed objects are immutable, so the new version may share everything but metadata and status.
    status = _clone(new.get("status") or {})
    canonicalise_status(status)
    merged = {**old, "metadata": dict(old.get("metadata") or {}), "status": status}
    old_status = old.get("status") or {}
    errs: list[FieldError] = []
    # qosClass is immutable; a writer that leaves it out keeps the stored class.
    if "qosClass" not in status and "qosClass" in old_status:
        status["qosClass"] = old_status["qosClass"]
    elif status.get("qosClass") != old_status.get("qosClass"):
        errs.append(FieldError("Invalid", "status.qosClass", "field is immutable", status.get("qosClass")))
    # preserveOldObservedGeneration: a writer that does not know the field must not clear it.
    if "observedGeneration" in old_status and not status.get("observedGeneration"):
        status["observedGeneration"] = old_status["observedGeneration"]
    old_conds = {c.get("type"): c for c in old_status.get("conditions") or [] if isinstance(c, dict)}
    for c in status.get("conditions") or []:
        prev = old_conds.get(c.get("type"))
        if prev and "observedGeneration" in prev and not c.get("observedGeneration"):
            c["observedGeneration"] = prev["observedGeneration"]
    return merged, errs


# ---------------------------------------------------------------- resize subresource
def _drop_non_resize_updates(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``dropNonResizeUpdates``: the old pod with only containers' resources/resizePolicy from ``new``."""
    merged = _clone(old)
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for lst in _CONTAINER_LISTS:
        news, olds = new_spec.get(lst) or [], old_spec.get(lst) or []
        if len(news) != len(olds):
            merged["spec"][lst] = _clone(news)  # kept as-is: validation refuses it
            continue
        out = []
        for n, o in zip(news, olds, strict=True):
            if not isinstance(n, dict) or n.get("name") != o.get("name"):
                out.append(_clone(n))
                continue
            c = _clone(o)
            for key in ("resources", "resizePolicy"):
                if key in n:
                    c[key] = _clone(n[key])
                else:
                    c.pop(key, None)
            out.append(c)
        if out or lst in old_spec:
            merged["spec"][lst] = out
    return merged


def _removed(new: dict[str, Any], old: dict[str, Any]) -> bool:
    return any(k not in new for k in old)


def _is_sidecar(c: dict[str, Any]) -> bool:
    return c.get("restartPolicy") == "Always"


def _without_cpu_mem(c: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``dropCPUMemoryResourcesFromContainer`` (resizePolicy is mutable too, so it is reset as well)."""
    c = _clone(c)
    res, old_res = c.get("resources") or {}, old.get("resources") or {}
    out: dict[str, Any] = {}
    for key in ("limits", "requests"):
        if key not in old_res:
            continue
        munged = {k: v for k, v in (res.get(key) or {}).items() if k not in ("cpu", "memory")}
        for k in ("cpu", "memory"):
            if k in old_res[key]:
                munged[k] = old_res[key][k]
        out[key] = munged
    c["resources"] = out
    if "resizePolicy" in old:
        c["resizePolicy"] = old["resizePolicy"]
    else:
        c.pop("resizePolicy", None)
    return c


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # Semantic equality: an absent resources map equals an empty one.
    def norm(c: dict[str, Any]) -> dict[str, Any]:
        c = dict(c)
        res = {k: v for k, v in (c.get("resources") or {}).items() if v}
        c["resources"] = res
        return c

    return norm(a) == norm(b)


def _validate_container_resize(new: dict[str, Any], old: dict[str, Any], path: str, minor: int) -> list[FieldError]:
    errs: list[FieldError] = []
    new_res, old_res = new.get("resources") or {}, old.get("resources") or {}
    new_req, old_req = new_res.get("requests") or {}, old_res.get("requests") or {}
    new_lim, old_lim = new_res.get("limits") or {}, old_res.get("limits") or {}
    if _removed(new_req, old_req):
        errs.append(FieldError("Forbidden", f"{path}.requests", "resource requests cannot be removed"))
    if _removed(new_lim, old_lim):
        errs.append(FieldError("Forbidden", f"{path}.limits", "resource limits cannot be removed"))
    mem_policy = next((p.get("restartPolicy") for p in new.get("resizePolicy") or []
                       if p.get("resourceName") == "memory"), "")
    if minor == 33 and mem_policy in ("", None, "NotRequired"):
        if "memory" in new_lim and "memory" in old_lim:
            if parse_quantity(new_lim["memory"]) < parse_quantity(old_lim["memory"]):
                errs.append(FieldError("Forbidden", f"{path}.limits[memory]",
                                       "memory limits cannot be decreased unless resizePolicy is RestartContainer"))
        elif "memory" in new_lim:
            errs.append(FieldError("Forbidden", f"{path}.limits[memory]",
                                   "memory limits cannot be added unless resizePolicy is RestartContainer"))
    return errs


def _resize_supported(old: dict[str, Any]) -> bool:
    for cs in (old.get("status") or {}).get("containerStatuses") or []:
        if (cs.get("state") or {}).get("running") is not None:
            return cs.get("resources") is not None
    return True


def validate_pod_resize(new: dict[str, Any], old: dict[str, Any], minor: int) -> list[FieldError]:
    """``ValidatePodResize`` in the reference's order (§1.3)."""
    errs = validate_pod_spec(new)
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}

    def pod_level(spec: dict[str, Any]) -> bool:
        res = spec.get("resources") or {}
        return bool(res.get("requests") or res.get("limits"))

    if pod_level(old_spec) or pod_level(new_spec):
        return [FieldError("Forbidden", "[]", "pods with pod-level resources cannot be resized")]
    if MIRROR_ANNOTATION in ((old.get("metadata") or {}).get("annotations") or {}):
        return [FieldError("Forbidden", "[]", "static pods cannot be resized")]
    if (old_spec.get("os") or {}).get("name") == "windows":
        return [FieldError("Forbidden", "[]", "windows pods cannot be resized")]
    if _pod_qos(old) != compute_qos(new):
        errs.append(FieldError("Invalid", "spec", "Pod QOS Class may not change as a result of resizing",
                               (new.get("status") or {}).get("qosClass", "")))
    if not _resize_supported(old):
        errs.append(FieldError("Forbidden", "spec", "Pod running on node without support for resize"))
    pairs: dict[str, list[tuple[int, dict[str, Any], dict[str, Any]]]] = {}
    for lst in _CONTAINER_LISTS:
        news, olds = new_spec.get(lst) or [], old_spec.get(lst) or []
        if len(news) != len(olds):
            errs.append(FieldError("Forbidden", f"spec.{lst}", "containers may not be added or removed on resize"))
            pairs[lst] = []
            continue
        pairs[lst] = []
        for i, (n, o) in enumerate(zip(news, olds, strict=True)):
            if n.get("name") != o.get("name"):
                errs.append(FieldError("Forbidden", f"spec.{lst}[{i}].name",
                                       "containers may not be renamed or reordered on resize"))
            else:
                pairs[lst].append((i, n, o))
    for i, n, o in pairs["initContainers"]:
        if _is_sidecar(o):
            errs += _validate_container_resize(n, o, f"spec.initContainers[{i}].resources", minor)
    for i, n, o in pairs["containers"]:
        errs += _validate_container_resize(n, o, f"spec.containers[{i}].resources", minor)
    for _, n, o in pairs["containers"]:
        if not _same(_without_cpu_mem(n, o), o):
            errs.append(FieldError("Forbidden", "spec", "only cpu and memory resources are mutable"))
    for _, n, o in pairs["initContainers"]:
        if _is_sidecar(o):
            if not _same(_without_cpu_mem(n, o), o):
                errs.append(FieldError("Forbidden", "spec",
                                       "only cpu and memory resources for sidecar containers are mutable"))
        elif not _same(n, o):
            errs.append(FieldError("Forbidden", "spec", "resources for non-sidecar init containers are immutable"))
    return errs


def prepare_pod_resize(
    new: dict[str, Any], old: dict[str, Any], minor: int
) -> tuple[dict[str, Any], list[FieldError]]:
    for lst in _CONTAINER_LISTS:  # request bodies are decoded with defaults (requests from limits)
        for c in (new.get("spec") or {}).get(lst) or []:
            if isinstance(c, dict):
                _default_container(c)
    canonicalise_pod(new)
    merged = _drop_non_resize_updates(new, old)
    return merged, validate_pod_resize(merged, old, minor)
