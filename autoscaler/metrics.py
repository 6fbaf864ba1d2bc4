"""The daemon's Prometheus metrics, in one place so dashboards and alerts have one source of truth.

Conventions: ``rva_`` prefix, base units (``_seconds``, ``_bytes``, cores), counters end in
``_total``. Labels are bounded: cluster = ``<namespace>/<name>``, group, reason codes, phases.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
LOOP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.actions = Counter(
            "rva_actions_total", "Actions rva carried out, by kind and reason code.",
            ["cluster", "kind", "reason"], registry=r)
        self.actions_failed = Counter(
            "rva_action_failures_total", "Actions whose API call failed, by kind and HTTP code.",
            ["cluster", "kind", "code"], registry=r)
        self.resize_outcomes = Counter(
            "rva_resize_outcomes_total",
            "Finished in-place resizes by outcome (completed, infeasible, deferred_timeout, error, "
            "in_progress_timeout, rejected).", ["cluster", "outcome"], registry=r)
        self.resize_duration = Histogram(
            "rva_resize_duration_seconds", "From the resize PATCH to the kubelet reporting it applied.",
            ["cluster", "direction"], buckets=LATENCY_BUCKETS, registry=r)
        self.demand_to_action = Histogram(
            "rva_demand_to_action_seconds", "From pending demand first seen in the GCS to rva's first write for it.",
            ["cluster", "kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("rva_resizes_in_flight", "Resizes started and not finished.", ["cluster"], registry=r)
        self.pending_tasks = Gauge(
            "rva_pending_demand_tasks", "Pending Ray tasks/actors/bundles reported by the GCS.", ["cluster"],
            registry=r)
        self.pending_cpu = Gauge(
            "rva_pending_demand_cpu_cores", "CPU cores of pending Ray demand.", ["cluster"], registry=r)
        self.pending_memory = Gauge(
            "rva_pending_demand_memory_bytes", "Memory of pending Ray demand.", ["cluster"], registry=r)
        self.unserved = Gauge(
            "rva_unserved_demand_tasks", "Pending demand rva could not serve this loop, by reason.",
            ["cluster", "reason"], registry=r)
        self.scale_outs = Counter(
            "rva_scale_out_pods_total", "Pods requested by scale-out, by group; fallback=true when not the primary.",
            ["cluster", "group", "fallback"], registry=r)
        self.removals = Counter(
            "rva_pods_removed_total", "Worker pods removed, by group and reason.", ["cluster", "group", "reason"],
            registry=r)
        self.stockouts = Counter(
            "rva_stockouts_total", "Times a group was marked stocked out (new pods stuck Unschedulable).",
            ["cluster", "group"], registry=r)
        self.stocked_out = Gauge(
            "rva_group_stocked_out", "1 while a group is in stockout backoff.", ["cluster", "group"], registry=r)
        self.pod_cpu = Gauge(
            "rva_pod_cpu_request_cores", "CPU request of each managed worker pod.", ["cluster", "group", "pod"],
            registry=r)
        self.pod_memory = Gauge(
            "rva_pod_memory_request_bytes", "Memory request of each managed worker pod.", ["cluster", "group", "pod"],
            registry=r)
        self.pod_pressure = Gauge(
            "rva_pod_memory_pressure_some_avg10_ratio", "PSI memory some avg10 of each managed pod (0..1).",
            ["cluster", "group", "pod"], registry=r)
        self.group_pods = Gauge(
            "rva_group_pods", "Worker pods per group.", ["cluster", "group"], registry=r)
        self.loop_phase = Histogram(
            "rva_loop_phase_duration_seconds", "Duration of each phase of a cluster loop.", ["phase"],
            buckets=LOOP_BUCKETS, registry=r)
        self.api_requests = Counter(
            "rva_kube_api_requests_total", "Kubernetes API requests by verb, resource and HTTP code.",
            ["verb", "resource", "code"], registry=r)
        self.api_latency = Histogram(
            "rva_kube_api_request_duration_seconds", "Kubernetes API request latency by verb.", ["verb"],
            buckets=(*LOOP_BUCKETS, 10, 30), registry=r)
        self.gcs_latency = Histogram(
            "rva_gcs_request_duration_seconds", "Ray GCS request latency by method.", ["cluster", "method"],
            buckets=LOOP_BUCKETS, registry=r)
        self.gcs_errors = Counter(
            "rva_gcs_errors_total", "Ray GCS request failures by method.", ["cluster", "method"], registry=r)
        self.gcs_up = Gauge("rva_gcs_reachable", "1 when the last GCS read succeeded.", ["cluster"], registry=r)
        self.managed = Gauge("rva_managed_clusters", "RayClusters rva manages.", registry=r)
        self.refused = Gauge(
            "rva_refused_clusters", "Opted-in RayClusters rva refuses to manage, by reason.", ["reason"], registry=r)
        self.leader = Gauge("rva_leader", "1 while this replica holds the leader lease.", registry=r)
        self.leader_transitions = Counter(
            "rva_leader_transitions_total", "Times this replica gained or lost leadership.", ["event"], registry=r)
        self.policy_errors = Counter(
            "rva_policy_reload_errors_total", "Policy ConfigMaps rejected (the last good policy is kept).",
            ["configmap"], registry=r)
        self.policy_valid = Gauge(
            "rva_policy_valid", "1 when the policy ConfigMap's current content is valid.", ["configmap"], registry=r)
        self.loops = Counter("rva_loops_total", "Cluster loops run, by trigger.", ["trigger"], registry=r)

    def observe_api(self, verb: str, resource: str, code: str, seconds: float) -> None:
        self.api_requests.labels(verb, resource, code).inc()
        self.api_latency.labels(verb).observe(seconds)
