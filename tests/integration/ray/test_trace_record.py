"""``rva trace record`` against a real local Ray: the recorded trace replays in the simulator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from autoscaler.replay.runner import run
from autoscaler.replay.scenario import Scenario
from autoscaler.sim.traces import Trace
from autoscaler.trace_cli import record

pytestmark = [pytest.mark.ray, pytest.mark.slow]
WORKLOAD = Path(__file__).resolve().parents[2] / "data" / "tiny_workload.py"


def test_record_a_workload_and_replay_it(tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    trace, rc = record([sys.executable, str(WORKLOAD)], out, num_cpus=4, name="rec")
    assert rc == 0
    assert Trace.read_jsonl(out) == trace
    cpus = sorted(t.resources.get("CPU", 0) for t in trace if t.kind == "task")
    assert cpus == [1.0] * 6 + [2.0]  # six 1-CPU tasks and the 2-CPU one
    assert [t.kind for t in trace].count("actor") == 1
    assert not list(Path("/tmp").glob(f"{tmp_path.name}*"))  # nothing of ours left behind
    scenario = Scenario.from_dict({
        "name": "rec", "trace": {"path": str(out)},
        "pools": [{"name": "cpu", "cpu": "8", "memory": "16Gi", "max_nodes": 1, "initial_nodes": 1}],
        "groups": [{"name": "workers", "cpu": "2", "memory": "2Gi", "min_replicas": 1, "max_replicas": 3,
                    "max_pod": {"cpu": "6", "memory": "8Gi"}}],
        "seeds": [0], "horizon_s": 600.0,
    })
    result = run(scenario, "rva", 0)
    assert result.finished and result.completed == len(trace)
