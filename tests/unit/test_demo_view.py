"""The demo's progress lines and final table (plain text, as a CI log or a pipe shows them)."""

from __future__ import annotations

import io

from autoscaler.demo_record import EventRecord, summarize
from autoscaler.demo_view import Reporter, print_summary, shown
from tests.unit.test_demo_summary import CPU_POD, recorded_run


def test_plain_mode_prints_each_action_with_its_reason_and_phase_progress() -> None:
    rec = recorded_run()
    out = io.StringIO()
    r = Reporter("plain", rec, [(p.key, p.title) for p in rec.phases], out=out)
    r.phase_started(rec.phases[0])
    for e in rec.events[:3]:
        r.event(e)
    r.phase_ended(rec.phases[0], True, "grown in place")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("── phase 1/4: CPU burst")
    assert "GrowPod" in lines[1] and CPU_POD in lines[1] and "[DemandFitsInPlace]" in lines[1]
    # the kubelet's own ResizeCompleted is not repeated; rva's says what was applied
    assert len(lines) == 4 and "applied by the kubelet: now 3.2 CPU, 1Gi" in lines[2]
    assert lines[3].startswith("[  22.2s] ✓ CPU burst (2.2s): grown in place")


def test_quiet_mode_prints_nothing_and_context_events_are_selected() -> None:
    rec = recorded_run()
    out = io.StringIO()
    r = Reporter("quiet", rec, [], out=out)
    for e in rec.events:
        r.event(e)
    assert out.getvalue() == ""
    assert shown(EventRecord(1, "NotTriggerScaleUp", "Pod", "p", "in stockout", "cluster-autoscaler"))
    assert not shown(EventRecord(1, "Scheduled", "Pod", "p", "assigned", "default-scheduler"))


def test_summary_table_marks_an_unobserved_phase() -> None:
    rec = recorded_run()
    rec.events = [e for e in rec.events if e.reason != "ShrinkPod"]
    out = io.StringIO()
    print_summary(summarize(rec), "out/x.png", None, out=out, color=False)
    text = out.getvalue()
    assert "NO" in text and "no applied ShrinkPod" in text and "timeline: out/x.png" in text
    assert text.count("yes") == 3
