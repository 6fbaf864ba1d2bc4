"""``rva bench planner`` plumbing: rows, goals and output, with a stand-in planner and no Ray runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from autoscaler.actions import Plan, Reason, ScaleOut
from autoscaler.bench import planner_bench
from autoscaler.model import Snapshot
from autoscaler.policy import Policy


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    planner_bench.configure(parser)
    return parser.parse_args(list(argv))


def one_pod_plan(snapshot: Snapshot, policy: Policy, now: float) -> Plan:
    g = snapshot.groups[0]
    return Plan(actions=(ScaleOut(g.name, 1, g.replicas + 1, Reason.DEMAND_NEEDS_NEW_PODS, "test"),))


def test_json_rows_have_the_issue_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code = planner_bench.main(args("--json", "--no-ray", "--sizes", "20x40", "--repeats", "2"), plan=one_pod_plan)
    assert code == 0
    [row] = json.loads(capsys.readouterr().out)
    for key in ("pods", "shapes", "rva_ms_median", "ray_v2_ms_median", "ray_v2_timed_out", "ratio"):
        assert key in row
    assert (row["pods"], row["shapes"], row["rva_runs"]) == (20, 40, 2)
    assert row["rva_new_pods"] == 1 and row["rva_served"] == row["demand_units"]
    assert row["rva_deterministic"] is True


def test_judge_marks_goals_and_lower_bounds() -> None:
    rows: list[dict[str, Any]] = [
        {"pods": 100, "rva_ms_median": 4.0, "ray_v2_ratio": 150.0, "rva_new_pods": 3, "ray_v2_new_pods": 5},
        {"pods": 1_000, "rva_ms_median": 80.0, "rva_new_pods": 9, "ray_v2_new_pods": None},
        {"pods": 10_000, "rva_ms_median": 500.0, "rva_new_pods": 9},
    ]
    planner_bench.judge(rows)
    assert rows[0]["goals"] == {
        "median_le_5ms": True,
        "ratio_ge_100x": True,
        "new_pods_le_ray_v2": True,
        "new_pods_le_ray_ippr": None,
    }
    assert rows[1]["goals"]["median_le_50ms"] is False
    assert rows[1]["goals"]["near_linear"] is False  # 20x for 10x the pods
    assert rows[2]["goals"]["near_linear"] is True
    assert rows[1]["goals"]["new_pods_le_ray_v2"] is None  # Ray timed out: unknown
    assert "ray_v2_vs_issue_machine" not in rows[0]  # no Ray time: no context


def test_ray_time_here_against_the_issue_scales_rvas_median_as_context_only() -> None:
    rows: list[dict[str, Any]] = [{"pods": 100, "shapes": 200, "demand_units": 10, "rva_ms_median": 16.0,
                                   "ray_v2_ms_median": 1920.0, "ray_v2_ratio": 120.0, "rva_new_pods": 1,
                                   "rva_overcommitting_grows": 0, "rva_stocked_out_launches": 0}]
    planner_bench.judge(rows)
    assert rows[0]["ray_v2_vs_issue_machine"] == 3.0  # 1,920 ms here, 640 ms in the issue
    assert rows[0]["rva_ms_at_issue_machine_speed"] == pytest.approx(16.0 / 3.0, abs=0.01)
    assert rows[0]["goals"]["median_le_5ms"] is False  # judged as measured, not scaled
    assert "1,920.0 ms here, 640 ms where issue 2 measured it (×3)" in planner_bench.table(rows)


def test_several_seeds_give_a_row_each_and_a_count_of_seeds_that_meet_the_new_pods_goal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = planner_bench.main(args("--no-ray", "--sizes", "20x40", "40x40", "--repeats", "1", "--seeds", "3", "4"),
                              plan=one_pod_plan)
    assert code == 0
    out = capsys.readouterr().out
    assert "goals at 20 pods, seed 3:" in out and "goals at 40 pods, seed 4:" in out
    rows: list[dict[str, Any]] = [
        {"pods": 100, "seed": s, "rva_ms_median": 9.0, "rva_new_pods": rva, "ray_v2_new_pods": 30,
         "ray_ippr_new_pods": ippr, "rva_overcommitting_grows": 0, "rva_stocked_out_launches": 0, "shapes": 200,
         "demand_units": 10}
        for s, rva, ippr in ((0, 5, 6), (1, 7, 6), (2, 6, 6))
    ]
    planner_bench.judge(rows)
    assert planner_bench.seed_summary(rows) == [
        "new pods at 100 pods: rva ≤ Ray at 3 of 3 seeds; ≤ Ray+IPPR at 2 of 3 seeds (not at 1)"]
    # growth with size is judged within a seed, not across seeds
    grows = [{"pods": 100, "seed": 0, "rva_ms_median": 10.0, "rva_new_pods": 1},
             {"pods": 100, "seed": 1, "rva_ms_median": 10.0, "rva_new_pods": 1},
             {"pods": 1_000, "seed": 0, "rva_ms_median": 50.0, "rva_new_pods": 1},
             {"pods": 1_000, "seed": 1, "rva_ms_median": 500.0, "rva_new_pods": 1}]
    planner_bench.judge(grows)
    assert grows[2]["rva_growth_vs_previous"] == 5.0 and grows[2]["goals"]["near_linear"] is True
    assert grows[3]["rva_growth_vs_previous"] == 50.0 and grows[3]["goals"]["near_linear"] is False


def test_sizes_are_parsed_or_rejected() -> None:
    assert planner_bench.parse_sizes(["100x200", "1000X2000"]) == [(100, 200), (1000, 2000)]
    with pytest.raises(SystemExit):
        planner_bench.parse_sizes(["100"])
