"""The trace format: round trip, malformed lines (line number + field), scaling, built-ins, state-API import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.replay.scenario import builtin_traces, trace_path
from autoscaler.sim.traces import TaskSpec, Trace, TraceFormatError, scale_trace
from autoscaler.trace_cli import tasks_to_trace

GI = 2**30
DATA = Path(__file__).resolve().parents[2] / "data" / "traces"


def sample_trace() -> Trace:
    return Trace.of(
        [
            TaskSpec(0.0, {"CPU": 1.0, "memory": float(GI)}, 3.5, name="read"),
            TaskSpec(1.5, {"CPU": 2.0}, 10.0, label_selector={"ray.io/market-type": "spot"},
                     fallbacks=({"ray.io/market-type": "on-demand"},), memory_used=3 * GI, name="map"),
            TaskSpec(2.0, {"CPU": 1.0, "GPU": 1.0}, 60.0, kind="actor", name="Model"),
            TaskSpec(5.0, {"CPU": 4.0}, 30.0, kind="placement_group", group="pg", strategy="STRICT_PACK",
                     name="pg[0]"),
            TaskSpec(5.0, {"CPU": 4.0}, 30.0, kind="placement_group", group="pg", strategy="STRICT_PACK",
                     name="pg[1]"),
        ],
        {"name": "sample", "description": "round trip"},
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    trace = sample_trace()
    path = tmp_path / "t.jsonl"
    trace.write_jsonl(path)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["rva_trace"] == 1
    assert sum(1 for line in lines if '"placement_group"' in line) == 1  # one line per placement group
    again = Trace.read_jsonl(path)
    assert again == trace
    assert [t.kind for t in again] == ["task", "task", "actor", "placement_group", "placement_group"]


def test_old_style_lines_without_kind_or_header_still_read() -> None:
    t = Trace.loads('{"submit_at": 1, "resources": {"CPU": 1}, "duration": 2}\n\n')
    assert len(t) == 1 and t.tasks[0].kind == "task" and t.meta == {}


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"submit_at": 0, "resources": {"CPU": 1}}', "duration", "required"),
        ('{"submit_at": 0, "resources": {"CPU": 1}, "duration": -2}', "duration", "> 0"),
        ('{"submit_at": "soon", "resources": {"CPU": 1}, "duration": 2}', "submit_at", "number"),
        ('{"submit_at": 0, "resources": {"CPU": "one"}, "duration": 2}', "resources.CPU", "number"),
        ('{"submit_at": 0, "resources": [1], "duration": 2}', "resources", "object"),
        ('{"submit_at": 0, "resources": {"CPU": 1}, "duration": 2, "colour": "red"}', "colour", "unknown field"),
        ('{"kind": "job", "submit_at": 0, "resources": {}, "duration": 2}', "kind", "one of"),
        ('{"submit_at": 0, "resources": {"CPU": 1}, "duration": 2, "label_selector": {"a": 1}}', "label_selector",
         "selector"),
        ('{"submit_at": 0, "resources": {"CPU": 1}, "duration": 2, "fallbacks": {"a": "b"}}', "fallbacks", "list"),
        ('{"kind": "placement_group", "submit_at": 0, "duration": 2, "bundles": []}', "bundles", "non-empty"),
        ('{"kind": "placement_group", "submit_at": 0, "duration": 2, "bundles": [{"CPU": 1}], "strategy": "X"}',
         "strategy", "one of"),
        ('{"kind": "placement_group", "submit_at": 0, "duration": 2, "bundles": [{"CPU": -1}]}', "bundles[0].CPU",
         "≥ 0"),
    ],
)
def test_malformed_line_names_line_and_field(line: str, field: str, words: str) -> None:
    text = '{"rva_trace": 1, "name": "x"}\n{"submit_at": 0, "resources": {"CPU": 1}, "duration": 1}\n' + line + "\n"
    with pytest.raises(TraceFormatError) as err:
        Trace.loads(text, source="bad.jsonl")
    assert err.value.line == 3
    assert err.value.field == field
    assert str(err.value).startswith(f"bad.jsonl:3: field '{field}': ")
    assert words in str(err.value)


def test_invalid_json_and_late_header_are_errors_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"submit_at": 0, "resources": {}, "duration": 1}\n{"submit_at": 0,\n')
    with pytest.raises(TraceFormatError, match=r"broken.jsonl:2: not valid JSON"):
        Trace.read_jsonl(path)
    with pytest.raises(TraceFormatError, match=r":2: field 'rva_trace': the header must be the first line"):
        Trace.loads('{"submit_at": 0, "resources": {}, "duration": 1}\n{"rva_trace": 1}\n')
    with pytest.raises(TraceFormatError, match="unsupported version"):
        Trace.loads('{"rva_trace": 9}\n')


def test_scale_trace_is_seeded_and_scales() -> None:
    base = sample_trace()
    a = scale_trace(base, copies=2, time_scale=2.0, gap=10.0, jitter=0.1, seed=3)
    b = scale_trace(base, copies=2, time_scale=2.0, gap=10.0, jitter=0.1, seed=3)
    c = scale_trace(base, copies=2, time_scale=2.0, gap=10.0, jitter=0.1, seed=4)
    assert a == b and a != c
    assert len(a) == 2 * len(base)
    plain = scale_trace(base, time_scale=2.0)
    assert [t.duration for t in plain] == [2 * t.duration for t in base]


def test_builtin_traces_parse() -> None:
    names = builtin_traces()
    assert {"tpch-q1-q5", "bursty", "skewed-memory", "gpu-fallback"} <= set(names)
    for name in names:
        trace = Trace.read_jsonl(trace_path(name))
        assert len(trace) > 0 and trace.meta.get("name") == name
    tpch = Trace.read_jsonl(trace_path("tpch-q1-q5"))
    assert "recorded_with" in tpch.meta and tpch.cpu_seconds() > 50


def test_state_api_records_become_a_trace() -> None:
    rows = [
        {"task_id": "a", "attempt_number": 0, "type": "NORMAL_TASK", "func_or_class_name": "f",
         "required_resources": {"CPU": 1.0, "node:10.0.0.1": 0.001}, "creation_time_ms": 1000,
         "start_time_ms": 1500, "end_time_ms": 4500, "label_selector": {"ray.io/market-type": "spot",
                                                                        "ray.io/node-id": "abc"}},
        {"task_id": "a", "attempt_number": 1, "type": "NORMAL_TASK", "func_or_class_name": "f",
         "required_resources": {"CPU": 1.0}, "creation_time_ms": 1000, "start_time_ms": 5000, "end_time_ms": 6000},
        {"task_id": "b", "attempt_number": 0, "type": "ACTOR_CREATION_TASK", "func_or_class_name": "A",
         "actor_id": "x", "required_resources": {"CPU": 2.0}, "creation_time_ms": 2000, "start_time_ms": 2100,
         "end_time_ms": 2200},
        {"task_id": "c", "attempt_number": 0, "type": "ACTOR_TASK", "actor_id": "x", "creation_time_ms": 2300,
         "start_time_ms": 2300, "end_time_ms": 9100},
        {"task_id": "d", "type": "DRIVER_TASK", "creation_time_ms": 0},
    ]
    trace = tasks_to_trace(rows, {"name": "unit"})
    assert [(t.kind, t.submit_at, t.duration) for t in trace] == [("task", 0.0, 1.0), ("actor", 1.0, 7.0)]
    assert trace.tasks[0].resources == {"CPU": 1.0}  # node: resources dropped, last attempt kept
    assert trace.tasks[1].resources == {"CPU": 2.0}


def test_committed_recorded_trace_reads() -> None:
    trace = Trace.read_jsonl(DATA / "tiny-recorded.jsonl")
    assert trace.meta["recorded_with"].startswith("rva trace record")
    assert {t.kind for t in trace} == {"task", "actor"}
