"""``rva demo --json`` end to end: every phase observed from what the daemon did, nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(n.encode() in blob for n in needles):
            found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:200]!r}")
    return found


def test_demo_observes_every_phase_and_cleans_up(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "demo", "--json", "--out", str(tmp_path),
         "--record", str(tmp_path / "recording.json")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stderr[-3000:]}\n{proc.stdout[-3000:]}"
    summary = json.loads(proc.stdout)  # --json: stdout is the summary and nothing else
    assert summary["ok"] is True
    assert summary["observed"] == {"in_place_grow_ran_pending_task": True, "pressure_memory_grow": True,
                                   "spot_to_on_demand_fallback": True, "shrink": True, "removal": True}
    grow, memory, fallback, idle = summary["phases"]
    # 1: the task ran on the very pod that was grown, after the grow, with more CPUs than it had
    assert grow["facts"]["same_pod"] and grow["facts"]["task"]["pod"] == grow["facts"]["pod"]
    assert float(grow["facts"]["cpu_before"]) < grow["facts"]["task"]["cpus"] <= float(grow["facts"]["cpu_after"])
    assert grow["facts"]["raylet_cpu_after_grow"] >= grow["facts"]["task"]["cpus"]  # Ray was told
    assert "[DemandFitsInPlace]" in grow["facts"]["reason"]
    # 2: pressure from the agent → memory grown (and applied by the kubelet)
    assert "[MemoryPressure]" in memory["facts"]["reason"]
    assert memory["facts"]["memory_after"] != memory["facts"]["memory_before"]
    # 3: spot tried first, stuck pod removed, the task ran in the on-demand group
    assert fallback["facts"]["primary_group"] == "l4-spot" and fallback["facts"]["fallback_group"] == "l4-ondemand"
    assert fallback["facts"]["task"]["group"] == "l4-ondemand"
    # 4: shrink applied, a drained removal whose pod went away
    assert any(s["applied"] for s in idle["facts"]["shrinks"])
    assert any(r["gone_at_s"] is not None for r in idle["facts"]["removals"])
    # the artefacts exist
    assert Path(summary["timeline_png"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "recording.json").read_text())["phases"]
    # nothing the demo started is still running; its scratch directories are gone
    needles = [v for v in summary["scratch"].values() if v]
    assert len(needles) == 2
    assert _processes_mentioning(*needles) == []
    assert not any(Path(v).exists() for v in needles)
    assert took < 180, f"the demo took {took:.0f}s"
