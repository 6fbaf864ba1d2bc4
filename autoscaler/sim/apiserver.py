"""An aiohttp server that speaks the Kubernetes REST API over an ``ObjectStore``.

``async with SimApiServer(store, rbac=None, faults=None) as api: api.url`` — listens on 127.0.0.1 and a
free port. Serves discovery for ``kubernetes_asyncio`` and ``kubectl`` (``/version`` and ``/version/``
with every VersionInfo field, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>[/<version>]``), core
``pods`` (+ ``status``, ``resize``, ``binding``), ``nodes``, ``namespaces``, ``configmaps``, ``events``,
``coordination.k8s.io/v1 leases`` and ``ray.io/v1 rayclusters`` (+ ``status``): GET, LIST, WATCH,
POST, PUT, PATCH, DELETE, DELETE collection. Paths are parsed by hand, namespaced form first, so
``/api/v1/namespaces/x/pods`` can never be taken for a cluster-scoped ``{plural}/{name}/{sub}``.

Watch: ``watch=true|True|1``; ``resourceVersion`` resume (410 ``Expired`` ERROR event beyond the store's
history); ``allowWatchBookmarks`` (a BOOKMARK every ``bookmark_interval`` s of silence);
``timeoutSeconds`` (default ``watch_timeout``). Errors are ``Status`` bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from autoscaler.sim.apierrors import ApiError
from autoscaler.sim.faults import FaultInjector, FaultRule
from autoscaler.sim.rbac import Rbac, Request
from autoscaler.sim.store import RESOURCES, ObjectStore, ResourceInfo
from autoscaler.sim.tables import to_table, wants_table

__all__ = ["RequestRecord", "SimApiServer"]

log = logging.getLogger(__name__)

_GIT = {33: "v1.33.4", 34: "v1.34.1", 35: "v1.35.0"}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SUB_VERBS = {"status": ["get", "patch", "update"], "resize": ["get", "patch", "update"], "binding": ["create"]}
_NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource", {})
_NOT_ALLOWED = ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type="application/json")


def _status_response(err: ApiError) -> web.Response:
    resp = _json(err.to_status(), err.code)
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


@dataclass(frozen=True)
class _Target:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    sub: str | None


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    verb: str
    resource: str
    namespace: str
    code: int
    at: float = 0.0  # arrival (epoch seconds)


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("true", "1")


class SimApiServer:
    def __init__(
        self,
        store: ObjectStore,
        rbac: Rbac | None = None,
        faults: FaultInjector | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 60.0,
        watch_timeout: float = 1800.0,
    ) -> None:
        self.store = store
        self.rbac = rbac
        self.faults = faults
        self.host, self.port = host, port
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.requests: deque[RequestRecord] = deque(maxlen=100_000)
        self._runner: web.ServerRunner | None = None
        self._by_group: dict[tuple[str, str], dict[str, ResourceInfo]] = {}
        for info in RESOURCES.values():
            self._by_group.setdefault((info.group, info.version), {})[info.plural] = info
        self._json_cache: dict[tuple[str, str, str], tuple[str, bytes]] = {}

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # The low-level server skips aiohttp's router and middlewares: every path goes to one handler.
        low = web.Server(self._handle)
        self._runner = web.ServerRunner(low, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        listener: Any = site._server
        if listener is not None and listener.sockets:  # the port the OS chose for port 0
            self.port = listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- routing
    def _parse(self, parts: list[str]) -> tuple[str, str, _Target] | None:
        """(group, version, target) of a resource path, or None."""
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        resources = self._by_group.get((group, version))
        if not resources or not rest:
            return None
        if group == "" and len(rest) == 3 and rest[0] == "namespaces" and rest[2] == "bindings":
            # POST namespaces/<ns>/bindings names the pod in the Binding body.
            return group, version, _Target(resources["pods"], rest[1], None, "binding")
        # Namespaced form first: namespaces/<ns>/<plural>[/<name>[/<sub>]].
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in resources and resources[rest[2]].namespaced:
            info = resources[rest[2]]
            tail = rest[3:]
            ns: str | None = rest[1]
        elif rest[0] in resources:
            info = resources[rest[0]]
            tail = rest[1:]
            ns = None
            if info.namespaced and tail:  # /api/v1/pods/<name> does not exist
                return None
        else:
            return None
        if len(tail) > 2 or (len(tail) == 2 and tail[1] not in info.subresources):
            return None
        name = tail[0] if tail else None
        sub = tail[1] if len(tail) == 2 else None
        return group, version, _Target(info, ns, name, sub)

    @staticmethod
    def _verb(method: str, target: _Target, query: Any) -> str:
        if method == "GET":
            if _truthy(query.get("watch")):
                return "watch"
            return "get" if target.name else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if target.name else "deletecollection",
        }.get(method, method.lower())

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        arrived = time.time()
        path = request.path
        parts = [p for p in path.split("/") if p]
        parsed = self._parse(parts)
        verb, resource, ns = request.method.lower(), "", ""
        try:
            if parsed is None:
                resp = await self._non_resource(request, parts)
            else:
                _, _, target = parsed
                verb = self._verb(request.method, target, request.query)
                resource = target.info.plural + (f"/{target.sub}" if target.sub else "")
                ns = target.namespace or ""
                self._authorize(request, verb, target)
                fault = self.faults.decide(verb, resource, ns) if self.faults else None
                if fault is not None and not (verb == "watch" and fault.kind in ("drop_watch", "gone")):
                    early = await self._apply_fault(fault)
                    if early is not None:
                        self._record(request, verb, resource, ns, early.status, arrived)
                        return early
                    fault = None
                resp = await self._resource(request, verb, target, fault)
        except ApiError as e:
            resp = _status_response(e)
        except json.JSONDecodeError as e:
            resp = _status_response(ApiError(400, "BadRequest", f"error decoding request body: {e}"))
        except (ValueError, TypeError, AttributeError, KeyError) as e:  # a malformed request the sim did not foresee
            log.exception("simulated apiserver failed on %s %s", request.method, path)
            resp = _status_response(ApiError(500, "InternalError", f"Internal error occurred: {e!r}", {}))
        self._record(request, verb, resource, ns, resp.status, arrived)
        return resp

    def _record(
        self, request: web.BaseRequest, verb: str, resource: str, ns: str, code: int, arrived: float
    ) -> None:
        self.requests.append(RequestRecord(request.method, request.path, verb, resource, ns, code, arrived))

    def _authorize(self, request: web.BaseRequest, verb: str, target: _Target | None, path: str = "") -> None:
        if self.rbac is None:
            return
        user = self.rbac.authenticate(request.headers.get("Authorization"))
        if target is None:
            self.rbac.check(user, Request(verb=verb, path=path, resource_request=False))
            return
        info = target.info
        req = Request(verb, info.group, info.plural, target.sub or "", target.namespace or "", target.name or "")
        self.rbac.check(user, req, info.qualified)

    async def _apply_fault(self, fault: FaultRule | None) -> web.Response | None:
        if fault is None:
            return None
        if fault.kind == "slow" or fault.kind == "stall":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "error":
            reasons = {500: ("InternalError", "Internal error occurred: injected fault"),
                       503: ("ServiceUnavailable", "The server is currently unable to handle the request")}
            reason, msg = reasons.get(fault.code, ("InternalError", f"injected fault ({fault.code})"))
            return _status_response(ApiError(fault.code, reason, msg, {}))
        if fault.kind == "throttle":
            return _status_response(ApiError(
                429, "TooManyRequests", "Too many requests, please try again later.",
                {"retryAfterSeconds": fault.retry_after}, {"Retry-After": str(fault.retry_after)}))
        if fault.kind == "timeout":
            await asyncio.sleep(fault.delay or 60.0)
            return _status_response(ApiError(
                504, "Timeout", "Timeout: request did not complete within the allotted timeout",
                {"retryAfterSeconds": 0}))
        if fault.kind == "gone":
            return _status_response(ApiError(410, "Expired", "too old resource version: 0 (0)"))
        return None

    # ---------------------------------------------------------------- discovery
    async def _non_resource(self, request: web.BaseRequest, parts: list[str]) -> web.StreamResponse:
        path = "/" + "/".join(parts)
        self._authorize(request, request.method.lower(), None, request.path)
        if request.method != "GET":
            raise _NOT_ALLOWED
        if path == "/version":
            minor = self.store.server_minor
            return _json({
                "major": "1", "minor": str(minor), "emulationMajor": "1", "emulationMinor": str(minor),
                "minCompatibilityMajor": "1", "minCompatibilityMinor": str(minor - 1),
                "gitVersion": _GIT[minor], "gitCommit": "0" * 40, "gitTreeState": "clean",
                "buildDate": "2025-09-01T00:00:00Z", "goVersion": "go1.24.6", "compiler": "gc",
                "platform": "linux/amd64",
            })
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/api":
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})
        if path == "/apis":
            return _json({"kind": "APIGroupList", "apiVersion": "v1",
                          "groups": [self._group(g) for g in self._groups()]})
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in self._groups():
            return _json({"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])})
        if parts[:2] == ["api", "v1"] and len(parts) == 2:
            return _json(self._resource_list("", "v1"))
        if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in self._by_group:
            return _json(self._resource_list(parts[1], parts[2]))
        raise _NOT_FOUND

    def _groups(self) -> list[str]:
        return sorted({g for g, _ in self._by_group if g})

    def _group(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in self._by_group if g == group]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for info in self._by_group[(group, version)].values():
            entry: dict[str, Any] = {"name": info.plural, "singularName": info.singular,
                                     "namespaced": info.namespaced, "kind": info.kind, "verbs": _VERBS}
            if info.short_names:
                entry["shortNames"] = list(info.short_names)
            if info.custom:
                entry["categories"] = ["all"]
            resources.append(entry)
            for sub in info.subresources:
                kind = "Binding" if sub == "binding" else info.kind
                resources.append({"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced,
                                  "kind": kind, "verbs": _SUB_VERBS[sub]})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _encoded(self, info: ResourceInfo, obj: dict[str, Any]) -> bytes:
        """JSON of a stored object, cached per resourceVersion (stored objects are never mutated)."""
        meta = obj["metadata"]
        key = (info.plural, meta.get("namespace", ""), meta["name"])
        hit = self._json_cache.get(key)
        if hit is not None and hit[0] == meta["resourceVersion"]:
            return hit[1]
        data = _dumps(obj)
        if len(self._json_cache) >= 200_000:
            self._json_cache.clear()
        self._json_cache[key] = (meta["resourceVersion"], data)
        return data

    def _object(self, info: ResourceInfo, obj: dict[str, Any]) -> web.Response:
        return web.Response(body=self._encoded(info, obj), content_type="application/json")

    def _event_line(self, info: ResourceInfo, type_: str, obj: dict[str, Any]) -> bytes:
        # DELETED objects may be synthetic copies (selector no longer matches) sharing a stored rv: no cache.
        body = _dumps(obj) if type_ == "DELETED" else self._encoded(info, obj)
        return b'{"type":"' + type_.encode() + b'","object":' + body + b"}\n"

    # ---------------------------------------------------------------- resources
    async def _body(self, request: web.BaseRequest) -> Any:
        raw = await request.read()
        if not raw:
            raise ApiError(400, "BadRequest", "the request body is empty")
        return json.loads(raw)

    async def _resource(
        self, request: web.BaseRequest, verb: str, t: _Target, fault: FaultRule | None
    ) -> web.StreamResponse:
        store, info = self.store, t.info
        q = request.query
        if t.sub is not None and verb not in _SUB_VERBS[t.sub]:
            raise _NOT_ALLOWED
        table = wants_table(request.headers.get("Accept", ""))
        if verb == "get":
            assert t.name is not None
            obj = store.get(info.plural, t.namespace, t.name, copy=False)
            if table and t.sub is None:
                return _json(to_table(info.plural, [obj], obj["metadata"]["resourceVersion"], store.clock()))
            return self._object(info, obj)
        if verb == "list":
            items, rv = store.list(info.plural, t.namespace, q.get("labelSelector"), q.get("fieldSelector"),
                                   copy=False)
            if table:
                return _json(to_table(info.plural, items, rv, store.clock()))
            head = _dumps({"kind": f"{info.kind}List", "apiVersion": info.api_version,
                           "metadata": {"resourceVersion": rv}})
            body = head[:-1] + b',"items":[' + b",".join(self._encoded(info, o) for o in items) + b"]}"
            return web.Response(body=body, content_type="application/json")
        if verb == "watch":
            return await self._watch(request, t, fault, table)
        if verb == "create":
            if t.sub == "binding" and t.namespace:
                body = await self._body(request)
                name = t.name or ((body or {}).get("metadata") or {}).get("name", "")
                node = ((body or {}).get("target") or {}).get("name")
                if not node:
                    raise ApiError(422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value')
                store.bind(t.namespace, name, node)
                return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "code": 201}, 201)
            if t.name is not None:
                raise _NOT_ALLOWED
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be a JSON object")
            return web.Response(body=self._encoded(info, store.create(info.plural, body, t.namespace, copy=False)),
                                status=201, content_type="application/json")
        if t.name is None and verb != "deletecollection":
            raise _NOT_ALLOWED
        if verb == "update":
            assert t.name is not None
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be a JSON object")
            meta = body.setdefault("metadata", {})
            if meta.get("name") and meta["name"] != t.name:
                raise ApiError(400, "BadRequest",
                               f"the name of the object ({meta['name']}) does not match the name on the URL ({t.name})")
            if info.namespaced:
                if meta.get("namespace") and meta["namespace"] != t.namespace:
                    raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                      "namespace sent on the request")
                meta["namespace"] = t.namespace
            meta["name"] = t.name
            return self._object(info, store.update(info.plural, body, t.sub, copy=False))
        if verb == "patch":
            assert t.name is not None
            ctype = request.headers.get("Content-Type", "")
            body = await request.read()
            return self._object(info, store.patch(info.plural, t.namespace, t.name, body, ctype, t.sub, copy=False))
        if verb in ("delete", "deletecollection"):
            return await self._delete(request, t)
        raise _NOT_ALLOWED

    async def _delete(self, request: web.BaseRequest, t: _Target) -> web.Response:
        info = t.info
        opts: dict[str, Any] = {}
        raw = await request.read()
        if raw:
            opts = json.loads(raw) or {}
        grace = request.query.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
        grace_s = int(grace) if grace is not None else None
        pre = opts.get("preconditions") or None
        if t.name is None:
            items, _ = self.store.list(info.plural, t.namespace, request.query.get("labelSelector"),
                                       request.query.get("fieldSelector"), copy=False)
            for item in items:
                m = item["metadata"]
                self.store.delete(info.plural, m.get("namespace"), m["name"], grace_period_seconds=grace_s)
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        deleted = self.store.delete(info.plural, t.namespace, t.name, grace_period_seconds=grace_s, preconditions=pre)
        if info.delete_returns_object:
            return _json(deleted)
        details: dict[str, Any] = {"name": t.name}
        if info.group:
            details["group"] = info.group
        details["kind"] = info.plural
        details["uid"] = deleted["metadata"].get("uid", "")
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})

    # ---------------------------------------------------------------- watch
    async def _watch(
        self, request: web.BaseRequest, t: _Target, fault: FaultRule | None, table: bool = False
    ) -> web.StreamResponse:
        q = request.query
        timeout = float(q.get("timeoutSeconds") or self.watch_timeout)
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if fault is not None and fault.kind == "gone":
            err = ApiError(410, "Expired", f"too old resource version: {q.get('resourceVersion', '0')} "
                                           f"({self.store.resource_version})")
            await resp.write(_dumps({"type": "ERROR", "object": err.to_status()}) + b"\n")
            return resp
        try:
            watcher = self.store.watch(t.info.plural, t.namespace, q.get("resourceVersion"),
                                       q.get("labelSelector"), q.get("fieldSelector"))
        except ApiError as e:  # a real apiserver answers an expired rv with 200 + ERROR event
            await resp.write(_dumps({"type": "ERROR", "object": e.to_status()}) + b"\n")
            return resp
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        drop_after = fault.after_events if fault is not None and fault.kind == "drop_watch" else None
        info = t.info
        if table:  # kubectl get -w: each event carries a one-row Table
            clock = self.store.clock

            def line(ty: str, o: dict[str, Any]) -> bytes:
                rows = to_table(info.plural, [o], o["metadata"]["resourceVersion"], clock())
                return _dumps({"type": ty, "object": rows}) + b"\n"
        else:
            def line(ty: str, o: dict[str, Any]) -> bytes:
                return self._event_line(info, ty, o)
        sent = 0
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                # Wake at least every few seconds to notice a client that went away while idle.
                wait = min(remaining, self.bookmark_interval if bookmarks else 5.0)
                first = await watcher.next(wait)
                if first is None:
                    transport = request.transport
                    if watcher.closed or loop.time() >= deadline or transport is None or transport.is_closing():
                        break
                    if bookmarks:
                        bm = {"kind": t.info.kind, "apiVersion": t.info.api_version,
                              "metadata": {"resourceVersion": str(self.store.resource_version)}}
                        await resp.write(_dumps({"type": "BOOKMARK", "object": bm}) + b"\n")
                    continue
                batch = [first]
                while (more := watcher.pop_nowait()) is not None:
                    batch.append(more)
                if drop_after is not None and sent + len(batch) >= drop_after:
                    batch = batch[: max(0, drop_after - sent)]
                    if batch:
                        await resp.write(b"".join(line(ty, o) for ty, o in batch))
                    if request.transport is not None:  # end the stream without a terminating chunk
                        request.transport.close()
                    return resp
                await resp.write(b"".join(line(ty, o) for ty, o in batch))
                sent += len(batch)
            await resp.write_eof()
        except ConnectionResetError:  # the client went away: end quietly, as the apiserver does
            pass
        finally:
            watcher.close()
        return resp
