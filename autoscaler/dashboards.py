"""Grafana dashboards for rva, generated with ``grafana-foundation-sdk`` (Grafana 11.6 schema).

``python -m autoscaler.dashboards`` writes ``grafana/*.json``; ``--check`` exits 1 when the committed
files differ from what this module generates (tests/deploy/test_dashboards.py runs the same check).

Every query uses only metrics from :mod:`autoscaler.metrics` (``rva_*``) and the agent's
``rva_agent_*``. Gauges are exported by both daemon replicas, so per-cluster gauges are deduplicated
with ``max by (...)``; counters only move on the leader for actions, so ``sum`` is right for them.
Variables: ``datasource``, ``namespace`` (of the RayClusters, from the ``cluster`` label
``<namespace>/<name>``), ``cluster``, ``group`` (and ``pod`` on the agent view).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

GRAFANA_DIR = Path(__file__).resolve().parent.parent / "grafana"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["rva", "ray", "autoscaling"]

# Label filters used in queries. `$namespace` narrows `$cluster` (values "<namespace>/<name>").
C = 'cluster=~"$cluster"'
CG = 'cluster=~"$cluster", group=~"$group"'
RI = "$__rate_interval"


@dataclass(frozen=True)
class Q:
    """One query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    heatmap: bool = False


@dataclass(frozen=True)
class P:
    """One panel: kind is timeseries, stat, heatmap, bucket-heatmap or table."""

    title: str
    description: str
    queries: tuple[Q, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    stack: bool = False
    decimals: int | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[P, ...]


@dataclass(frozen=True)
class Spec:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[str, ...] = ("namespace", "cluster", "group")
    extra_tags: tuple[str, ...] = field(default_factory=tuple)


def p(title: str, description: str, *queries: Q, **kw: Any) -> P:
    return P(title, description, tuple(queries), **kw)


def hq(quantile: float, histogram: str, by: str = "", selector: str = "") -> str:
    """``histogram_quantile`` of ``histogram``'s buckets, rated over ``$__rate_interval``."""
    labels = ", ".join(["le", *([by] if by else [])])
    matchers = f"{{{selector}}}" if selector else ""
    return f"histogram_quantile({quantile}, sum by ({labels}) (rate({histogram}_bucket{matchers}[{RI}])))"


def psi(resource: str, kind: str) -> str:
    """The agent's PSI avg10 ratio of its own cgroup, per pod."""
    return (f'max by (cluster, pod) (rva_agent_pressure_ratio{{{A}, resource="{resource}", kind="{kind}", '
            'window="10s"})')


# ---------------------------------------------------------------------------------------------------
# Dashboard contents
# ---------------------------------------------------------------------------------------------------

FLEET = Spec(
    uid="rva-fleet",
    title="rva / Fleet overview",
    description="Every RayCluster rva manages: demand, actions, outcomes and the daemon's health.",
    rows=(
        Row("Fleet", (
            p("Managed RayClusters", "RayClusters rva manages now.",
              Q("max(rva_managed_clusters)", instant=True), kind="stat", width=4, height=4),
            p("Leader replicas", "Replicas holding the leader lease: 1 is healthy, 0 means nothing acts.",
              Q("sum(rva_leader)", instant=True), kind="stat", width=4, height=4),
            p("Refused RayClusters", "Opted-in RayClusters rva leaves alone (in-tree autoscaler or ray.io/ippr).",
              Q("sum(max by (reason) (rva_refused_clusters))", instant=True), kind="stat", width=4, height=4),
            p("Pending Ray demand", "Pending tasks, actors and bundles reported by the GCS, all selected clusters.",
              Q(f"sum(max by (cluster) (rva_pending_demand_tasks{{{C}}}))", instant=True),
              kind="stat", width=4, height=4),
            p("Resizes in flight", "In-place resizes started and not finished.",
              Q(f"sum(max by (cluster) (rva_resizes_in_flight{{{C}}}))", instant=True),
              kind="stat", width=4, height=4),
            p("Groups stocked out", "Worker groups in stockout backoff now.",
              Q(f"sum(max by (cluster, group) (rva_group_stocked_out{{{CG}}}))", instant=True),
              kind="stat", width=4, height=4),
        )),
        Row("Activity", (
            p("Actions by kind", "Resizes, scale-outs and removals rva carried out.",
              Q(f"sum by (kind) (rate(rva_actions_total{{{C}}}[{RI}]))", "{{kind}}"), unit="ops", stack=True),
            p("Resize outcomes", "Finished in-place resizes by outcome.",
              Q(f"sum by (outcome) (increase(rva_resize_outcomes_total{{{C}}}[{RI}]))", "{{outcome}}"),
              stack=True),
            p("Pending demand by cluster", "Pending Ray tasks/actors/bundles per RayCluster.",
              Q(f"max by (cluster) (rva_pending_demand_tasks{{{C}}})", "{{cluster}}")),
            p("Unserved demand by reason", "Pending demand rva could not serve in its last loop, by reason.",
              Q(f"sum by (reason) (max by (cluster, reason) (rva_unserved_demand_tasks{{{C}}}))", "{{reason}}"),
              stack=True),
            p("Scale-out pods", "Pods requested by scale-out; fallback=true when not the primary group.",
              Q(f"sum by (cluster, group, fallback) (increase(rva_scale_out_pods_total{{{CG}}}[{RI}]))",
                "{{cluster}} {{group}} fallback={{fallback}}"), stack=True),
            p("Stockouts", "Times a group was marked stocked out (new pods stuck Unschedulable).",
              Q(f"sum by (cluster, group) (increase(rva_stockouts_total{{{CG}}}[{RI}]))", "{{cluster}} {{group}}"),
              stack=True),
        )),
        Row("Daemon health", (
            p("GCS reachable", "1 when the last GCS read of the cluster succeeded (worst replica).",
              Q(f"min by (cluster) (rva_gcs_reachable{{{C}}})", "{{cluster}}"), decimals=0),
            p("Policy ConfigMaps valid", "1 when the ConfigMap's content is valid; 0 keeps the last good policy.",
              Q("min by (configmap) (rva_policy_valid)", "{{configmap}}"), decimals=0),
            p("Cluster loop duration", "Whole plan/act loop, p50 and p99 over all clusters.",
              Q(hq(0.5, "rva_loop_phase_duration_seconds", "", 'phase="total"'),
                "p50"),
              Q(hq(0.99, "rva_loop_phase_duration_seconds", "", 'phase="total"'),
                "p99"), unit="s"),
            p("Kubernetes API requests", "rva's API requests by HTTP code.",
              Q(f"sum by (code) (rate(rva_kube_api_requests_total[{RI}]))", "{{code}}"), unit="reqps", stack=True),
            p("Leader by replica", "Which replica holds the lease.",
              Q("max by (instance) (rva_leader)", "{{instance}}"), decimals=0),
            p("Loops by trigger", "Why cluster loops ran: watch events, GCS changes, pressure, resync.",
              Q(f"sum by (trigger) (rate(rva_loops_total[{RI}]))", "{{trigger}}"), unit="ops", stack=True),
            p("Leader transitions", "Times a replica gained or lost the lease (frequent: API trouble or restarts).",
              Q(f"sum by (event) (increase(rva_leader_transitions_total[{RI}]))", "{{event}}"), stack=True,
              width=12),
            p("Rejected policy edits", "Policy ConfigMap edits rva rejected (the last good policy was kept).",
              Q(f"sum by (configmap) (increase(rva_policy_reload_errors_total[{RI}]))", "{{configmap}}"),
              stack=True, width=12),
        )),
    ),
)

CLUSTER = Spec(
    uid="rva-cluster",
    title="rva / RayCluster and worker groups",
    description="One RayCluster (or a few) by worker group: demand, pod sizes, resizes, scale-out, pressure, health.",
    rows=(
        Row("Pending demand", (
            p("Pending tasks", "Pending Ray tasks, actors and placement-group bundles from the GCS.",
              Q(f"max by (cluster) (rva_pending_demand_tasks{{{C}}})", "{{cluster}}")),
            p("Pending CPU", "CPU cores of pending Ray demand.",
              Q(f"max by (cluster) (rva_pending_demand_cpu_cores{{{C}}})", "{{cluster}}"), unit="short"),
            p("Pending memory", "Memory of pending Ray demand.",
              Q(f"max by (cluster) (rva_pending_demand_memory_bytes{{{C}}})", "{{cluster}}"), unit="bytes"),
            p("Unserved demand by reason", "Demand rva could not serve in its last loop (AtMaxReplicas, StockedOut, "
              "WaitingForCapacity, InfeasibleDemand, ...).",
              Q(f"max by (cluster, reason) (rva_unserved_demand_tasks{{{C}}})", "{{cluster}} {{reason}}"),
              width=12),
            p("Demand to first action", "From pending demand first seen in the GCS to rva's first write for it.",
              Q(hq(0.5, "rva_demand_to_action_seconds", "cluster", C),
                "p50 {{cluster}}"),
              Q(hq(0.95, "rva_demand_to_action_seconds", "cluster", C),
                "p95 {{cluster}}"), unit="s", width=12),
        )),
        Row("Pod sizes", (
            p("CPU request per pod", "CPU request of each managed worker pod (what rva resized it to).",
              Q(f"max by (cluster, group, pod) (rva_pod_cpu_request_cores{{{CG}}})", "{{group}} {{pod}}")),
            p("Memory request per pod", "Memory request of each managed worker pod.",
              Q(f"max by (cluster, group, pod) (rva_pod_memory_request_bytes{{{CG}}})", "{{group}} {{pod}}"),
              unit="bytes"),
            p("Pods per group", "Worker pods per group.",
              Q(f"max by (cluster, group) (rva_group_pods{{{CG}}})", "{{group}}"), stack=True),
            p("Requested CPU by group", "Sum of worker CPU requests per group.",
              Q(f"sum by (group) (max by (cluster, group, pod) (rva_pod_cpu_request_cores{{{CG}}}))", "{{group}}"),
              stack=True, width=12),
            p("Requested memory by group", "Sum of worker memory requests per group.",
              Q(f"sum by (group) (max by (cluster, group, pod) (rva_pod_memory_request_bytes{{{CG}}}))", "{{group}}"),
              unit="bytes", stack=True, width=12),
        )),
        Row("Resizes and outcomes", (
            p("Actions by kind and reason", "Each action rva carried out, with its machine-readable reason.",
              Q(f"sum by (kind, reason) (increase(rva_actions_total{{{C}}}[{RI}]))", "{{kind}} {{reason}}"),
              stack=True),
            p("Resize outcomes", "completed, infeasible, deferred_timeout, in_progress_timeout, error, rejected.",
              Q(f"sum by (outcome) (increase(rva_resize_outcomes_total{{{C}}}[{RI}]))", "{{outcome}}"), stack=True),
            p("Resizes in flight", "Resizes started and not yet reported applied by the kubelet.",
              Q(f"max by (cluster) (rva_resizes_in_flight{{{C}}})", "{{cluster}}")),
            p("Resize latency", "From the pods/resize PATCH to the kubelet reporting it applied.",
              Q(hq(0.5, "rva_resize_duration_seconds", "direction", C),
                "p50 {{direction}}"),
              Q(hq(0.95, "rva_resize_duration_seconds", "direction", C),
                "p95 {{direction}}"), unit="s"),
            p("Resize latency distribution", "Histogram of resize latencies over time.",
              Q(f"sum by (le) (increase(rva_resize_duration_seconds_bucket{{{C}}}[{RI}]))", "{{le}}", heatmap=True),
              kind="bucket-heatmap", unit="s"),
            p("Failed API writes", "rva's writes that the API server refused, by action kind and HTTP code.",
              Q(f"sum by (kind, code) (increase(rva_action_failures_total{{{C}}}[{RI}]))", "{{kind}} {{code}}"),
              stack=True),
        )),
        Row("Scale-out, fallbacks and stockouts", (
            p("Scale-out pods by group", "Pods requested per group; fallback=true when a fallback group served it.",
              Q(f"sum by (group, fallback) (increase(rva_scale_out_pods_total{{{CG}}}[{RI}]))",
                "{{group}} fallback={{fallback}}"), stack=True),
            p("Removed pods", "Worker pods removed, by group and reason.",
              Q(f"sum by (group, reason) (increase(rva_pods_removed_total{{{CG}}}[{RI}]))", "{{group}} {{reason}}"),
              stack=True),
            p("Stockouts", "Times a group was marked stocked out.",
              Q(f"sum by (group) (increase(rva_stockouts_total{{{CG}}}[{RI}]))", "{{group}}"), stack=True),
            p("Stocked-out groups", "1 while a group is in stockout backoff (rva scales its fallbacks instead).",
              Q(f"max by (cluster, group) (rva_group_stocked_out{{{CG}}})", "{{group}}"), width=24, height=6,
              decimals=0),
        )),
        Row("Memory pressure", (
            p("Memory pressure heatmap", "Distribution of the pods' PSI memory 'some' avg10 (0..1) over time.",
              Q(f"max by (pod) (rva_pod_memory_pressure_some_avg10_ratio{{{CG}}})", "{{pod}}"),
              kind="heatmap", unit="percentunit", width=12),
            p("Most pressured pods", "Top 10 pods by PSI memory 'some' avg10.",
              Q(f"topk(10, max by (group, pod) (rva_pod_memory_pressure_some_avg10_ratio{{{CG}}}))",
                "{{group}} {{pod}}"), unit="percentunit", width=12),
        )),
        Row("Kubernetes API and Ray GCS health", (
            p("GCS reachable", "1 when the last read of the cluster's GCS succeeded (worst replica).",
              Q(f"min by (cluster) (rva_gcs_reachable{{{C}}})", "{{cluster}}"), decimals=0),
            p("GCS latency", "Ray GCS request latency, p99 by method.",
              Q(hq(0.99, "rva_gcs_request_duration_seconds", "method", C),
                "p99 {{method}}"), unit="s"),
            p("GCS errors", "Ray GCS request failures by method.",
              Q(f"sum by (cluster, method) (rate(rva_gcs_errors_total{{{C}}}[{RI}]))", "{{cluster}} {{method}}"),
              unit="reqps"),
            p("API requests", "rva's Kubernetes API requests by verb, resource and code.",
              Q(f"sum by (verb, resource, code) (rate(rva_kube_api_requests_total[{RI}]))",
                "{{verb}} {{resource}} {{code}}"), unit="reqps"),
            p("API latency", "Kubernetes API request latency, p99 by verb.",
              Q(hq(0.99, "rva_kube_api_request_duration_seconds", "verb"),
                "p99 {{verb}}"), unit="s"),
            p("Loop phases", "p99 of each phase of a cluster loop (observe, plan, actuate, total).",
              Q(hq(0.99, "rva_loop_phase_duration_seconds", "phase"),
                "p99 {{phase}}"), unit="s"),
        )),
    ),
)

# The agent's own cgroup: "pod" in sidecar mode, "self" in-container.
AP = 'cluster=~"$cluster", group=~"$group", pod=~"$pod"'
A = AP + ', scope=~"pod|self"'

AGENT = Spec(
    uid="rva-agent",
    title="rva / Memory-pressure agent",
    description="What the per-pod rva agents read from cgroups: PSI, memory, OOM kills, CPU.",
    variables=("namespace", "cluster", "group", "pod"),
    rows=(
        Row("Pressure (PSI)", (
            p("Memory pressure 'some' avg10", "Share of time some tasks of the pod stalled on memory.",
              Q(psi("memory", "some"),
                "{{pod}}"), unit="percentunit"),
            p("Memory pressure 'full' avg10", "Share of time all tasks of the pod stalled on memory.",
              Q(psi("memory", "full"),
                "{{pod}}"), unit="percentunit"),
            p("CPU pressure 'some' avg10", "Share of time some tasks of the pod waited for CPU.",
              Q(psi("cpu", "some"),
                "{{pod}}"), unit="percentunit"),
            p("Memory pressure heatmap", "Distribution of the pods' memory PSI 'some' avg10 over time.",
              Q(psi("memory", "some"),
                "{{pod}}"), kind="heatmap", unit="percentunit", width=12),
            p("Memory stall time", "Seconds per second stalled on memory (PSI total).",
              Q(f'sum by (pod, kind) (rate(rva_agent_pressure_stall_seconds_total{{{A}, resource="memory"}}[{RI}]))',
                "{{pod}} {{kind}}"), unit="percentunit", width=12),
        )),
        Row("Memory", (
            p("Working set", "Usage minus inactive file pages (what the kubelet evicts and OOM-kills on).",
              Q(f"max by (cluster, pod) (rva_agent_memory_working_set_bytes{{{A}}})", "{{pod}}"), unit="bytes"),
            p("Usage", "memory.current (cgroup v2) / memory.usage_in_bytes (v1).",
              Q(f"max by (cluster, pod) (rva_agent_memory_usage_bytes{{{A}}})", "{{pod}}"), unit="bytes"),
            p("Peak usage", "memory.peak / max_usage_in_bytes.",
              Q(f"max by (cluster, pod) (rva_agent_memory_peak_bytes{{{A}}})", "{{pod}}"), unit="bytes"),
            p("OOM kills", "OOM kills seen in the pod's cgroup.",
              Q(f"sum by (pod) (increase(rva_agent_oom_kills_total{{{AP}}}[{RI}]))",
                "{{pod}}"), stack=True),
            p("Memory events", "memory.events counters (high, max, oom, oom_kill).",
              Q(f"sum by (event) (increase(rva_agent_memory_events_total{{{A}}}[{RI}]))", "{{event}}"), stack=True),
            p("Major page faults and refaults", "Page-cache thrashing: major faults and refaults per second.",
              Q(f"sum by (pod) (rate(rva_agent_memory_major_page_faults_total{{{A}}}[{RI}]))", "majflt {{pod}}"),
              Q(f"sum by (pod, type) (rate(rva_agent_memory_workingset_refaults_total{{{A}}}[{RI}]))",
                "refault {{type}} {{pod}}"), unit="ops"),
        )),
        Row("CPU", (
            p("CPU usage", "Cores used by the pod.",
              Q(f"sum by (pod) (rate(rva_agent_cpu_usage_seconds_total{{{A}}}[{RI}]))", "{{pod}}"), width=24),
        )),
        Row("Agent health", (
            p("Sample duration", "How long the agent's last sampling round took.",
              Q(f'max by (pod) (rva_agent_sample_duration_seconds{{{AP}}})',
                "{{pod}}"), unit="s"),
            p("Sample age", "Seconds since the agent's last sampling round (stale when growing).",
              Q(f'max by (pod) (time() - rva_agent_last_sample_timestamp_seconds{{{AP}}})',
                "{{pod}}"), unit="s"),
            p("Samples and PSI trigger wake-ups", "Sampling rounds by reason, and PSI trigger wake-ups.",
              Q(f'sum by (reason) (rate(rva_agent_samples_total{{{AP}}}[{RI}]))',
                "{{reason}}"),
              Q(f'sum(rate(rva_agent_psi_trigger_events_total{{{AP}}}[{RI}]))',
                "trigger"), unit="ops"),
            p("Read errors", "Cgroup files that were missing or malformed.",
              Q(f'sum by (pod) (rate(rva_agent_read_errors_total{{{AP}}}[{RI}]))',
                "{{pod}}"), unit="ops"),
            p("Agents", "Agent version, mode, cgroup version and pod QoS class; trigger armed.",
              Q(f'max by (pod, version, mode, cgroup_version, qos) (rva_agent_info{{{AP}}})',
                instant=True),
              Q(f'max by (pod) (rva_agent_psi_trigger_armed{{{AP}}})',
                instant=True),
              kind="table", width=16),
        )),
    ),
)

SPECS: tuple[Spec, ...] = (FLEET, CLUSTER, AGENT)


# ---------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------


def _variables(spec: Spec) -> list[db.QueryVariable | db.DatasourceVariable]:
    out: list[db.QueryVariable | db.DatasourceVariable] = [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus")
    ]

    def query_var(name: str, label: str, query: str, regex: str = "") -> db.QueryVariable:
        v = (db.QueryVariable(name).label(label).datasource(DS).query(query)
             .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
             .include_all(True).multi(True).all_value(".*"))
        return v.regex(regex) if regex else v

    for name in spec.variables:
        if name == "namespace":
            query = "label_values(rva_group_pods, cluster)"
            out.append(query_var("namespace", "Namespace", query, r"/^([^/]+)\/.*/"))
        elif name == "cluster":
            query = 'label_values(rva_group_pods{cluster=~"$namespace/.*"}, cluster)'
            out.append(query_var("cluster", "RayCluster", query))
        elif name == "group":
            out.append(query_var("group", "Worker group", f"label_values(rva_group_pods{{{C}}}, group)"))
        elif name == "pod":
            out.append(query_var("pod", "Pod", f"label_values(rva_agent_info{{{CG}}}, pod)"))
        else:
            raise ValueError(f"unknown variable {name}")
    return out


def _target(q: Q, ref: str) -> prom.Dataquery:
    t = prom.Dataquery().expr(q.expr).ref_id(ref).datasource(DS)
    if q.legend:
        t = t.legend_format(q.legend)
    if q.heatmap:
        t = t.format(pm.PromQueryFormat.HEATMAP)
    if q.instant:
        t = t.instant().format(pm.PromQueryFormat.TABLE)
    return t


def _panel(spec: P, panel_id: int) -> Any:
    builder: Any
    if spec.kind == "timeseries":
        builder = timeseries.Panel().fill_opacity(10).line_width(1).show_points(cm.VisibilityMode.NEVER)
        if spec.stack:
            builder = builder.stacking(
                _stacking_normal()).fill_opacity(30)
        builder = builder.legend(_legend())
    elif spec.kind == "stat":
        builder = stat.Panel().graph_mode(cm.BigValueGraphMode.AREA).color_mode(cm.BigValueColorMode.VALUE)
    elif spec.kind == "heatmap":  # Grafana buckets the series' values itself
        builder = heatmap.Panel().calculate(True).y_axis(heatmap.YAxisConfig().unit(spec.unit))
    elif spec.kind == "bucket-heatmap":  # Prometheus histogram buckets (format: heatmap)
        builder = heatmap.Panel().calculate(False).y_axis(heatmap.YAxisConfig().unit(spec.unit))
    elif spec.kind == "table":
        builder = table.Panel()
    else:
        raise ValueError(f"unknown panel kind {spec.kind}")
    builder = (builder.id(panel_id).title(spec.title).description(spec.description).datasource(DS)
               .unit(spec.unit).span(spec.width).height(spec.height))
    if spec.decimals is not None:
        builder = builder.decimals(spec.decimals)
    for i, q in enumerate(spec.queries):
        builder = builder.with_target(_target(q, chr(ord("A") + i)))
    return builder


def _stacking_normal() -> Any:
    from grafana_foundation_sdk.builders import common as cb

    return cb.StackingConfig().mode(cm.StackingMode.NORMAL)


def _legend() -> Any:
    from grafana_foundation_sdk.builders import common as cb

    return cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM) \
        .show_legend(True)


def build(spec: Spec) -> dm.Dashboard:
    d = (db.Dashboard(spec.title).uid(spec.uid).description(spec.description).tags([*TAGS, *spec.extra_tags])
         .editable().refresh("30s").time("now-3h", "now").timezone("browser")
         .tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .link(db.DashboardLink("rva dashboards").type(dm.DashboardLinkType.DASHBOARDS).tags(["rva"])
               .as_dropdown(True).include_vars(True).keep_time(True)))
    for v in _variables(spec):
        d = d.with_variable(v)
    next_id = 1
    for row in spec.rows:
        d = d.with_row(db.Row(row.title).id(next_id))
        next_id += 1
        for ps in row.panels:
            d = d.with_panel(_panel(ps, next_id))
            next_id += 1
    return d.build()


def to_json(dashboard: dm.Dashboard) -> str:
    return json.dumps(dashboard, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def file_name(spec: Spec) -> str:
    return f"{spec.uid}.json"


def render_all() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {file_name(s): to_json(build(s)) for s in SPECS}


def write_all(directory: Path = GRAFANA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def drift(directory: Path = GRAFANA_DIR) -> list[str]:
    """Names of committed dashboards that differ from the generated ones (or are missing/extra)."""
    wanted = render_all()
    problems = [n for n, text in wanted.items()
                if not (directory / n).exists() or (directory / n).read_text(encoding="utf-8") != text]
    problems += [p.name for p in sorted(directory.glob("*.json")) if p.name not in wanted]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoscaler.dashboards", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GRAFANA_DIR, help="directory for the JSON files")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ from the generated ones")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift(args.out)
        for n in stale:
            print(f"{args.out / n}: differs from the generator; run python -m autoscaler.dashboards", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
