"""Acceptance 7: rva refuses RayClusters another autoscaler owns, and says so."""

from __future__ import annotations

import pytest

from autoscaler.localstack import LocalStack, worker_group

pytestmark = [pytest.mark.slow, pytest.mark.stack(real_ray=False)]


async def test_in_tree_autoscaler_and_ray_ippr_are_refused_with_an_event(stack: LocalStack) -> None:
    group = worker_group("cpu", replicas=1)
    stack.create_raycluster(stack.raycluster("intree", [group], in_tree_autoscaling=True))
    stack.create_raycluster(stack.raycluster(
        "ippr", [group], annotations={"ray.io/ippr": '{"groups": {"cpu": {"max-cpu": 4, "max-memory": "4Gi", '
                                                   '"resize-timeout": 60}}}'}))
    stack.create_raycluster(stack.raycluster("mine", [group]))
    daemon = await stack.start_daemon()

    assert await stack.wait_for(lambda: len(stack.events("ManagementRefused")) == 2, 10)
    refused = {e["involvedObject"]["name"]: e for e in stack.events("ManagementRefused")}
    assert set(refused) == {"intree", "ippr"}
    assert refused["intree"]["type"] == "Warning" and "enableInTreeAutoscaling" in refused["intree"]["message"]
    assert "ray.io/ippr" in refused["ippr"]["message"]
    assert set(daemon.refused) == {("default", "intree"), ("default", "ippr")}
    assert daemon.worker("default", "mine") is not None and daemon.worker("default", "intree") is None
    assert daemon.metrics.refused.labels("InTreeAutoscaler")._value.get() == 1
    assert daemon.metrics.refused.labels("RayIPPR")._value.get() == 1
    # nothing was written to the refused clusters or their pods
    writes = [
        r for r in stack.server.requests if r.method in ("PATCH", "PUT") and ("intree" in r.path or "ippr" in r.path)
    ]
    assert writes == []

    # the user turns the in-tree autoscaler off: rva takes the cluster over
    rc = stack.cluster.raycluster("intree")
    rc["spec"]["enableInTreeAutoscaling"] = False
    stack.store.update("rayclusters", rc)
    assert await stack.wait_for(lambda: daemon.worker("default", "intree") is not None, 10)
    assert ("default", "intree") not in daemon.refused
