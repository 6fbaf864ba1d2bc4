"""``rva explain --cluster``: plan once against a live (simulated) cluster over HTTP; nothing is written."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from autoscaler.localstack import TOKEN, LocalStack, worker_group

pytestmark = [pytest.mark.slow, pytest.mark.stack(real_ray=False)]


async def test_explain_cluster_prints_the_plan_and_never_writes(stack: LocalStack, tmp_path: Path) -> None:
    stack.put_policy("groups:\n  cpu:\n    horizontal: {minReplicas: 2}\n")  # the policy asks for more
    stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu", replicas=1)]))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", "explain", "--cluster", "default/rc", "--server", stack.server.url,
        "--token-file", str(token), "--json", "--gcs-timeout", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["cluster"] == "default/rc"
    (action,) = result["actions"]
    assert action["kind"] == "ScaleOut" and action["group"] == "cpu" and action["reason"] == "MinReplicas"
    writes = [r for r in stack.server.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert writes == []

    missing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", "explain", "--cluster", "default/nope", "--server", stack.server.url,
        "--token-file", str(token), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await missing.communicate()
    assert missing.returncode == 1 and b"not managed by rva" in err
