"""The demo timeline: capacity/demand series from a recording, and a PNG that matplotlib can read back."""

from __future__ import annotations

from pathlib import Path

from autoscaler.demo_timeline import action_marks, capacity_series, demand_series, raylet_series, render_timeline
from tests.unit.test_demo_summary import recorded_run


def _at(series: object, t: float) -> float:
    ts, vs = series.t, series.v  # type: ignore[attr-defined]
    value = vs[0]
    for x, v in zip(ts, vs, strict=True):
        if x <= t:
            value = v
    return float(value)


def test_capacity_counts_applied_requests_of_running_pods_only() -> None:
    rec = recorded_run()
    cpu = capacity_series(rec, "cpu")
    assert [_at(cpu, t) for t in (5, 11, 21.2, 22, 45)] == [0.0, 1.0, 1.0, 3.2, 1.0]  # PATCH ≠ applied
    asked = capacity_series(rec, "cpu", applied=False)
    assert _at(asked, 21.2) == 3.2  # what was asked, before the kubelet applied it
    spot = capacity_series(rec, "l4-spot")
    assert max(spot.v) == 0.0  # the stuck spot pod never ran
    assert max(capacity_series(rec, "l4-spot", applied=False).v) == 1.0
    od = capacity_series(rec, "l4-ondemand")
    assert (_at(od, 37), _at(od, 49.5)) == (1.0, 0.0)
    assert _at(capacity_series(rec, "mem", resource="memory"), 27) == 1.25
    assert cpu.t[-1] == rec.ended_at


def test_demand_raylets_and_marks_per_group() -> None:
    rec = recorded_run()
    assert _at(demand_series(rec, "cpu"), 21) == 3.0 and _at(demand_series(rec, "cpu"), 23) == 0.0
    assert _at(raylet_series(rec, "cpu"), 22) == 3.2
    assert _at(raylet_series(rec, "l4-ondemand"), 50) == 0.0
    assert [k for _, k, _ in action_marks(rec, "l4-spot")] == ["ScaleOut", "RemovePod"]
    assert [label for _, _, label in action_marks(rec, "cpu")] == ["grow [DemandFitsInPlace]", "shrink [Oversized]"]


def test_render_writes_a_png(tmp_path: Path) -> None:
    import matplotlib.image

    out = render_timeline(recorded_run(), tmp_path / "sub" / "t.png")
    img = matplotlib.image.imread(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.shape[0] > 500 and img.shape[1] > 1000
