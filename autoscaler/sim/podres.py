"""Pod and node resource arithmetic shared by the simulated kubelet, scheduler and node pools.

Vectors are plain ``dict[str, int]`` keyed by Kubernetes resource name (``cpu`` in millicores,
``memory`` and other byte resources in bytes, everything else in milli-units) because the simulator
touches them for every pod on every event and plain dicts are the cheapest thing Python has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from autoscaler.quantity import format_bytes, format_millicores, to_bytes, to_milli

Vec = dict[str, int]
_BYTE_RESOURCES = ("memory", "ephemeral-storage")


@lru_cache(maxsize=65536)
def _amount(name: str, q: str | int | float) -> int:
    if name in _BYTE_RESOURCES or name.startswith("hugepages-"):
        return to_bytes(q)
    if name == "pods":
        return int(to_bytes(q))
    return to_milli(q)


def parse_list(values: Mapping[str, Any] | None) -> Vec:
    """A Kubernetes ResourceList (``{"cpu": "1500m"}``) in canonical integers."""
    if not values:
        return {}
    return {name: _amount(name, q) for name, q in values.items()}


@lru_cache(maxsize=65536)
def _format(name: str, v: int) -> str:
    if name in _BYTE_RESOURCES or name.startswith("hugepages-"):
        return format_bytes(v)
    if name == "pods":
        return str(v)
    return format_millicores(v)


def format_list(values: Mapping[str, int]) -> dict[str, str]:
    """Canonical integers back to a ResourceList in the API server's canonical form."""
    return {name: _format(name, v) for name, v in values.items()}


def add(a: Mapping[str, int], b: Mapping[str, int]) -> Vec:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def sub(a: Mapping[str, int], b: Mapping[str, int]) -> Vec:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) - v
    return out


def vmax(a: Mapping[str, int], b: Mapping[str, int]) -> Vec:
    out = dict(a)
    for k, v in b.items():
        if v > out.get(k, 0):
            out[k] = v
    return out


def container_requests(container: Mapping[str, Any]) -> Vec:
    """Requests of one container, defaulted from limits as ``SetDefaults_Pod`` does."""
    res = container.get("resources") or {}
    out = parse_list(res.get("limits"))
    out.update(parse_list(res.get("requests")))
    return out


def container_limits(container: Mapping[str, Any]) -> Vec:
    return parse_list((container.get("resources") or {}).get("limits"))


def is_sidecar(init_container: Mapping[str, Any]) -> bool:
    return init_container.get("restartPolicy") == "Always"


def total_requests(containers: Iterable[Vec], init_containers: Iterable[tuple[Vec, bool]] = ()) -> Vec:
    """Effective pod request: regular containers plus sidecars, or the largest init container
    (plus the sidecars started before it), whichever is larger per resource."""
    total: Vec = {}
    for req in containers:
        total = add(total, req)
    sidecars: Vec = {}
    init_peak: Vec = {}
    for req, sidecar in init_containers:
        if sidecar:
            sidecars = add(sidecars, req)
            init_peak = vmax(init_peak, sidecars)
        else:
            init_peak = vmax(init_peak, add(req, sidecars))
    return vmax(add(total, sidecars), init_peak)


def pod_requests(pod: Mapping[str, Any]) -> Vec:
    """Desired (spec) pod request with the init-container rule and one ``pods`` slot."""
    spec = pod.get("spec") or {}
    total = total_requests(
        (container_requests(c) for c in spec.get("containers") or ()),
        ((container_requests(c), is_sidecar(c)) for c in spec.get("initContainers") or ()),
    )
    total["pods"] = 1
    return total


def qos_class(pod: Mapping[str, Any]) -> str:
    """``qos.ComputePodQOS``: only cpu and memory count."""
    spec = pod.get("spec") or {}
    all_containers = list(spec.get("containers") or ()) + list(spec.get("initContainers") or ())
    any_set = False
    guaranteed = True
    for c in all_containers:
        req = {k: v for k, v in container_requests(c).items() if k in ("cpu", "memory")}
        lim = {k: v for k, v in container_limits(c).items() if k in ("cpu", "memory")}
        if req or lim:
            any_set = True
        if set(lim) != {"cpu", "memory"} or any(req.get(k) != lim[k] for k in lim):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def is_static_pod(pod: Mapping[str, Any]) -> bool:
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    return "kubernetes.io/config.mirror" in ann or ann.get("kubernetes.io/config.source") in ("file", "http")


def fits(request: Mapping[str, int], free: Mapping[str, int]) -> bool:
    return all(v <= 0 or v <= free.get(k, 0) for k, v in request.items())
