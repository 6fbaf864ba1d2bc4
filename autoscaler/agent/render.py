"""What the agent serves: the ``/v1/pressure`` JSON document and the ``rva_agent_*`` Prometheus families."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler import __version__
from autoscaler.agent.sampler import JSON_VERSION, Reading, Sampler
from autoscaler.observe.cgroup import STAT_BYTES, CgroupSample, Psi
from autoscaler.observe.psi_trigger import PsiTrigger

# --------------------------------------------------------------------------------------------------
# JSON (/v1/pressure)
# --------------------------------------------------------------------------------------------------


def _psi_json(p: Psi | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        k: None if line is None else
        {"avg10": line.avg10, "avg60": line.avg60, "avg300": line.avg300, "total_us": line.total_us}
        for k, line in (("some", p.some), ("full", p.full))
    }


def sample_json(s: CgroupSample) -> dict[str, Any]:
    ev = s.events
    return {
        "sampled_at": s.sampled_at,
        "path": s.path,
        "memory_path": s.memory_path,
        "cgroup_version": s.version,
        "psi": {"memory": _psi_json(s.memory_psi), "cpu": _psi_json(s.cpu_psi)},
        "memory": {
            "usage_bytes": s.usage_bytes,
            "working_set_bytes": s.working_set_bytes,
            "limit_bytes": s.limit_bytes,
            "high_bytes": s.high_bytes,
            "peak_bytes": s.peak_bytes,
            "events": None if ev is None else {
                "low": ev.low, "high": ev.high, "max": ev.max, "oom": ev.oom,
                "oom_kill": ev.oom_kill, "oom_group_kill": ev.oom_group_kill,
            },
            "stat": dict(s.stat),
        },
        "cpu": None if s.cpu is None else {
            "usage_usec": s.cpu.usage_usec, "nr_periods": s.cpu.nr_periods,
            "nr_throttled": s.cpu.nr_throttled, "throttled_usec": s.cpu.throttled_usec,
        },
        "errors": list(s.errors),
    }


def pressure_document(sampler: Sampler, now: float, since: float | None = None) -> dict[str, Any]:
    cfg, r = sampler.config, sampler.latest
    doc: dict[str, Any] = {
        "version": JSON_VERSION,
        "now": now,
        "agent": {"instance": sampler.instance, "version": __version__, "mode": cfg.mode,
                  "interval_s": cfg.interval_s, "discovery_error": sampler.discovery_error or None},
        "pod": {"name": cfg.pod_name, "namespace": cfg.pod_namespace, "uid": cfg.pod_uid,
                "qos": sampler.qos or None, "cgroup_driver": sampler.driver or None},
        "oom_kills_total": sampler.oom_kills_total,
        "samples": [h for h in sampler.history if since is None or h["sampled_at"] > since],
    }
    if r is not None:
        doc["identity"] = {"id": r.identity, "since": r.identity_since, "peak_usage_bytes": r.identity_peak_bytes}
        doc["sampled_at"] = r.sampled_at
        doc["primary"] = {"scope": r.primary.scope, **sample_json(r.primary.sample)}
        doc["containers"] = [{"id": o.name, **sample_json(o.sample)} for o in r.others if o.scope == "container"]
        doc["ray"] = [{"cgroup": o.name, **sample_json(o.sample)} for o in r.others if o.scope == "ray"]
    return doc


# --------------------------------------------------------------------------------------------------
# Prometheus (/metrics)
# --------------------------------------------------------------------------------------------------


class AgentCollector(Collector):
    """Builds the metric families from the latest round, so vanished containers vanish from /metrics."""

    def __init__(self, sampler: Sampler, trigger: Callable[[], PsiTrigger | None]) -> None:
        self._s = sampler
        self._trigger = trigger

    def collect(self) -> Iterator[Metric]:
        s, r = self._s, self._s.latest
        labels = ["scope", "cgroup"]
        info = GaugeMetricFamily("rva_agent_info", "Agent build and mode (value 1).",
                                 labels=["version", "mode", "cgroup_version", "qos"])
        cg_version = r.primary.sample.version if r else ""
        info.add_metric([__version__, s.config.mode, cg_version, s.qos], 1)
        yield info
        samples = CounterMetricFamily("rva_agent_samples", "Sampling rounds, by what started them.", labels=["reason"])
        for reason, n in sorted(s.samples_total.items()):
            samples.add_metric([reason], n)
        yield samples
        yield CounterMetricFamily("rva_agent_read_errors", "Cgroup files that were missing or malformed.",
                                  value=s.read_errors_total)
        yield CounterMetricFamily("rva_agent_oom_kills", "OOM kills in the pod/container cgroup seen by this agent.",
                                  value=s.oom_kills_total)
        trig = self._trigger()
        yield GaugeMetricFamily("rva_agent_psi_trigger_armed", "1 when a PSI trigger wakes the agent early.",
                                value=1 if trig is not None and trig.armed else 0)
        yield CounterMetricFamily("rva_agent_psi_trigger_events", "PSI trigger wake-ups.",
                                  value=trig.events if trig is not None else 0)
        if r is None:
            return
        yield GaugeMetricFamily("rva_agent_last_sample_timestamp_seconds", "Wall-clock time of the last round.",
                                value=r.sampled_at)
        yield GaugeMetricFamily("rva_agent_sample_duration_seconds", "How long the last round took.",
                                value=r.duration_s)
        yield from _cgroup_families(list(r.readings()), labels)


def _cgroup_families(readings: list[Reading], labels: list[str]) -> Iterator[Metric]:
    def gauge(name: str, help_: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, help_, labels=labels + list(extra))

    def counter(name: str, help_: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
        return CounterMetricFamily(name, help_, labels=labels + list(extra))

    ratio = gauge("rva_agent_pressure_ratio", "PSI stall share (avg10/60/300 ÷ 100).", ("resource", "kind", "window"))
    stall = counter("rva_agent_pressure_stall_seconds", "PSI total stall time.", ("resource", "kind"))
    usage = gauge("rva_agent_memory_usage_bytes", "memory.current / memory.usage_in_bytes.")
    wset = gauge("rva_agent_memory_working_set_bytes", "Usage minus inactive file pages (kubelet's working set).")
    limit = gauge("rva_agent_memory_limit_bytes", "memory.max / limit_in_bytes (absent when unlimited).")
    high = gauge("rva_agent_memory_high_bytes", "memory.high (absent when unset).")
    peak = gauge("rva_agent_memory_peak_bytes", "memory.peak / max_usage_in_bytes.")
    stat = gauge("rva_agent_memory_stat_bytes", "memory.stat byte amounts.", ("stat",))
    events = counter("rva_agent_memory_events", "memory.events (v1: failcnt as max, oom_kill).", ("event",))
    majflt = counter("rva_agent_memory_major_page_faults", "memory.stat pgmajfault.")
    refault = counter("rva_agent_memory_workingset_refaults", "memory.stat workingset_refault_*.", ("type",))
    cpu = counter("rva_agent_cpu_usage_seconds", "cpu.stat usage_usec.")
    periods = counter("rva_agent_cpu_periods", "cpu.stat nr_periods.")
    throttled = counter("rva_agent_cpu_throttled_periods", "cpu.stat nr_throttled.")
    throttled_s = counter("rva_agent_cpu_throttled_seconds", "cpu.stat throttled_usec.")
    for rd in readings:
        s, lv = rd.sample, [rd.scope, rd.name]
        for resource, psi in (("memory", s.memory_psi), ("cpu", s.cpu_psi)):
            for kind, line in (("some", psi.some if psi else None), ("full", psi.full if psi else None)):
                if line is None:
                    continue
                for window, v in (("10s", line.avg10), ("60s", line.avg60), ("300s", line.avg300)):
                    ratio.add_metric([*lv, resource, kind, window], v / 100)
                stall.add_metric([*lv, resource, kind], line.total_us / 1e6)
        amounts: tuple[tuple[GaugeMetricFamily, int | None], ...] = (
            (usage, s.usage_bytes), (wset, s.working_set_bytes), (limit, s.limit_bytes),
            (high, s.high_bytes), (peak, s.peak_bytes))
        for g, amount in amounts:
            if amount is not None:
                g.add_metric(lv, amount)
        for k in STAT_BYTES:
            if k in s.stat:
                stat.add_metric([*lv, k], s.stat[k])
        if "pgmajfault" in s.stat:
            majflt.add_metric(lv, s.stat["pgmajfault"])
        for t in ("anon", "file"):
            if f"workingset_refault_{t}" in s.stat:
                refault.add_metric([*lv, t], s.stat[f"workingset_refault_{t}"])
        if s.events is not None:
            for ev in ("low", "high", "max", "oom", "oom_kill", "oom_group_kill"):
                events.add_metric([*lv, ev], getattr(s.events, ev))
        if s.cpu is not None:
            cpu_counts: tuple[tuple[CounterMetricFamily, int | None, float], ...] = (
                (cpu, s.cpu.usage_usec, 1e-6), (periods, s.cpu.nr_periods, 1),
                (throttled, s.cpu.nr_throttled, 1), (throttled_s, s.cpu.throttled_usec, 1e-6))
            for c, count, scale in cpu_counts:
                if count is not None:
                    c.add_metric(lv, count * scale)
    yield from (ratio, stall, usage, wset, limit, high, peak, stat, events, majflt, refault,
                cpu, periods, throttled, throttled_s)
