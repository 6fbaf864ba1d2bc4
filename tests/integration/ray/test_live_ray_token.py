"""A token-auth Ray cluster (RAY_AUTH_MODE=token) is read with its token and refused without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.bench.local_ray import LocalRayCluster, NodeSpec
from autoscaler.observe.ray_gcs import GcsConnection, RayGcsAuthError, RayGcsReader

pytestmark = pytest.mark.ray

TOKEN = "rva-test-token-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def token_cluster() -> Iterator[LocalRayCluster]:
    head = NodeSpec("rc-secure-head-s0001", "headgroup", num_cpus=1)
    with LocalRayCluster(head, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}) as cluster:
        yield cluster


async def test_read_with_token_file(token_cluster: LocalRayCluster, tmp_path: Path) -> None:
    token_file = tmp_path / "auth_token"
    token_file.write_text(TOKEN + "\n")  # a mounted Secret usually ends with a newline
    async with GcsConnection(token_cluster.address, token_path=token_file, default_token_path=None) as conn:
        state = await RayGcsReader(conn).read()
    assert [n.instance_id for n in state.nodes] == ["rc-secure-head-s0001"]
    assert conn.ray_version == "2.60.0"


async def test_read_with_token_from_env(token_cluster: LocalRayCluster) -> None:
    async with GcsConnection(token_cluster.address, env={"RAY_AUTH_TOKEN": TOKEN}, default_token_path=None) as conn:
        assert len((await RayGcsReader(conn).read()).nodes) == 1


async def test_refused_without_token_with_a_clear_error(token_cluster: LocalRayCluster) -> None:
    async with GcsConnection(token_cluster.address, env={}, default_token_path=None, attempts=1) as conn:
        with pytest.raises(RayGcsAuthError, match=r"token authentication.*supply the cluster's token") as err:
            await RayGcsReader(conn).read()
    assert err.value.code == "UNAUTHENTICATED"


async def test_refused_with_a_wrong_token(token_cluster: LocalRayCluster) -> None:
    async with GcsConnection(token_cluster.address, token="not-the-token", default_token_path=None) as conn:
        with pytest.raises(RayGcsAuthError, match="rejected the token from argument"):
            await RayGcsReader(conn).read()
