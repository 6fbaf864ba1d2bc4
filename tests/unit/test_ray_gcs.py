"""GcsConnection / RayGcsReader / RayletActuator against an in-process fake GCS (real gRPC, no Ray)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from ray.core.generated import autoscaler_pb2, autoscaler_pb2_grpc, gcs_service_pb2, gcs_service_pb2_grpc

from autoscaler.actuate.raylet import DrainOutcome, RayletActuator, UnitResourceResizeError
from autoscaler.bench.local_ray import free_port
from autoscaler.model import Resources
from autoscaler.observe.ray_gcs import (
    Backoff,
    GcsConnection,
    RayGcsAuthError,
    RayGcsMetrics,
    RayGcsReader,
    RayGcsUnavailable,
    UnsupportedRayVersion,
    check_ray_version,
    load_token,
)

TOKEN = "s3cret-token"


class FakeGcs(autoscaler_pb2_grpc.AutoscalerStateServiceServicer, gcs_service_pb2_grpc.InternalKVGcsServiceServicer):
    def __init__(self) -> None:
        self.version = "2.60.0"
        self.token: str | None = None
        self.calls: list[str] = []
        self.drain_reply = autoscaler_pb2.DrainNodeReply(is_accepted=True)
        self.unimplemented = False

    async def _auth(self, context: Any, name: str) -> None:
        self.calls.append(name)
        if self.token is not None:
            md = dict(context.invocation_metadata())
            if md.get("authorization") != f"Bearer {self.token}":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken")

    async def InternalKVGet(self, request: Any, context: Any) -> Any:
        await self._auth(context, "InternalKVGet")
        assert request.namespace == b"cluster" and request.key == b"CLUSTER_METADATA"
        return gcs_service_pb2.InternalKVGetReply(value=json.dumps({"ray_version": self.version}).encode())

    async def GetClusterResourceState(self, request: Any, context: Any) -> Any:
        await self._auth(context, "GetClusterResourceState")
        if self.unimplemented:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        state = autoscaler_pb2.ClusterResourceState(cluster_session_name="session_x")
        state.node_states.add(node_id=b"\x01" * 28, instance_id="pod-a", status=autoscaler_pb2.RUNNING)
        return autoscaler_pb2.GetClusterResourceStateReply(cluster_resource_state=state)

    async def ResizeRayletResourceInstances(self, request: Any, context: Any) -> Any:
        await self._auth(context, "ResizeRayletResourceInstances")
        totals = {"CPU": 6.0, "memory": 2.0**33, "node:10.0.0.1": 1.0}  # CPU clamped: 6 in use
        totals.update({k: v for k, v in request.resources.items() if k != "CPU"})
        return autoscaler_pb2.ResizeRayletResourceInstancesReply(total_resources=totals)

    async def DrainNode(self, request: Any, context: Any) -> Any:
        await self._auth(context, "DrainNode")
        assert request.reason == autoscaler_pb2.DRAIN_NODE_REASON_IDLE_TERMINATION
        return self.drain_reply


@pytest.fixture
async def gcs() -> Any:
    fake = FakeGcs()
    server = grpc.aio.server()
    autoscaler_pb2_grpc.add_AutoscalerStateServiceServicer_to_server(fake, server)
    gcs_service_pb2_grpc.add_InternalKVGcsServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fake.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield fake
    await server.stop(None)


def _conn(address: str, **kw: Any) -> GcsConnection:
    kw.setdefault("env", {})
    kw.setdefault("default_token_path", None)
    kw.setdefault("timeout_s", 2.0)
    return GcsConnection(address, **kw)


def _reader(conn: GcsConnection, **kw: Any) -> RayGcsReader:
    return RayGcsReader(conn, check_truncation=False, **kw)


async def test_reads_and_checks_version_once(gcs: FakeGcs) -> None:
    async with _conn(gcs.address) as conn:
        reader = _reader(conn)
        first, second = await reader.read(), await reader.read()
    assert first.nodes[0].instance_id == "pod-a" and second.session_name == "session_x"
    assert conn.ray_version == "2.60.0"
    assert gcs.calls == ["InternalKVGet", "GetClusterResourceState", "GetClusterResourceState"]


async def test_unsupported_version_is_refused_clearly(gcs: FakeGcs) -> None:
    gcs.version = "2.48.0"
    async with _conn(gcs.address) as conn:
        with pytest.raises(UnsupportedRayVersion, match=r"Ray '2.48.0'; rva supports Ray >= 2.56.0 and < 3.0.0"):
            await _reader(conn).read()
    assert "GetClusterResourceState" not in gcs.calls


async def test_unimplemented_method_means_unsupported_version(gcs: FakeGcs) -> None:
    gcs.unimplemented = True
    async with _conn(gcs.address) as conn:
        with pytest.raises(UnsupportedRayVersion, match=r"does not implement autoscaler\.GetClusterResourceState"):
            await _reader(conn).read()


async def test_token_auth(gcs: FakeGcs, tmp_path: Path) -> None:
    gcs.token = TOKEN
    async with _conn(gcs.address) as conn:
        with pytest.raises(RayGcsAuthError, match="supply the cluster's token with RAY_AUTH_TOKEN"):
            await _reader(conn).read()
    async with _conn(gcs.address, env={"RAY_AUTH_TOKEN": "wrong"}) as conn:
        with pytest.raises(RayGcsAuthError, match="rejected the token from env RAY_AUTH_TOKEN"):
            await _reader(conn).read()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    async with _conn(gcs.address, env={"RAY_AUTH_TOKEN_PATH": str(token_file)}) as conn:
        assert (await _reader(conn).read()).nodes


def test_load_token_precedence(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text(" from-file \n")
    default = tmp_path / "default"
    assert load_token("explicit", env={"RAY_AUTH_TOKEN": "env"}).value == "explicit"  # type: ignore[union-attr]
    assert load_token(token_path=f, env={"RAY_AUTH_TOKEN": "env"}).value == "from-file"  # type: ignore[union-attr]
    assert load_token(env={"RAY_AUTH_TOKEN": "env", "RAY_AUTH_TOKEN_PATH": str(f)}).value == "env"  # type: ignore[union-attr]
    assert load_token(env={"RAY_AUTH_TOKEN_PATH": str(f)}, default_path=default).value == "from-file"  # type: ignore[union-attr]
    assert load_token(env={}, default_path=default) is None
    default.write_text("d")
    assert load_token(env={}, default_path=default).source == f"file {default}"  # type: ignore[union-attr]


async def test_unreachable_gcs_backs_off_with_jitter_then_raises() -> None:
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    conn = _conn(f"127.0.0.1:{free_port()}", attempts=4, backoff=Backoff(0.1, 0.3), sleep=sleep, rng=random.Random(1))
    with pytest.raises(RayGcsUnavailable, match="UNAVAILABLE"):
        await _reader(conn).read()
    assert len(sleeps) == 3
    for got, base in zip(sleeps, [0.1, 0.2, 0.3], strict=True):
        assert base / 2 <= got <= base
    # The next call keeps backing off from where it was instead of hammering a dead head.
    with pytest.raises(RayGcsUnavailable):
        await _reader(conn).read()
    assert all(0.15 <= s <= 0.3 for s in sleeps[3:])
    await conn.close()


async def test_reconnects_after_the_gcs_comes_back(gcs: FakeGcs) -> None:
    port = free_port()
    server = grpc.aio.server()
    autoscaler_pb2_grpc.add_AutoscalerStateServiceServicer_to_server(gcs, server)
    gcs_service_pb2_grpc.add_InternalKVGcsServiceServicer_to_server(gcs, server)
    server.add_insecure_port(f"127.0.0.1:{port}")

    async def start_server_on_first_sleep(_: float) -> None:
        if not started:
            started.append(True)
            await server.start()

    started: list[bool] = []
    async with _conn(f"127.0.0.1:{port}", attempts=5, sleep=start_server_on_first_sleep, timeout_s=0.5) as conn:
        assert (await _reader(conn).read()).nodes[0].instance_id == "pod-a"
    await server.stop(None)


async def test_metrics_and_rate_limited_truncation_warning(gcs: FakeGcs, caplog: Any) -> None:
    registry = CollectorRegistry()
    now = [0.0]
    async with _conn(gcs.address) as conn:
        reader = _reader(
            conn, cluster="rc", metrics=RayGcsMetrics(registry), clock=lambda: now[0], warn_every_s=60, shape_cap=0
        )  # a cap of 0 makes every read count as truncated
        with caplog.at_level(logging.WARNING):
            for t in (0.0, 10.0, 61.0):
                now[0] = t
                assert (await reader.read()).truncated
    warnings = [r for r in caplog.records if "RAY_max_resource_shapes_per_load_report" in r.getMessage()]
    assert len(warnings) == 2
    assert registry.get_sample_value("rva_ray_demand_truncated", {"cluster": "rc"}) == 1
    assert registry.get_sample_value("rva_ray_demand_truncated_reads_total", {"cluster": "rc"}) == 3
    assert registry.get_sample_value("rva_ray_gcs_read_seconds_count", {"cluster": "rc"}) == 3


def test_version_range() -> None:
    check_ray_version("2.60.0")
    check_ray_version("2.60.3")
    for bad in ("2.55.9", "3.0.0", "3.0.0.dev0", "nightly"):
        with pytest.raises(UnsupportedRayVersion):
            check_ray_version(bad)
    check_ray_version("3.0.0.dev0", ((2, 60, 0), (4, 0, 0)))


# Raylet actuator ---------------------------------------------------------------------------------


async def test_resize_returns_the_totals_ray_applied(gcs: FakeGcs) -> None:
    async with _conn(gcs.address) as conn:
        applied = await RayletActuator(conn).resize("01" * 28, Resources.of(cpu=2000, memory=2**33, slots=3000))
    assert applied == Resources.of(cpu=6000, memory=2**33, slots=3000)  # node:* is bookkeeping


@pytest.mark.parametrize("name", ["gpu", "TPU", "neuron_cores"])
async def test_unit_instance_resources_are_refused_before_any_rpc(gcs: FakeGcs, name: str) -> None:
    ray_name = "GPU" if name == "gpu" else name
    async with _conn(gcs.address) as conn:
        with pytest.raises(UnitResourceResizeError, match=f"cannot resize Ray resource '{ray_name}'"):
            await RayletActuator(conn).resize("01" * 28, Resources.of({"cpu": 8000, name: 1000}))
    assert gcs.calls == []


async def test_drain_outcomes(gcs: FakeGcs) -> None:
    async with _conn(gcs.address) as conn:
        actuator = RayletActuator(conn)
        assert (await actuator.drain_idle("01" * 28, "idle for 60s")).accepted
        gcs.drain_reply = autoscaler_pb2.DrainNodeReply(
            is_accepted=False, rejection_reason_message="The node to be idle terminated is no longer idle."
        )
        result = await actuator.drain_idle("01" * 28, "idle for 60s")
        assert result.outcome is DrainOutcome.NOT_IDLE and "no longer idle" in result.message
        gcs.drain_reply = autoscaler_pb2.DrainNodeReply(is_accepted=False, rejection_reason_message="other")
        assert (await actuator.drain_idle("01" * 28, "x")).outcome is DrainOutcome.REJECTED


async def test_concurrent_calls_share_one_channel_and_version_check(gcs: FakeGcs) -> None:
    async with _conn(gcs.address) as conn:
        reader = _reader(conn)
        results = await asyncio.gather(*(reader.read() for _ in range(5)))
    assert all(r.nodes for r in results)
    assert gcs.calls.count("InternalKVGet") == 1


async def test_missing_token_file_is_an_auth_error(gcs: FakeGcs, tmp_path: Path) -> None:
    async with _conn(gcs.address, token_path=tmp_path / "absent") as conn:
        with pytest.raises(RayGcsAuthError, match="cannot read the Ray auth token"):
            await _reader(conn).read()
