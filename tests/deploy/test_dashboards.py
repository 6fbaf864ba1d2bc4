"""Grafana dashboards: generated without drift, lossless through grafana-foundation-sdk, well-formed,
and every query runs against a real Prometheus (the checker itself is tested here too)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grafana_foundation_sdk", reason="pip install 'grafana-foundation-sdk==1769699379!11.6.0'")

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from prometheus_client import start_http_server

from autoscaler import dashboards
from autoscaler.metrics import Metrics
from autoscaler.testing import prometheus as promtest
from autoscaler.testing.prometheus import (
    ScrapeTarget,
    check_dashboard_queries,
    dashboard_queries,
    load_dashboards,
    metric_names,
    start_prometheus,
)
from tests.deploy.test_alerts import daemon_series_names

REPO = Path(__file__).resolve().parents[2]
AGENT_SOURCES = REPO / "autoscaler" / "agent"


def test_committed_dashboards_match_the_generator() -> None:
    assert dashboards.drift() == [], "run: python -m autoscaler.dashboards"


def test_drift_is_detected(tmp_path: Path) -> None:
    dashboards.write_all(tmp_path)
    assert dashboards.drift(tmp_path) == []
    path = tmp_path / "rva-fleet.json"
    path.write_text(path.read_text().replace("Fleet overview", "Fleet overvieww"))
    assert dashboards.drift(tmp_path) == ["rva-fleet.json"]


@pytest.mark.parametrize("name", sorted(dashboards.render_all()))
def test_round_trip_through_the_sdk_is_lossless(name: str) -> None:
    text = (dashboards.GRAFANA_DIR / name).read_text(encoding="utf-8")
    back = json.dumps(dm.Dashboard.from_json(json.loads(text)), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
    assert back == text


def test_round_trip_catches_a_misspelled_key() -> None:
    d = json.loads((dashboards.GRAFANA_DIR / "rva-fleet.json").read_text())
    d["panels"][1]["titel"] = d["panels"][1].pop("title")
    back = json.loads(json.dumps(dm.Dashboard.from_json(d), cls=JSONEncoder))
    assert back != d


@pytest.mark.parametrize("dashboard", load_dashboards(), ids=lambda d: d["uid"])
def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 41
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and 0 not in ids, "unique, non-zero panel ids"
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names[:4] == ["datasource", "namespace", "cluster", "group"]
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and all(refs) and len(refs) == len(set(refs)), panel["title"]
        assert panel.get("description"), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == panel["datasource"]
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
    assert len(dashboard_queries(dashboard)) == sum(len(p.get("targets", [])) for p in dashboard["panels"]) + len(
        [v for v in dashboard["templating"]["list"] if v["type"] == "query"])


def agent_series_names() -> set[str]:
    """``rva_agent_*`` series names, from the agent's source (counters also with ``_total``)."""
    names: set[str] = set()
    for path in AGENT_SOURCES.rglob("*.py"):
        for n in re.findall(r"[\"'](rva_agent_[a-z0-9_]+)[\"']", path.read_text(encoding="utf-8")):
            names |= {n, n + "_total"}
    return names


def test_queries_use_only_exported_metrics() -> None:
    known = daemon_series_names() | agent_series_names()
    used = {m for d in load_dashboards() for q in dashboard_queries(d) for m in re.findall(r"\b(rva_[a-z0-9_]+)",
                                                                                          q.promql)}
    assert used - known == set()


def test_every_daemon_metric_is_on_a_dashboard() -> None:
    exported = {re.sub(r"_(bucket|sum|count)$", "", n) for n in daemon_series_names()}
    assert exported - metric_names(load_dashboards()) == set()


def test_substitution_of_grafana_variables() -> None:
    expr = 'sum(rate(x{cluster=~"$cluster", g=~"${group}"}[$__rate_interval])) / $__interval_ms'
    assert promtest.substitute(expr, ["cluster", "group"]) == 'sum(rate(x{cluster=~".*", g=~".*"}[1m])) / 15000'
    assert promtest.variable_promql("label_values(rva_group_pods{cluster=~\"$cluster\"}, group)") == \
        'group by (group) (rva_group_pods{cluster=~"$cluster"})'
    assert promtest.variable_promql("label_values(pod)") == 'group by (pod) ({pod!=""})'
    assert promtest.variable_promql("query_result(up == 1)") == "up == 1"
    assert promtest.variable_promql("metrics(rva_.*)") is None


# ---------------------------------------------------------------------------------------------------
# Against a real Prometheus: one instance for the module (first scrape takes 5-6 s)
# ---------------------------------------------------------------------------------------------------

CLUSTER = "ray/demo"


def populated_metrics() -> Metrics:
    """Every daemon metric with one plausible series (what a daemon run after some activity exports)."""
    m, c = Metrics(), CLUSTER
    m.actions.labels(c, "GrowPod", "DemandFitsInPlace").inc()
    m.actions_failed.labels(c, "resize", "409").inc()
    m.resize_outcomes.labels(c, "completed").inc()
    m.resize_duration.labels(c, "up").observe(2.0)
    m.demand_to_action.labels(c, "any").observe(0.4)
    m.in_flight.labels(c).set(1)
    m.pending_tasks.labels(c).set(4)
    m.pending_cpu.labels(c).set(8)
    m.pending_memory.labels(c).set(8 << 30)
    m.unserved.labels(c, "StockedOut").set(2)
    m.scale_outs.labels(c, "l4-ondemand", "true").inc(2)
    m.removals.labels(c, "cpu", "IdleTimeout").inc()
    m.stockouts.labels(c, "l4-spot").inc()
    m.stocked_out.labels(c, "l4-spot").set(1)
    m.pod_cpu.labels(c, "cpu", "demo-cpu-worker-abcde").set(2)
    m.pod_memory.labels(c, "cpu", "demo-cpu-worker-abcde").set(8 << 30)
    m.pod_pressure.labels(c, "cpu", "demo-cpu-worker-abcde").set(0.12)
    m.group_pods.labels(c, "cpu").set(1)
    for phase in ("observe", "plan", "actuate", "total"):
        m.loop_phase.labels(phase).observe(0.004)
    m.observe_api("patch", "pods/resize", "200", 0.02)
    m.gcs_latency.labels(c, "GetClusterResourceState").observe(0.001)
    m.gcs_errors.labels(c, "GetClusterResourceState").inc()
    m.gcs_up.labels(c).set(1)
    m.managed.set(1)
    m.refused.labels("InTreeAutoscaler").set(0)
    m.leader.set(1)
    m.leader_transitions.labels("acquired").inc()
    m.policy_errors.labels("ray/rva-policy").inc()
    m.policy_valid.labels("ray/rva-policy").set(1)
    m.loops.labels("gcs").inc()
    return m


@dataclass
class Stack:
    prom: promtest.PrometheusServer
    daemon_url: str
    agent_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Prometheus scraping a daemon-like exporter (every rva metric) and a real `rva agent`."""
    try:
        promtest.prometheus_path()
    except promtest.PrometheusMissing as e:
        pytest.skip(str(e))
    metrics = populated_metrics()
    daemon_port = promtest.free_port()
    server, thread = start_http_server(daemon_port, addr="127.0.0.1", registry=metrics.registry)
    agent_port = promtest.free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "autoscaler.cli", "agent", "--host", "127.0.0.1", f"--port={agent_port}",
         "--interval=0.5", "--psi-trigger=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "RVA_AGENT_MODE": "in-container"},
    )
    try:
        _wait_http(f"http://127.0.0.1:{agent_port}/metrics", agent)
        targets = [
            ScrapeTarget(f"127.0.0.1:{daemon_port}", job="rva"),
            # The PodMonitor's relabelings add cluster/group (and the operator adds pod) in a real cluster.
            ScrapeTarget(f"127.0.0.1:{agent_port}", job="rva-agent",
                         labels={"cluster": CLUSTER, "group": "cpu", "pod": "demo-cpu-worker-abcde"}),
        ]
        with start_prometheus(targets, tmp_path_factory.mktemp("prom")) as prom:
            prom.wait_for("rva_leader", timeout=30)
            prom.wait_for("rva_agent_info", timeout=30)
            metrics.loops.labels("gcs").inc()
            prom.wait_for("rate(rva_loops_total[1m]) > 0", timeout=30)  # two samples: rate() has data
            prom.wait_for("rate(rva_agent_samples_total[1m]) > 0", timeout=30)
            yield Stack(prom, f"http://127.0.0.1:{daemon_port}/metrics", f"http://127.0.0.1:{agent_port}/metrics")
    finally:
        server.shutdown()
        thread.join(timeout=5)
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"rva agent exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


@pytest.mark.slow
def test_checker_reports_parse_errors_and_empty_results(stack: Stack) -> None:
    probe = {
        "title": "probe",
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "query": "prometheus"},
            {"type": "query", "name": "cluster", "query": "label_values(rva_group_pods, cluster)"},
            {"type": "query", "name": "typo_var", "query": {"query": "label_values(rva_group_podz, cluster)"}},
        ]},
        "panels": [
            {"id": 1, "title": "good", "targets": [
                {"refId": "A", "expr": ('sum by (cluster) '
                                        '(rate(rva_loops_total{job=~"$cluster|.*"}[$__rate_interval]))')},
                {"refId": "B", "expr": 'max by (cluster) (rva_group_pods{cluster=~"$cluster"})'}]},
            {"id": 2, "title": "typo", "targets": [{"refId": "A", "expr": "rva_group_podz"}]},
            {"id": 3, "title": "broken", "targets": [{"refId": "A", "expr": "sum(rate(rva_loops_total[1m])"}]},
            {"id": 4, "type": "row", "collapsed": True, "panels": [
                {"id": 5, "title": "inside a collapsed row", "targets": [{"refId": "A", "expr": "rva_leaderr"}]}]},
        ],
    }
    problems = check_dashboard_queries([probe], stack.prom.url)
    assert len(problems) == 4, problems
    by_panel = {p.split(": ", 2)[1]: p for p in problems}
    assert "no data" in by_panel["panel 2 'typo' ref A"]
    assert "parse error" in by_panel["panel 3 'broken' ref A"]
    assert "no data" in by_panel["panel 5 'inside a collapsed row' ref A"]
    assert "no data" in by_panel["variable typo_var"]


@pytest.mark.slow
def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """With every daemon metric present and a real agent scraped, each panel and variable has data."""
    assert check_dashboard_queries(load_dashboards(), stack.prom.url) == []


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        text: str = r.read().decode()
        return text


@pytest.mark.slow
@pytest.mark.skipif(promtest.promtool_path() is None, reason="promtool not installed")
def test_promtool_check_metrics_on_daemon_and_agent_output(stack: Stack) -> None:
    assert promtest.promtool_check_metrics(_fetch(stack.daemon_url)) == []
    assert promtest.promtool_check_metrics(_fetch(stack.agent_url)) == []
    bad = "# HELP rva_things Things.\n# TYPE rva_things counter\nrva_things 1\n"
    assert any("_total" in line for line in promtest.promtool_check_metrics(bad))
