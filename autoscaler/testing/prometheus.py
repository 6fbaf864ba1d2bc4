"""A real Prometheus on loopback for tests, and the dashboard query checker.

Start one that scrapes the daemon and the agents of an end-to-end run, then check every dashboard::

    from autoscaler.testing.prometheus import ScrapeTarget, check_dashboard_queries, load_dashboards, \
        start_prometheus

    targets = [ScrapeTarget(f"127.0.0.1:{daemon_port}", job="rva"),
               ScrapeTarget(f"127.0.0.1:{agent_port}", job="rva-agent",
                            labels={"cluster": "ray/demo", "group": "cpu", "pod": "demo-cpu-worker-abcde"})]
    with start_prometheus(targets, tmp_path) as prom:
        prom.wait_for("rva_leader", timeout=30)             # first scrape: 5-6 s (Prometheus 2.42)
        prom.wait_for("rate(rva_loops_total[1m])", timeout=30)   # rate() needs two samples
        assert check_dashboard_queries(load_dashboards(), prom.url) == []

The agent's ``cluster``/``group`` labels come from the PodMonitor relabelings in a real cluster; give
them to the static target here, as above. Prometheus is the Debian package (``/usr/bin/prometheus``),
started as a plain child process and stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"


class PrometheusMissing(RuntimeError):
    """The ``prometheus`` binary is not installed (``apt-get install prometheus``)."""


@dataclass(frozen=True)
class ScrapeTarget:
    address: str  # host:port
    job: str = "rva"
    labels: Mapping[str, str] = field(default_factory=dict)
    path: str = "/metrics"


def prometheus_path() -> str:
    found = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not found:
        raise PrometheusMissing("prometheus not found (apt-get install prometheus, or set $PROMETHEUS)")
    return found


def promtool_path() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


def promtool_check_metrics(exposition: str) -> list[str]:
    """``promtool check metrics`` findings for a /metrics text; an empty list means clean."""
    tool = promtool_path()
    if tool is None:
        raise PrometheusMissing("promtool not found (apt-get install prometheus, or set $PROMTOOL)")
    out = subprocess.run([tool, "check", "metrics"], input=exposition, capture_output=True, text=True, check=False,
                         timeout=60)
    if out.returncode == 0:
        return []
    return [line for line in (out.stdout + out.stderr).splitlines() if line.strip()] or [f"exit {out.returncode}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape_config(targets: Sequence[ScrapeTarget], interval: str = "1s",
                  rule_files: Sequence[str] = ()) -> dict[str, Any]:
    jobs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in targets:
        jobs.setdefault((t.job, t.path), []).append({"targets": [t.address], "labels": dict(t.labels)})
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": list(rule_files),
        "scrape_configs": [
            {"job_name": job, "metrics_path": path, "static_configs": statics}
            for (job, path), statics in jobs.items()
        ],
    }


class PrometheusServer:
    """A running Prometheus; use :func:`start_prometheus`."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
        self.proc = proc
        self.url = url
        self.workdir = workdir

    def query(self, expr: str) -> dict[str, Any]:
        """The raw ``/api/v1/query`` answer (``status`` success or error)."""
        return query(self.url, expr)

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer.get('error')}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns at least one series; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.series(expr)
            if got:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"no data for {expr!r} after {timeout:.0f}s (targets: {self.targets()})")
            time.sleep(0.25)

    def targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as r:
            active: list[dict[str, Any]] = json.load(r)["data"]["activeTargets"]
        return [{"scrapeUrl": t["scrapeUrl"], "health": t["health"], "lastError": t["lastError"]} for t in active]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def start_prometheus(
    targets: Sequence[ScrapeTarget],
    workdir: Path | None = None,
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
    ready_timeout: float = 15.0,
) -> Iterator[PrometheusServer]:
    """Run Prometheus on 127.0.0.1 (a free port) scraping ``targets``; stopped on exit."""
    binary = prometheus_path()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rva-prom-")))
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(targets, scrape_interval, [str(p) for p in rule_files])))
        port = free_port()
        log = (workdir / "prometheus.log").open("wb")
        stack.callback(log.close)
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        server = PrometheusServer(proc, f"http://127.0.0.1:{port}", workdir)
        stack.callback(server.stop)
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}: "
                                   f"{(workdir / 'prometheus.log').read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready")
            time.sleep(0.05)
        yield server


def query(prometheus_url: str, expr: str, timeout: float = 10.0) -> dict[str, Any]:
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/query", data=data, timeout=timeout) as r:
            answer: dict[str, Any] = json.load(r)
            return answer
    except urllib.error.HTTPError as e:  # 400 bad_data, 422 execution errors: the body says why
        body: dict[str, Any] = json.loads(e.read() or b"{}")
        return body or {"status": "error", "error": f"HTTP {e.code}"}


# ---------------------------------------------------------------------------------------------------
# Dashboard query checker
# ---------------------------------------------------------------------------------------------------

#: Grafana's built-in interval variables → what to send to Prometheus instead.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<metric>.+?)\s*,\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.S)


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    where: str  # "panel <id> <title> ref <refId>" or "variable <name>"
    expr: str  # as written in the dashboard
    promql: str  # what is sent to Prometheus


def load_dashboards(directory: Path = GRAFANA_DIR) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


def substitute(expr: str, variables: Iterable[str], builtins: Mapping[str, str] = GRAFANA_BUILTINS) -> str:
    """Replace Grafana variables: built-ins by fixed intervals, dashboard variables by ``.*``."""
    values = {**{v: ".*" for v in variables}, **builtins}
    # longest names first so $__interval_ms is not eaten by $__interval
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        expr = expr.replace(f"${{{name}}}", value).replace(f"[[{name}]]", value)
        expr = re.sub(rf"\${re.escape(name)}(?![A-Za-z0-9_])", value.replace("\\", "\\\\"), expr)
    return expr


def variable_promql(query_text: str) -> str | None:
    """PromQL for a Grafana Prometheus variable query; None for queries that are not checkable."""
    m = _LABEL_VALUES.match(query_text)
    if m:
        metric = m.group("metric")
        label = m.group("label")
        return f"group by ({label}) ({metric})" if metric else f"group by ({label}) ({{{label}!=\"\"}})"
    m = _QUERY_RESULT.match(query_text)
    if m:
        return m.group("expr")
    return None


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[DashboardQuery]:
    """Every panel target expression and query variable of ``dashboard``, ready to send."""
    title = str(dashboard.get("title", dashboard.get("uid", "?")))
    variables_list = (dashboard.get("templating") or {}).get("list") or []
    names = [str(v["name"]) for v in variables_list if v.get("type") != "datasource"]
    out: list[DashboardQuery] = []

    def panels(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])  # collapsed rows keep their panels inside

    for panel in panels(dashboard.get("panels") or []):
        for t in panel.get("targets") or []:
            expr = t.get("expr")
            if not expr or t.get("hide"):
                continue
            where = f"panel {panel.get('id')} {panel.get('title', '')!r} ref {t.get('refId')}"
            out.append(DashboardQuery(title, where, expr, substitute(expr, names)))
    for v in variables_list:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        text = q.get("query") if isinstance(q, Mapping) else q
        if not text:
            continue
        promql = variable_promql(str(text))
        if promql is None:
            continue
        out.append(DashboardQuery(title, f"variable {v['name']}", str(text), substitute(promql, names)))
    return out


def check_dashboard_queries(
    dashboards: Iterable[Mapping[str, Any]], prometheus_url: str
) -> list[str]:
    """Run every panel query and query variable against Prometheus; one line per problem.

    A problem is a parse/execution error, or an empty result ("no data": a misspelled metric is valid
    PromQL, so an empty answer is treated as a failure). An empty list means every query returned data.
    """
    problems: list[str] = []
    for q in (q for d in dashboards for q in dashboard_queries(d)):
        answer = query(prometheus_url, q.promql)
        if answer.get("status") != "success":
            kind = "parse error" if answer.get("errorType") == "bad_data" else "error"
            problems.append(f"{q.dashboard}: {q.where}: {kind}: {answer.get('error')} [{q.promql}]")
        elif not answer["data"]["result"]:
            problems.append(f"{q.dashboard}: {q.where}: no data [{q.promql}]")
    return problems


def metric_names(dashboards: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every ``rva_*`` metric name the dashboards' queries use (histograms as their base name)."""
    names: set[str] = set()
    for q in (q for d in dashboards for q in dashboard_queries(d)):
        for m in re.findall(r"\b(rva_[a-z0-9_]+)", q.promql):
            names.add(re.sub(r"_(bucket|sum|count)$", "", m))
    return names
