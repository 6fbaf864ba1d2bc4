"""``rva simulate`` engine: each policy on a small scenario, determinism, rva through the real executor,
Ray's decisions applied, the adapters, the CLI and the efficiency bench on a reduced scenario."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler import annotations as ann
from autoscaler.bench.efficiency import goals, ratios, run_bench
from autoscaler.cli import main as cli_main
from autoscaler.model import CPU, Resources
from autoscaler.replay.adapters import StoreApi, ray_state
from autoscaler.replay.runner import POLICIES, run, summarize
from autoscaler.replay.scenario import BUILTIN, Scenario, load_scenario
from autoscaler.sim.store import ObjectStore

DATA = Path(__file__).resolve().parents[2] / "data" / "traces"


def small(trace: dict | None = None, **over: object) -> Scenario:
    doc = {
        "name": "small",
        "trace": trace or {"path": str(DATA / "tiny-recorded.jsonl"), "width": 4, "time_scale": 10.0,
                           "jitter": 0.1},
        "pools": [{"name": "cpu", "cpu": "8", "memory": "16Gi", "max_nodes": 2, "initial_nodes": 1,
                   "provisioning_delay": 30.0}],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 5.0},
        "groups": [{"name": "workers", "cpu": "2", "memory": "2Gi", "min_replicas": 1, "max_replicas": 6,
                    "max_pod": {"cpu": "6", "memory": "8Gi"}}],
        "rva_policy": BUILTIN["tpch-gke"]["rva_policy"],
        "seeds": [0], "horizon_s": 1800.0,
    }
    doc.update(over)
    return Scenario.from_dict(doc)


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policy_replays_the_recorded_trace_with_sane_metrics(policy: str) -> None:
    r = run(small(), policy, 0)
    assert r.finished and r.completed == r.tasks == 32
    assert r.makespan_s > 0
    assert 0 < r.cpu_efficiency <= 1 and 0 < r.memory_efficiency <= 1
    assert 0 < r.used_core_s <= r.allocated_core_s
    assert r.pods_created >= 1 and r.ttc_p95_s >= r.ttc_p50_s >= 0
    assert r.driver["loops"] > 0


def test_a_seed_gives_the_same_result_and_seeds_differ() -> None:
    a, b, c = run(small(), "rva", 1), run(small(), "rva", 1), run(small(), "rva", 2)
    keys = ("makespan_s", "cpu_efficiency", "memory_efficiency", "pods_created", "ttc_p95_s", "allocated_core_s")
    assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys]
    assert a.actions == b.actions
    assert [getattr(a, k) for k in keys] != [getattr(c, k) for k in keys]


def test_rva_acts_through_the_real_executor() -> None:
    r = run(small(), "rva", 0)
    kinds = {a[1] for a in r.actions}
    assert "GrowPod" in kinds  # a pending wide task was served in place
    grow = next(a for a in r.actions if a[1] == "GrowPod")
    assert "fit sizing" in grow[2] or "grow" in grow[2]
    assert r.driver["grows"] >= 1 and r.driver["failures"] == 0


def test_rva_resize_requests_land_in_the_store() -> None:
    """Drive the loop by hand and look at the pods: the resize PATCH and the in-flight record are there."""
    from autoscaler.replay import drivers
    from autoscaler.replay.meter import MeteredRay
    from autoscaler.sim.clock import VirtualClock
    from autoscaler.sim.cluster import SimCluster
    from autoscaler.sim.traces import TaskSpec

    async def go() -> tuple[list[tuple[float, str, str, str]], dict, list[dict]]:
        sc = small()
        clock = VirtualClock()
        ray = MeteredRay(clock)
        cluster = SimCluster(clock, pools=sc.node_pools(), kubelet=sc.kubelet_config(), ray=ray,
                             record_events=False)
        await cluster.start()
        cluster.create_raycluster(sc.raycluster())
        await cluster.wait_for(lambda: any(p["status"].get("phase") == "Running" for p in cluster.pods("sim")
                                           if "worker" in p["metadata"]["name"]), timeout=300)
        driver = drivers.RvaDriver(clock, cluster.store, ray, policy=sc.policy(), cluster="sim")
        ray.submit(TaskSpec(0, {"CPU": 4.0}, 30.0))
        await clock.advance(1)
        await driver.run_once()
        worker = next(p for p in cluster.pods("sim") if "worker" in p["metadata"]["name"])
        in_flight = (worker["metadata"].get("annotations") or {}).get(ann.IN_FLIGHT)
        await clock.advance(3)
        await driver.run_once()  # completes the resize: raylet grown, record dropped
        await clock.advance(1)
        after = [p for p in cluster.pods("sim") if "worker" in p["metadata"]["name"]]
        await cluster.stop()
        return driver.log.entries, {"in_flight": in_flight, "started": ray.stats.started}, after

    entries, info, pods = asyncio.run(go())
    kinds = [e[1] for e in entries]
    assert kinds[:2] == ["resize", "annotate"] and "raylet-resize" in kinds
    assert info["in_flight"] and json.loads(info["in_flight"])["targetRequests"]["cpu"] >= 4000
    assert info["started"] == 1  # the 4-CPU task ran on the grown pod
    grown = Resources.from_k8s(pods[0]["spec"]["containers"][0]["resources"]["requests"])
    assert grown.get(CPU) >= 4000


def test_ray_ippr_grows_to_the_group_maximum_and_horizontal_only_adds_pods() -> None:
    ippr = run(small(), "ray-ippr", 0)
    hor = run(small(), "horizontal", 0)
    assert ippr.driver["grows"] >= 1 and ippr.peak_pods <= hor.peak_pods
    assert "6" in next(a[2] for a in ippr.actions if a[1] == "GrowPod")  # straight to max-cpu 6
    assert hor.driver["grows"] == 0 and hor.driver["scale_outs"] >= 1


def test_ray_state_converter() -> None:
    state = {
        "node_states": [{"node_id": "ab" * 28, "instance_id": "p1", "ray_node_type_name": "workers",
                         "status": "IDLE", "idle_duration_ms": 5000, "total_resources": {"CPU": 2.0},
                         "available_resources": {"CPU": 2.0}, "labels": {"ray.io/node-group": "workers"}}],
        "pending_resource_requests": [
            {"resources_bundle": {"CPU": 1.0}, "label_selectors": [{}], "count": 3},
            {"resources_bundle": {"CPU": 1.0}, "label_selectors": [{"m": "spot"}, {"m": "in(a,b)"}], "count": 2},
        ],
    }
    rs = ray_state(state)
    assert rs.tasks_reported == 5 and len(rs.demands) == 2
    assert rs.demands[0].selectors == () and len(rs.demands[1].selectors) == 2
    assert rs.nodes[0].idle_duration_s == 5.0 and rs.nodes[0].total.get(CPU) == 2000


def test_store_api_errors_become_api_exceptions() -> None:
    store = ObjectStore()
    api = StoreApi(store, lambda: 0.0)
    with pytest.raises(ApiException) as err:
        asyncio.run(api.patch_namespaced_pod("nope", "default", {"metadata": {}}))
    assert err.value.status == 404 and json.loads(err.value.body)["reason"] == "NotFound"
    assert api.log.entries[-1][1] == "annotate-failed"


def test_scenarios_load_and_validate(tmp_path: Path) -> None:
    for name in BUILTIN:
        sc = load_scenario(name)
        assert sc.policy() is not None and sc.raycluster()["spec"]["workerGroupSpecs"]
        assert len(sc.load_trace(0)) > 0
    path = tmp_path / "s.json"
    path.write_text(json.dumps(small().to_dict()))
    assert load_scenario(str(path)).name == "small"
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        Scenario.from_dict({"name": "x", "trace": {}, "colour": 1})
    with pytest.raises(ValueError, match="no built-in scenario"):
        load_scenario("no-such-scenario")


def test_simulate_cli_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(small().to_dict()))
    png = tmp_path / "out.png"
    assert cli_main(["simulate", "--scenario", str(path), "--policy", "rva,horizontal", "--runs", "1", "--json",
                     "--png", str(png), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["policy"] for r in out["runs"]} == {"rva", "horizontal"}
    assert set(out["summary"]) == {"rva", "horizontal"}
    assert png.exists() and png.stat().st_size > 10_000
    assert cli_main(["simulate", "--scenario", str(path), "--policy", "ray-ippr", "--runs", "1", "--png", "none",
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "CPU eff" in text and "ray-ippr" in text


def test_efficiency_bench_on_a_reduced_scenario() -> None:
    results, default_runs = run_bench(small(), [0], with_default=True, progress=False)
    summary = summarize(results)
    assert set(summary) == set(POLICIES)
    r = ratios(summary)
    assert set(r) == {"rva/horizontal", "rva/ray-ippr"}
    assert r["rva/horizontal"]["cpu_efficiency"] == pytest.approx(
        summary["rva"]["cpu_efficiency"] / summary["horizontal"]["cpu_efficiency"])
    g = goals(summary)
    assert isinstance(g["cpu_vs_horizontal_ge_1.3"], bool) and g["all_runs_finished"]
    assert default_runs and default_runs[0].policy == "rva-default"


def test_simulate_names_the_bad_line_of_a_malformed_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"submit_at": 0, "duration": 1, "resources": {"CPU": 1}}\n{"submit_at": 1, "resources": {}}\n')
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps(small(trace={"path": "bad.jsonl"}).to_dict()))
    assert cli_main(["simulate", "--scenario", str(scenario), "--png", "none", "--quiet"]) == 2
    assert f"{bad}:2: field 'duration': required field is missing" in capsys.readouterr().err
