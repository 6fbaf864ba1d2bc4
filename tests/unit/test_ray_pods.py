"""Raylet ↔ pod matching by RAY_CLOUD_INSTANCE_ID (= pod name)."""

from __future__ import annotations

from autoscaler.model import PodState, QoSClass, RayNodeState, Resources
from autoscaler.observe.ray_pods import attach_ray_nodes, live_nodes_by_instance


def pod(name: str) -> PodState:
    r = Resources.of(cpu=1000)
    return PodState(name, "ns", "cpu-workers", "node-1", "Running", QoSClass.GUARANTEED, "ray-worker",
                    r, r, r, r, r)  # fmt: skip


def node(node_id: str, instance: str, status: str = "RUNNING", started_at: float | None = None) -> RayNodeState:
    return RayNodeState(node_id, instance, "cpu-workers", Resources(), Resources(), {}, 0.0, status, started_at)


def test_attach_matches_pods_and_reports_loose_ends() -> None:
    match = attach_ray_nodes(
        [pod("w-a"), pod("w-b")],
        [node("01", "w-a"), node("02", "head"), node("03", "w-b", "DEAD"), node("04", "")],
    )
    assert match.pods[0].ray is not None and match.pods[0].ray.node_id == "01"
    assert match.pods[1].ray is None
    assert match.unregistered == ("w-b",)
    assert match.unmatched_nodes == ("02",)


def test_restarted_container_prefers_the_newest_raylet() -> None:
    old, new = node("aa", "w-a", started_at=100.0), node("0b", "w-a", started_at=200.0)
    assert live_nodes_by_instance([old, new])["w-a"] is new
    assert live_nodes_by_instance([new, old])["w-a"] is new
    # Without start times: a draining node loses, otherwise the pick is stable.
    draining, fresh = node("ff", "w-a", "DRAINING"), node("01", "w-a")
    assert live_nodes_by_instance([draining, fresh])["w-a"] is fresh
    a, b = node("01", "w-a"), node("02", "w-a")
    assert live_nodes_by_instance([a, b])["w-a"] is live_nodes_by_instance([b, a])["w-a"]


def test_dead_nodes_are_ignored() -> None:
    assert live_nodes_by_instance([node("01", "w-a", "DEAD")]) == {}
