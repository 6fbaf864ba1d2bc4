"""In-memory Kubernetes API storage: the one source of truth of the simulated cluster.

Contract (the HTTP server, the kubelet, scheduler and KubeRay simulators all write through it, so the
registry rules apply to every writer):

* Resources are named by plural: ``pods``, ``nodes``, ``configmaps``, ``events``, ``leases``,
  ``rayclusters``, ``namespaces`` (see ``RESOURCES``). Cluster-scoped resources (nodes, namespaces) use
  ``namespace=None``. One global resourceVersion counter; every committed write increments it.
* ``get(resource, namespace, name) -> dict`` — a deep copy; ``ApiError`` 404 ``NotFound`` if absent.
* ``list(resource, namespace=None, label_selector=None, field_selector=None) -> (items, list_rv)``.
* ``create(resource, obj) -> dict`` — 409 ``AlreadyExists``; ``generateName``; sets uid,
  creationTimestamp, resourceVersion, ``generation=1`` (pods and RayClusters). Pods: ``status`` reset to
  ``{phase: Pending, qosClass}``, requests defaulted from limits, API defaults, quantities canonicalised.
* ``update(resource, obj, subresource=None) -> dict`` — PUT semantics; 409 ``Conflict`` on a stale
  ``metadata.resourceVersion``; ``subresource="status"`` changes only status; ``"resize"`` keeps only
  containers' resources/resizePolicy and validates like ``ValidatePodResize`` (``server_minor`` decides
  the 1.33 memory-limit-decrease rule); a plain pod update changing resources gets the real 422.
  No-op writes return the object unchanged (same resourceVersion, no event).
* ``patch(resource, namespace, name, body, content_type, subresource=None) -> dict`` — strategic merge
  (built-in kinds only), JSON merge (RFC 7386), JSON patch (RFC 6902), ``apply-patch+yaml``
  (approximated as a strategic merge); 415 otherwise. ``body`` may be bytes/str or already-parsed JSON.
* ``delete(resource, namespace, name) -> dict`` — the deleted object (resourceVersion of the deletion).
* Every read and write returns a deep copy unless ``copy=False`` is passed, which returns the stored
  object itself (fast; strictly read-only).
  With ``graceful_pod_deletion=True`` a bound pod only gets ``deletionTimestamp`` until deleted with
  ``grace_period_seconds=0`` (what the kubelet does); default is immediate removal.
* ``bind(namespace, name, node_name)`` — the ``pods/binding`` subresource (the only way to set nodeName).
* ``add_listener(fn)`` — ``fn(event_type, resource, obj)`` is called synchronously after every committed
  write with ``"ADDED"``/``"MODIFIED"``/``"DELETED"``, in commit order; writes a listener makes are
  committed at once but dispatched after the current event. ``obj`` is the stored object itself:
  treat it as read-only (copy before mutating). Listener exceptions are logged, never raised to writers.
* ``watch(...) -> StoreWatcher`` — history ring buffer of ``history_size`` events for resume; older
  resourceVersions raise 410 ``Expired`` (``too old resource version: N (M)``). ``await w.next(timeout)``.
* RayClusters get the CRD's structural defaults and are validated against ``sim/schemas`` (422 Invalid);
  strategic merge is refused for them (415) as for any custom resource.
* Errors are ``ApiError(code, reason, message, details)`` with ``to_status()`` giving the ``Status`` body.
* Also: ``resource_version`` (current counter), ``objects(resource)`` (stored objects, shared, read-only),
  ``info(resource) -> ResourceInfo``. Namespaces need not exist (no NamespaceLifecycle admission).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from autoscaler.quantity import QuantityError
from autoscaler.sim import patch as patchlib
from autoscaler.sim import podresize, schemas
from autoscaler.sim.apierrors import ApiError, FieldError, invalid
from autoscaler.sim.selectors import (
    FieldSelector,
    LabelSelector,
    Matcher,
    object_matcher,
    parse_field_selector,
    parse_label_selector,
)

__all__ = ["RESOURCES", "ApiError", "ObjectStore", "ResourceInfo", "StoreWatcher", "WatchEvent", "clone"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResourceInfo:
    plural: str
    singular: str
    kind: str
    group: str
    version: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    generation: bool = False  # metadata.generation maintained (pods, custom resources)
    custom: bool = False  # a CRD: no strategic merge, no quantity canonicalisation
    delete_returns_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``rayclusters.ray.io``: the resource as error messages print it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


RESOURCES: dict[str, ResourceInfo] = {
    r.plural: r
    for r in (
        ResourceInfo("pods", "pod", "Pod", "", "v1", True, ("status", "resize", "binding"), ("po",),
                     generation=True, delete_returns_object=True),
        ResourceInfo("nodes", "node", "Node", "", "v1", False, ("status",), ("no",)),
        ResourceInfo("namespaces", "namespace", "Namespace", "", "v1", False, ("status",), ("ns",),
                     delete_returns_object=True),
        ResourceInfo("configmaps", "configmap", "ConfigMap", "", "v1", True, (), ("cm",)),
        ResourceInfo("events", "event", "Event", "", "v1", True, (), ("ev",)),
        ResourceInfo("leases", "lease", "Lease", "coordination.k8s.io", "v1", True),
        ResourceInfo("rayclusters", "raycluster", "RayCluster", "ray.io", "v1", True, ("status",),
                     generation=True, custom=True, delete_returns_object=True),
    )
}

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apiserver/pkg/storage/names


class WatchEvent(NamedTuple):
    rv: int
    type: str
    resource: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


Listener = Callable[[str, str, dict[str, Any]], None]
# Module-level aliases: inside ObjectStore the method ``list`` shadows the builtin.
PatchBody = bytes | str | dict[str, Any] | list[Any]
ObjectList = list[dict[str, Any]]


def clone(x: Any) -> Any:
    """Deep copy of a JSON tree (dicts, lists, scalars); faster than ``copy.deepcopy``."""
    t = type(x)
    if t is dict:
        return {k: clone(v) for k, v in x.items()}
    if t is list:
        return [clone(v) for v in x]
    return x


def _out(obj: dict[str, Any], copy: bool) -> dict[str, Any]:
    return clone(obj) if copy else obj


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found(info: ResourceInfo, name: str) -> ApiError:
    details: dict[str, Any] = {"name": name}
    if info.group:
        details["group"] = info.group
    details["kind"] = info.plural
    return ApiError(404, "NotFound", f'{info.qualified} "{name}" not found', details)


def _conflict(info: ResourceInfo, name: str, why: str) -> ApiError:
    details: dict[str, Any] = {"name": name}
    if info.group:
        details["group"] = info.group
    details["kind"] = info.plural
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {info.qualified} "{name}": {why}', details)


_STALE = "the object has been modified; please apply your changes to the latest version and try again"


class StoreWatcher:
    """One watch over a resource: receives committed events, filtered, in resourceVersion order."""

    def __init__(self, store: ObjectStore, info: ResourceInfo, namespace: str | None, matcher: Matcher | None):
        self._store = store
        self.info = info
        self.namespace = namespace
        self._matcher = matcher
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self.closed = False

    def _offer(self, ev: WatchEvent) -> None:
        obj = ev.obj
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return
        if self._matcher is None:
            self._queue.append((ev.type, obj))
        else:
            now_ok = self._matcher(obj)
            was_ok = ev.old is not None and ev.type == "MODIFIED" and self._matcher(ev.old)
            if ev.type == "MODIFIED" and was_ok and not now_ok:
                # The watch cache turns "no longer selected" into DELETED of the old object at the new rv.
                old = ev.old or {}
                gone = {**old, "metadata": {**old.get("metadata", {}), "resourceVersion": str(ev.rv)}}
                self._queue.append(("DELETED", gone))
            elif now_ok:
                self._queue.append(("ADDED" if ev.type == "MODIFIED" and not was_ok else ev.type, obj))
            else:
                return
        self._wake.set()

    def pending(self) -> int:
        return len(self._queue)

    def pop_nowait(self) -> tuple[str, dict[str, Any]] | None:
        if self._queue:
            return self._queue.popleft()
        self._wake.clear()
        return None

    async def next(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next event, or None on timeout or when closed."""
        while not self.closed:
            item = self.pop_nowait()
            if item is not None:
                return item
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._store._watchers.get(self.info.plural, set()).discard(self)
            self._wake.set()


class ObjectStore:
    def __init__(
        self,
        server_minor: int = 33,
        history_size: int = 10_000,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        graceful_pod_deletion: bool = False,
    ) -> None:
        if server_minor not in (33, 34, 35):
            raise ValueError(f"server_minor must be 33, 34 or 35, not {server_minor}")
        self.server_minor = server_minor
        self.clock = clock
        self.graceful_pod_deletion = graceful_pod_deletion
        self._rng = random.Random(seed)
        self._objs: dict[str, dict[tuple[str, str], dict[str, Any]]] = {p: {} for p in RESOURCES}
        self._rv = 0
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        self._listeners: list[Listener] = []
        self._watchers: dict[str, set[StoreWatcher]] = {p: set() for p in RESOURCES}
        self._pending: deque[WatchEvent] = deque()
        self._dispatching = False
        self.listener_errors: list[BaseException] = []

    # ------------------------------------------------------------------ lookup
    @property
    def resource_version(self) -> int:
        return self._rv

    @staticmethod
    def info(resource: str) -> ResourceInfo:
        try:
            return RESOURCES[resource]
        except KeyError:
            raise ApiError(404, "NotFound", "the server could not find the requested resource") from None

    def _key(self, info: ResourceInfo, namespace: str | None, name: str) -> tuple[str, str]:
        return (namespace or "" if info.namespaced else "", name)

    def _current(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._objs[info.plural].get(self._key(info, namespace, name))
        if obj is None:
            raise _not_found(info, name)
        return obj

    # ------------------------------------------------------------------ reads
    def get(self, resource: str, namespace: str | None, name: str, *, copy: bool = True) -> dict[str, Any]:
        obj = self._current(self.info(resource), namespace, name)
        return clone(obj) if copy else obj

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        *,
        copy: bool = True,
    ) -> tuple[list[dict[str, Any]], str]:
        info = self.info(resource)
        match = self._matcher(info, label_selector, field_selector)
        items = []
        for (ns, _), obj in self._objs[info.plural].items():
            if namespace is not None and info.namespaced and ns != namespace:
                continue
            if match is None or match(obj):
                items.append(clone(obj) if copy else obj)
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, str(self._rv)

    @staticmethod
    def _matcher(
        info: ResourceInfo, label: str | LabelSelector | None, fields: str | FieldSelector | None
    ) -> Matcher | None:
        ls = label if isinstance(label, LabelSelector) else parse_label_selector(label)
        fs = fields if isinstance(fields, FieldSelector) else parse_field_selector(fields, info.plural, info.custom)
        return object_matcher(ls, fs)

    # ------------------------------------------------------------------ writes
    def create(
        self, resource: str, obj: dict[str, Any], namespace: str | None = None, *, copy: bool = True
    ) -> dict[str, Any]:
        info = self.info(resource)
        obj = clone(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if info.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        obj["kind"], obj["apiVersion"] = info.kind, info.api_version
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(info.kind, info.group, "",
                              [FieldError("Required", "metadata.name", "name or generateName is required")])
            for _ in range(8):
                meta["name"] = meta["generateName"] + "".join(self._rng.choice(_NAME_ALPHABET) for _ in range(5))
                if self._key(info, meta.get("namespace"), meta["name"]) not in self._objs[info.plural]:
                    break
        name = meta["name"]
        errs = podresize.validate_object_name(name, "metadata.name")
        if errs:
            raise invalid(info.kind, info.group, name, errs)
        key = self._key(info, meta.get("namespace"), name)
        if key in self._objs[info.plural]:
            details: dict[str, Any] = {"name": name}
            if info.group:
                details["group"] = info.group
            details["kind"] = info.plural
            raise ApiError(409, "AlreadyExists", f'{info.qualified} "{name}" already exists', details)
        for k in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                  "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        meta["creationTimestamp"] = _rfc3339(self.clock())
        if info.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._prepare_create(info, obj)
        return _out(self._commit("ADDED", info, key, obj, None), copy)

    def _prepare_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        if info.plural == "pods":
            errs = podresize.prepare_pod_create(obj)
            if errs:
                raise invalid("Pod", "", obj["metadata"]["name"], errs)
        elif info.plural == "nodes":
            _canonical_node(obj)
        elif info.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        elif info.custom and info.has_status:
            obj.pop("status", None)  # the CR status subresource drops status on create
        if info.plural == "rayclusters":
            _validate_custom(info, obj)

    def update(
        self, resource: str, obj: dict[str, Any], subresource: str | None = None, *, copy: bool = True
    ) -> dict[str, Any]:
        info = self.info(resource)
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        old = self._current(info, meta.get("namespace"), name)
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise _conflict(info, name, _STALE)
        if not rv and info.custom:
            raise invalid(info.kind, info.group, name, [FieldError(
                "Invalid", "metadata.resourceVersion", "must be specified for an update", 0)])
        # A status write keeps only (a copy of) the new status: no need to copy the whole body.
        return _out(self._update(info, obj if subresource == "status" else clone(obj), old, subresource), copy)

    def _update(
        self, info: ResourceInfo, new: dict[str, Any], old: dict[str, Any], sub: str | None
    ) -> dict[str, Any]:
        if (sub is not None and sub not in info.subresources) or sub == "binding":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        merged = self._strategy(info, new, old, sub)
        merged["kind"], merged["apiVersion"] = info.kind, info.api_version
        # System metadata always comes from the stored object.
        meta, old_meta = merged.setdefault("metadata", {}), old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "resourceVersion"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        if info.generation and _spec_of(info, merged) != _spec_of(info, old):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if merged == old:
            return old
        key = self._key(info, old_meta.get("namespace"), old_meta["name"])
        return self._commit("MODIFIED", info, key, merged, old)

    def _strategy(
        self, info: ResourceInfo, new: dict[str, Any], old: dict[str, Any], sub: str | None
    ) -> dict[str, Any]:
        name = old["metadata"]["name"]
        if info.plural == "pods":
            if sub == "status":
                merged, errs = podresize.prepare_pod_status_update(new, old)
            elif sub == "resize":
                merged, errs = podresize.prepare_pod_resize(new, old, self.server_minor)
            else:
                merged, errs = podresize.prepare_pod_update(new, old)
            if errs:
                raise invalid("Pod", "", name, errs)
            return merged
        if sub == "status":
            # Share the unchanged parts with the stored (immutable) version; copy what changes.
            merged = {**old, "metadata": dict(old["metadata"])}
            if "status" in new:
                merged["status"] = clone(new["status"])
            else:
                merged.pop("status", None)
        else:
            merged = new
            if info.has_status:
                if "status" in old:
                    merged["status"] = clone(old["status"])
                else:
                    merged.pop("status", None)
        if info.plural == "nodes":
            _canonical_node(merged)
        if info.plural == "rayclusters":
            # A status write shares the stored spec, already defaulted: validate without defaulting.
            _validate_custom(info, merged, defaults=sub != "status")
        return merged

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        body: PatchBody,
        content_type: str,
        subresource: str | None = None,
        *,
        copy: bool = True,
    ) -> dict[str, Any]:
        info = self.info(resource)
        ctype = content_type.split(";")[0].strip().lower()
        if ctype not in patchlib.PATCH_TYPES or (info.custom and ctype == patchlib.STRATEGIC):
            accepted = [t for t in patchlib.PATCH_TYPES if not (info.custom and t == patchlib.STRATEGIC)]
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media types include: "
                           f"{', '.join(accepted)}")
        old = self._current(info, namespace, name)
        try:
            patched = patchlib.apply_patch(ctype, old, body, info.kind)
        except patchlib.PatchError as e:
            raise ApiError(e.code, e.reason, e.message, e.details) from None
        if not isinstance(patched, dict):
            raise ApiError(400, "BadRequest", "the patched object is not a JSON object")
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            meta = patched["metadata"] = {}
        if meta.get("name", name) != name:
            raise invalid(info.kind, info.group, name, [FieldError(
                "Invalid", "metadata.name", "field is immutable", meta.get("name"))])
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise _conflict(info, name, _STALE)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return _out(self._update(info, patched, old, subresource), copy)

    def bind(self, namespace: str, name: str, node_name: str, *, copy: bool = True) -> dict[str, Any]:
        """``POST pods/<name>/binding``: set ``spec.nodeName`` once (409 if already bound)."""
        info = RESOURCES["pods"]
        old = self._current(info, namespace, name)
        if old["spec"].get("nodeName"):
            raise _conflict(info, name, f"pod {name} is already assigned to node \"{old['spec']['nodeName']}\"")
        new = clone(old)
        new["spec"]["nodeName"] = node_name
        conds = [c for c in new.get("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": _rfc3339(self.clock())})
        new.setdefault("status", {})["conditions"] = conds
        key = self._key(info, namespace, name)
        return _out(self._commit("MODIFIED", info, key, new, old), copy)

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, str] | None = None,
        copy: bool = True,
    ) -> dict[str, Any]:
        info = self.info(resource)
        old = self._current(info, namespace, name)
        for field_, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = (preconditions or {}).get(field_)
            if want and want != old["metadata"].get(field_):
                raise _conflict(info, name, f"Precondition failed: {label} in precondition: {want}, "
                                            f"{label} in object meta: {old['metadata'].get(field_)}")
        key = self._key(info, namespace, name)
        if (info.plural == "pods" and self.graceful_pod_deletion and old["spec"].get("nodeName")
                and grace_period_seconds != 0 and "deletionTimestamp" not in old["metadata"]):
            grace = grace_period_seconds
            if grace is None:
                grace = old["spec"].get("terminationGracePeriodSeconds", 30)
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = _rfc3339(self.clock() + grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            return _out(self._commit("MODIFIED", info, key, new, old), copy)
        gone = {**old, "metadata": dict(old["metadata"])}
        del self._objs[info.plural][key]
        return _out(self._commit("DELETED", info, key, gone, old), copy)

    # ------------------------------------------------------------------ commit and events
    def _commit(
        self, type_: str, info: ResourceInfo, key: tuple[str, str], obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if type_ != "DELETED":
            self._objs[info.plural][key] = obj
        ev = WatchEvent(self._rv, type_, info.plural, obj, old)
        self._history.append(ev)
        self._pending.append(ev)
        if not self._dispatching:
            self._dispatch()
        return obj

    def _dispatch(self) -> None:
        self._dispatching = True
        try:
            while self._pending:
                ev = self._pending.popleft()
                for w in list(self._watchers[ev.resource]):
                    w._offer(ev)
                for fn in list(self._listeners):
                    try:
                        fn(ev.type, ev.resource, ev.obj)
                    except Exception as e:  # a broken controller must not fail the API write
                        log.exception("store listener %r failed on %s %s", fn, ev.type, ev.resource)
                        self.listener_errors.append(e)
        finally:
            self._dispatching = False

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners.remove(fn)

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
    ) -> StoreWatcher:
        """Start a watch. ``resource_version`` unset or ``"0"``: synthetic ADDED for every current object,
        then changes; ``"N"``: every change after N (410 ``Expired`` if N fell out of the history)."""
        info = self.info(resource)
        w = StoreWatcher(self, info, namespace if info.namespaced else None, self._matcher(
            info, label_selector, field_selector))
        if resource_version in (None, "", "0"):
            items, _ = self.list(resource, namespace, label_selector, field_selector, copy=False)
            w._queue.extend(("ADDED", o) for o in items)
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise ApiError(400, "BadRequest", f'invalid resource version: "{resource_version}"') from None
            oldest = self._history[0].rv if self._history else self._rv + 1
            if since + 1 < oldest and since < self._rv:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({oldest - 1})")
            for ev in self._history:
                if ev.rv > since and ev.resource == info.plural:
                    w._offer(ev)
        if w._queue:
            w._wake.set()
        self._watchers[info.plural].add(w)
        return w

    def objects(self, resource: str) -> ObjectList:
        """Stored objects of a resource, shared and read-only (fast path for in-process controllers)."""
        return list(self._objs[self.info(resource).plural].values())

    def dump(self) -> str:
        """All objects as JSON (debugging aid)."""
        return json.dumps({p: list(v.values()) for p, v in self._objs.items() if v}, indent=1, sort_keys=True)


def _spec_of(info: ResourceInfo, obj: dict[str, Any]) -> Any:
    if info.plural == "pods":
        return obj.get("spec")
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _validate_custom(info: ResourceInfo, obj: dict[str, Any], defaults: bool = True) -> None:
    """CRD structural defaults, then schema validation (422 like the apiserver's CR validation)."""
    if defaults:
        schemas.apply_defaults(obj)
    errs = schemas.validate(obj)
    if errs:
        raise invalid(info.kind, info.group, obj["metadata"].get("name", ""), errs)


def _canonical_node(node: dict[str, Any]) -> None:
    status = node.get("status")
    if not isinstance(status, dict):
        return
    for key in ("capacity", "allocatable"):
        res = status.get(key)
        if isinstance(res, dict):
            try:
                status[key] = {k: podresize.canonical(v) for k, v in res.items()}
            except QuantityError as e:
                raise ApiError(400, "BadRequest", str(e)) from None
