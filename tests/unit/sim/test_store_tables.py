"""Server-side Table printing used by ``kubectl get``."""

from __future__ import annotations

import pytest

from autoscaler.sim.store import ObjectStore
from autoscaler.sim.tables import human_age, to_table, wants_table


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"),
    (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"),
])
def test_human_age(seconds: int, text: str) -> None:
    assert human_age(seconds) == text


def test_pod_table_rows() -> None:
    store = ObjectStore(clock=lambda: 1_000_000.0)
    store.create("pods", {"metadata": {"name": "w1"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}})
    pod = store.bind("default", "w1", "n1")
    pod["status"].update({"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}}}]})
    store.update("pods", pod, "status")
    items, rv = store.list("pods")
    table = to_table("pods", items, rv, now=1_000_090.0)
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:7] == ["w1", "1/1", "Running", 2, "90s", "10.0.0.7", "n1"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "w1"
    assert wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
