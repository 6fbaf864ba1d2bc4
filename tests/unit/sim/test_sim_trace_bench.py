"""The virtual-trace benchmark at a small size: it runs, it is deterministic, every controller did work."""

from __future__ import annotations

from autoscaler.bench.sim_trace import virtual_trace_async


async def test_small_virtual_trace_exercises_every_controller() -> None:
    kw = {"pods": 200, "nodes": 20, "hours": 0.25, "tasks_per_second": 1.0, "resizes_per_minute": 20}
    first = await virtual_trace_async(**kw)  # type: ignore[arg-type]
    assert first["nodes"] == 21
    assert first["pods"] == 200 and first["pods_running"] == 200
    assert first["ray"]["completed"] > 100
    assert first["resize_requests"] == 20 * 15
    assert first["scale_down"] == 2 and first["scale_up"] == 2
    assert first["pods_peak"] == 204  # the surge needed nodes: spot was in stockout, on-demand provided
    assert first["nodes_by_pool"] == {"cpu": 21, "spot": 0}
    assert first["events"] > 0 and first["kubelet_status_writes"] > 400
    second = await virtual_trace_async(**kw)  # type: ignore[arg-type]
    for key in ("ray", "store_writes", "resize_rejected", "events", "timers_fired"):
        assert first[key] == second[key], key
