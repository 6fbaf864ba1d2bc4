"""The running agent: sampling loop, PSI trigger, and a minimal HTTP/1.1 server.

HTTP is a few lines over ``asyncio.start_server`` rather than aiohttp, which alone would cost ~17 MB
of RSS in every Ray pod. Requests are GET/HEAD of three paths; each connection serves one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from autoscaler.agent.render import AgentCollector, pressure_document
from autoscaler.agent.sampler import DEFAULT_PORT, AgentConfig, Sampler
from autoscaler.observe.psi_trigger import PsiTrigger, TriggerError

log = logging.getLogger("rva.agent")


class Agent:
    """``await start()`` samples once, arms the trigger and listens; ``await stop()`` undoes all of it."""

    def __init__(self, config: AgentConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.sampler = Sampler(config, clock=clock)
        self.trigger: PsiTrigger | None = None
        self.trigger_error = ""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(self.sampler, lambda: self.trigger))
        self._wake = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._trigger_tried = ""

    # -- HTTP ---------------------------------------------------------------------------------
    def respond(self, method: str, target: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; plain so tests can call it without sockets."""
        path, _, query = target.partition("?")
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/v1/pressure":
            since = None
            for part in query.split("&"):
                k, _, v = part.partition("=")
                if k == "since":
                    try:
                        since = float(v)
                    except ValueError:
                        return 400, "text/plain", b"since must be a number\n"
            doc = pressure_document(self.sampler, self.clock(), since)
            doc["agent"]["psi_trigger"] = {"spec": self.config.psi_trigger, "armed": bool(self.trigger and
                                           self.trigger.armed), "error": self.trigger_error or None}
            return 200, "application/json", json.dumps(doc, separators=(",", ":")).encode()
        if path == "/healthz":
            ok, why = self.health()
            return (200 if ok else 503), "text/plain", (why + "\n").encode()
        return 404, "text/plain", b"not found\n"

    def health(self) -> tuple[bool, str]:
        r = self.sampler.latest
        if r is None:
            return False, self.sampler.discovery_error or "no sample yet"
        age = self.clock() - r.sampled_at
        if age > 3 * self.config.interval_s + 2:
            return False, f"last sample is {age:.1f}s old"
        return True, "ok"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, target, *_ = [*head.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""]
            status, ctype, body = self.respond(method, target)
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                      503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode("latin-1") + (body if method != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # slow, oversized or vanished client: just close
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, host: str | None = None, port: int = DEFAULT_PORT) -> int:
        """Take a first sample, arm the trigger, listen (``host=None``: every interface, IPv4 and IPv6).
        Returns the bound port (``port=0`` picks one)."""
        self.sampler.sample()
        self._arm_trigger()
        self._server = await asyncio.start_server(self._serve, host, port, limit=16384)
        self._task = asyncio.create_task(self._loop())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.trigger is not None:
            self.trigger.close()

    def _arm_trigger(self) -> None:
        """Arm (or re-arm) the trigger on the primary cgroup; runs after every round, so a sidecar that
        started before its pod's cgroup existed, or a trigger the kernel closed, gets one later."""
        spec, target = self.config.psi_trigger, self.sampler.primary_target
        if not spec:
            return
        if target is None or target.v2_dir is None:
            self.trigger_error = "no cgroup v2 directory for PSI (yet)"
            return
        path = str(target.v2_dir / "memory.pressure")
        if self.trigger is not None:
            if self.trigger.armed and self.trigger.path == path:
                return
            self.trigger.close()
            self.trigger, self._trigger_tried = None, ""  # closed by the kernel or moved: try again
        if path == self._trigger_tried:
            return  # refused on this file already (EINVAL, EROFS…): do not retry every second
        self._trigger_tried = path
        trig = PsiTrigger(path, spec, self._on_trigger)
        try:
            trig.arm(asyncio.get_running_loop())
            self.trigger, self.trigger_error = trig, ""
        except TriggerError as e:
            self.trigger_error = str(e)
            log.warning("%s; sampling every %.1fs only", e, self.config.interval_s)

    def _on_trigger(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        reason = "interval"
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.interval_s)
                reason = "trigger"
            except TimeoutError:
                reason = "interval"
            self._wake.clear()
            try:
                self.sampler.sample(reason)
                self._arm_trigger()
            except Exception:  # never let one bad round stop the agent
                log.exception("sampling round failed")
