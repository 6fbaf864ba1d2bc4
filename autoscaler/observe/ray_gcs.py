"""Talk to a Ray cluster's GCS over ``grpc.aio`` with Ray's generated stubs, without ``ray.init``.

``GcsConnection`` owns the channel, token auth, per-call timeouts, reconnects with jittered
exponential backoff and the Ray version check; ``RayGcsReader`` reads the cluster resource state
(nodes, pending demand, gangs, constraints) and turns it into model objects via ``ray_demand``.
The raylet actuator (``autoscaler.actuate.raylet``) reuses ``GcsConnection``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from ray.core.generated import (
    autoscaler_pb2,
    autoscaler_pb2_grpc,
    gcs_service_pb2,
    gcs_service_pb2_grpc,
)

from autoscaler.observe.ray_demand import (
    RayClusterState,
    convert_state,
    duplicate_instance_ids,
    nodes_at_shape_cap,
)

#: Ray's default ``max_resource_shapes_per_load_report`` (src/ray/common/ray_config_def.h).
DEFAULT_SHAPE_CAP = 100
#: Ray versions rva accepts: [min, max). The protocol was verified on 2.60; 2.56 is the first release with
#: every API rva uses (label selectors with fallbacks in the demand, ResizeRayletResourceInstances).
SUPPORTED_RAY_VERSIONS: tuple[tuple[int, int, int], tuple[int, int, int]] = ((2, 56, 0), (3, 0, 0))

# Internal KV entry every head writes at start (ray/_common/usage/usage_lib.py: put_cluster_metadata).
_KV_NAMESPACE_CLUSTER = b"cluster"
_KV_CLUSTER_METADATA = b"CLUSTER_METADATA"
_DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"

#: Codes worth a new channel and another attempt; everything else is the caller's problem.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class RayGcsError(Exception):
    """A GCS call failed; ``code`` is the gRPC status name when there was one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RayGcsUnavailable(RayGcsError):
    """The GCS did not answer (down, unreachable, or too slow) after all attempts."""


class RayGcsAuthError(RayGcsError):
    """The GCS wants a token (``RAY_AUTH_MODE=token``) and we sent none or a wrong one."""


class UnsupportedRayVersion(RayGcsError):
    """The cluster runs a Ray whose GCS protocol rva does not know."""


# --------------------------------------------------------------------------------------------------
# Token auth
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GcsToken:
    value: str
    source: str  # where it came from, for error messages (never the token itself)


def load_token(
    token: str | None = None,
    token_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    default_path: Path | None = _DEFAULT_TOKEN_PATH,
) -> GcsToken | None:
    """Find the cluster token the way Ray does: explicit value or file, then ``RAY_AUTH_TOKEN``,
    then ``RAY_AUTH_TOKEN_PATH``, then ``~/.ray/auth_token``. ``None`` when there is none."""
    env = os.environ if env is None else env
    if token:
        return GcsToken(token.strip(), "argument")
    if token_path:
        return GcsToken(Path(token_path).read_text().strip(), f"file {token_path}")
    if env.get("RAY_AUTH_TOKEN"):
        return GcsToken(env["RAY_AUTH_TOKEN"].strip(), "env RAY_AUTH_TOKEN")
    if env.get("RAY_AUTH_TOKEN_PATH"):
        path = env["RAY_AUTH_TOKEN_PATH"]
        return GcsToken(Path(path).read_text().strip(), f"file {path} (RAY_AUTH_TOKEN_PATH)")
    if default_path is not None and default_path.is_file():
        return GcsToken(default_path.read_text().strip(), f"file {default_path}")
    return None


# --------------------------------------------------------------------------------------------------
# Backoff and versions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n sleeps ``uniform(0.5, 1) × min(max, initial × 2ⁿ)``."""

    initial_s: float = 0.2
    max_s: float = 10.0

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * (2 ** max(0, failures - 1)))
        return base * rng.uniform(0.5, 1.0)


_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def parse_ray_version(text: str) -> tuple[int, int, int] | None:
    m = _VERSION_RE.match(text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _fmt(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


def check_ray_version(
    version: str, supported: tuple[tuple[int, int, int], tuple[int, int, int]] = SUPPORTED_RAY_VERSIONS
) -> None:
    """Raise ``UnsupportedRayVersion`` unless ``min <= version < max``."""
    parsed = parse_ray_version(version)
    lo, hi = supported
    if parsed is None or not (lo <= parsed < hi):
        raise UnsupportedRayVersion(
            f"the Ray cluster runs Ray {version!r}; rva supports Ray >= {_fmt(lo)} and < {_fmt(hi)} "
            "(the GCS autoscaler protocol it reads was verified on those versions)"
        )


# --------------------------------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------------------------------

Sleep = Callable[[float], Awaitable[None]]


class GcsConnection:
    """One ``grpc.aio`` channel to a GCS with auth, timeouts, retries and a version check.

    The channel is recreated after a retryable failure (a stale channel to a restarted head can
    keep failing). The token is re-read on every new channel so a rotated Secret is picked up.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        token_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        default_token_path: Path | None = _DEFAULT_TOKEN_PATH,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff: Backoff | None = None,
        supported_versions: tuple[tuple[int, int, int], tuple[int, int, int]] | None = SUPPORTED_RAY_VERSIONS,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff = backoff or Backoff()
        self.supported_versions = supported_versions
        self.ray_version: str | None = None
        self._token_args = (token, token_path, env, default_token_path)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._log = logger or logging.getLogger(__name__)
        self._on_error = on_error
        self._channel: Any = None
        self._stubs: dict[str, Any] = {}
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._token: GcsToken | None = None
        self._failures = 0  # consecutive failed attempts, drives the backoff across calls
        self._version_checked = False
        self._ready = asyncio.Lock()  # concurrent calls share one channel and one version check

    # Channel ----------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self._token = load_token(*self._token_args)
        except OSError as e:
            raise RayGcsAuthError(f"cannot read the Ray auth token for GCS {self.address}: {e}") from e
        self._metadata = (("authorization", f"Bearer {self._token.value}"),) if self._token else ()
        # Ray's replies are small, but a big cluster's state can pass the 4 MiB default.
        self._channel = grpc.aio.insecure_channel(
            self.address,
            options=[("grpc.max_receive_message_length", 512 * 1024 * 1024), ("grpc.enable_retries", 0)],
        )
        self._stubs = {
            "autoscaler": autoscaler_pb2_grpc.AutoscalerStateServiceStub(self._channel),
            "kv": gcs_service_pb2_grpc.InternalKVGcsServiceStub(self._channel),
            "node": gcs_service_pb2_grpc.NodeInfoGcsServiceStub(self._channel),
            "resource": gcs_service_pb2_grpc.NodeResourceInfoGcsServiceStub(self._channel),
        }

    async def _reset(self, only: Any = None) -> None:
        """Drop the channel (``only``: just if it is still that one, so a concurrent call that already
        reconnected keeps its fresh channel)."""
        if only is not None and self._channel is not only:
            return
        channel, self._channel, self._stubs = self._channel, None, {}
        self._version_checked = False
        if channel is not None:
            await channel.close(grace=None)

    async def close(self) -> None:
        await self._reset()

    async def _ensure_ready(self) -> Any:
        async with self._ready:
            if self._channel is None:
                self._open()
            if not self._version_checked and self.supported_versions is not None:
                await self._check_version()
            return self._channel

    async def __aenter__(self) -> GcsConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Calls ------------------------------------------------------------------------------------
    async def call(self, service: str, method: str, request: Any, *, timeout_s: float | None = None) -> Any:
        """Call ``service.method`` (service: autoscaler | kv | node | resource) with retries."""
        while True:
            channel = None
            try:
                channel = await self._ensure_ready()
                reply = await self._raw(service, method, request, timeout_s)
                self._failures = 0
                return reply
            except grpc.aio.AioRpcError as e:
                error = self._translate(e, f"{service}.{method}")
                if self._on_error is not None:
                    self._on_error(error.code or "UNKNOWN")
                if e.code() not in _RETRYABLE:
                    raise error from e
                self._failures += 1
                await self._reset(only=channel or self._channel)
                if self._failures % self.attempts == 0:
                    raise error from e
                delay = self.backoff.delay(self._failures, self._rng)
                self._log.info("GCS %s: %s; reconnecting in %.2fs", self.address, e.code().name, delay)
                await self._sleep(delay)

    async def _raw(self, service: str, method: str, request: Any, timeout_s: float | None) -> Any:
        rpc = getattr(self._stubs[service], method)
        return await rpc(request, timeout=timeout_s or self.timeout_s, metadata=self._metadata)

    async def _check_version(self) -> None:
        """Read the head's Ray version from internal KV; unknown (no entry) is allowed, wrong is not."""
        request = gcs_service_pb2.InternalKVGetRequest(key=_KV_CLUSTER_METADATA, namespace=_KV_NAMESPACE_CLUSTER)
        reply = await self._raw("kv", "InternalKVGet", request, None)
        version = None
        if reply.value:
            try:
                version = str(json.loads(reply.value)["ray_version"])
            except (ValueError, KeyError, TypeError):
                version = None
        if version is None:
            self._log.warning("GCS %s has no readable cluster metadata; cannot check its Ray version", self.address)
        else:
            assert self.supported_versions is not None
            check_ray_version(version, self.supported_versions)
        self.ray_version = version
        self._version_checked = True

    def _translate(self, e: grpc.aio.AioRpcError, what: str) -> RayGcsError:
        code = e.code()
        detail = e.details() or ""
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if self._token is None:
                hint = (
                    "it runs with token authentication (RAY_AUTH_MODE=token): supply the cluster's token "
                    "with RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or the reader's token/token_path"
                )
            else:
                hint = f"it rejected the token from {self._token.source}; supply the cluster's current token"
            return RayGcsAuthError(f"Ray GCS {self.address} refused {what}: {hint} ({detail})", code.name)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            lo, hi = self.supported_versions or SUPPORTED_RAY_VERSIONS
            return UnsupportedRayVersion(
                f"Ray GCS {self.address} does not implement {what}: the cluster's Ray is too old or too new "
                f"for rva (supported: Ray >= {_fmt(lo)} and < {_fmt(hi)})",
                code.name,
            )
        if code in _RETRYABLE:
            return RayGcsUnavailable(f"Ray GCS {self.address}: {what} failed: {code.name} {detail}", code.name)
        return RayGcsError(f"Ray GCS {self.address}: {what} failed: {code.name} {detail}", code.name)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


class RayGcsMetrics:
    """Prometheus series for GCS reads; one instance per registry, labelled by RayCluster."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.read_seconds = Histogram(
            "rva_ray_gcs_read_seconds",
            "Time to read and parse the Ray cluster resource state from the GCS.",
            ["cluster"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            **kw,
        )
        self.errors = Counter(
            "rva_ray_gcs_errors_total", "Failed GCS calls by gRPC status code.", ["cluster", "code"], **kw
        )
        self.demand_truncated = Gauge(
            "rva_ray_demand_truncated",
            "1 when a raylet reported as many demand shapes as its cap, so some pending demand is invisible "
            "(raise RAY_max_resource_shapes_per_load_report).",
            ["cluster"],
            **kw,
        )
        self.truncated_reads = Counter(
            "rva_ray_demand_truncated_reads_total", "GCS reads whose demand was truncated.", ["cluster"], **kw
        )
        self.demand_shapes = Gauge(
            "rva_ray_demand_shapes", "Distinct pending demand shapes after normalisation.", ["cluster"], **kw
        )


# --------------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------------


class RayGcsReader:
    """Reads one Ray cluster's resource state and converts it to model objects.

    A read is one ``GetClusterResourceState`` call. Every ``truncation_check_interval_s`` it also calls
    ``GetAllResourceUsage`` (concurrently): its per-raylet demand lists are the only place a raylet's
    shape cap is visible (the GCS merges equal shapes across raylets and scheduling classes). Only
    when two live raylets claim the same pod does it call ``GetAllNodeInfo`` for their start times.
    """

    def __init__(
        self,
        connection: GcsConnection,
        *,
        cluster: str = "",
        shape_cap: int = DEFAULT_SHAPE_CAP,
        check_truncation: bool = True,
        truncation_check_interval_s: float = 5.0,
        metrics: RayGcsMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        warn_every_s: float = 300.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.connection = connection
        self.cluster = cluster
        self.shape_cap = shape_cap
        self.check_truncation = check_truncation
        self.truncation_check_interval_s = truncation_check_interval_s
        self._usage_checked_at: float | None = None
        self._at_cap: tuple[str, ...] | None = None
        self._metrics = metrics
        self._clock = clock
        self._warn_every_s = warn_every_s
        self._last_warned: float | None = None
        self._log = logger or logging.getLogger(__name__)
        if metrics is not None and connection._on_error is None:
            connection._on_error = lambda code: metrics.errors.labels(cluster, code).inc()

    async def read_raw(self) -> autoscaler_pb2.ClusterResourceState:
        reply = await self.connection.call(
            "autoscaler", "GetClusterResourceState", autoscaler_pb2.GetClusterResourceStateRequest()
        )
        return reply.cluster_resource_state

    async def read(self) -> RayClusterState:
        start = self._clock()
        due = self.check_truncation and (
            self._usage_checked_at is None or start - self._usage_checked_at >= self.truncation_check_interval_s
        )
        if due:
            state, usage = await asyncio.gather(self.read_raw(), self._read_usage())
            self._usage_checked_at = start
            self._at_cap = nodes_at_shape_cap(usage, self.shape_cap) if usage is not None else None
        else:
            state = await self.read_raw()
        start_times = await self._start_times() if duplicate_instance_ids(state) else None
        result = convert_state(state, shape_cap=self.shape_cap, nodes_at_cap=self._at_cap, start_times=start_times)
        self._record(result, self._clock() - start)
        return result

    async def _read_usage(self) -> Any:
        try:
            reply = await self.connection.call(
                "resource", "GetAllResourceUsage", gcs_service_pb2.GetAllResourceUsageRequest()
            )
        except RayGcsError as e:  # truncation is advisory; fall back to the cheap signal
            self._log.debug("GetAllResourceUsage failed: %s", e)
            return None
        return reply

    async def _start_times(self) -> dict[str, float]:
        reply = await self.connection.call("node", "GetAllNodeInfo", gcs_service_pb2.GetAllNodeInfoRequest())
        return {n.node_id.hex(): n.start_time_ms / 1000.0 for n in reply.node_info_list}

    def _record(self, result: RayClusterState, seconds: float) -> None:
        if self._metrics is not None:
            m = self._metrics
            m.read_seconds.labels(self.cluster).observe(seconds)
            m.demand_truncated.labels(self.cluster).set(1 if result.truncated else 0)
            m.demand_shapes.labels(self.cluster).set(len(result.demands))
            if result.truncated:
                m.truncated_reads.labels(self.cluster).inc()
        if result.truncated:
            now = self._clock()
            if self._last_warned is None or now - self._last_warned >= self._warn_every_s:
                self._last_warned = now
                self._log.warning(
                    "Ray cluster %s: pending demand is truncated: raylet(s) %s reported %d or more resource "
                    "shapes (%d shapes / %d tasks visible); rva cannot see the rest. Set "
                    "RAY_max_resource_shapes_per_load_report higher in every Ray container "
                    "(and rva's shape cap to match).",
                    self.cluster or self.connection.address,
                    ",".join(n[:12] for n in result.nodes_at_shape_cap) or "?",
                    self.shape_cap,
                    result.shapes_reported,
                    result.tasks_reported,
                )
