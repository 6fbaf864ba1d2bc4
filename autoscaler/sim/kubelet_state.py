"""What a simulated kubelet knows about a pod (allocated vs actual resources, resize state) and how it
renders that into ``pod.status`` (phase, conditions, container statuses) the way a real kubelet does."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from autoscaler.sim import podres
from autoscaler.sim.clock import TimerHandle
from autoscaler.sim.events import parse_rfc3339, rfc3339
from autoscaler.sim.podres import Vec

PodKey = tuple[str, str]
RESIZE_PENDING = "PodResizePending"
RESIZE_IN_PROGRESS = "PodResizeInProgress"
KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    RESIZE_PENDING,
    RESIZE_IN_PROGRESS,
)


@dataclass
class KubeletContainer:
    name: str
    kind: str  # "container" | "init" | "sidecar"
    image: str
    req: Vec  # allocated requests
    lim: Vec  # allocated limits (the kubelet checkpoint keeps both)
    act_req: Vec  # actual, as reported by the runtime
    act_lim: Vec
    restart_count: int = 0
    started_at: float = 0.0
    last_terminated: dict[str, Any] | None = None
    usage: int = 0  # memory working set, bytes


@dataclass
class KubeletPod:
    key: PodKey
    uid: str
    node: str
    containers: list[KubeletContainer]
    priority: int
    qos: str
    admitted_at: float
    running: bool = False
    terminating: bool = False
    resize: str = ""  # "" | "Deferred" | "Infeasible"
    resize_msg: str = ""
    resize_gen: int = 0  # generation the pending decision was made for
    in_progress: bool = False
    in_progress_gen: int = 0
    error: str = ""
    observed_gen: int = 0
    cond_times: dict[str, float] = field(default_factory=dict)
    timer: TimerHandle | None = None
    failed: tuple[str, str] | None = None  # (reason, message) when admission rejected the pod

    def alloc_total(self) -> Vec:
        total = podres.total_requests(
            (c.req for c in self.containers if c.kind == "container"),
            ((c.req, c.kind == "sidecar") for c in self.containers if c.kind != "container"),
        )
        total["pods"] = 1
        return total


def render_status(rec: KubeletPod, old: dict[str, Any], now: float) -> dict[str, Any]:
    """The pod status a kubelet reports for ``rec``, keeping fields other writers own (PodScheduled)."""
    status = dict(old)
    status["observedGeneration"] = rec.observed_gen
    if rec.failed:
        status["phase"] = "Failed"
        status["reason"], status["message"] = rec.failed
        return status
    status["phase"] = "Running" if rec.running else "Pending"
    status["hostIP"] = _node_ip(rec.node)
    status["hostIPs"] = [{"ip": status["hostIP"]}]
    status["podIP"] = _pod_ip(rec.uid)
    status["podIPs"] = [{"ip": status["podIP"]}]
    status.setdefault("startTime", rfc3339(rec.admitted_at))
    status.setdefault("qosClass", rec.qos)
    ready = rec.running and not rec.terminating
    conds = {c["type"]: c for c in old.get("conditions") or () if c.get("type") not in KUBELET_CONDITIONS}
    wanted: list[tuple[str, str, str, str, int | None]] = [
        ("PodReadyToStartContainers", "True", "", "", None),
        ("Initialized", "True", "", "", None),
        ("Ready", "True" if ready else "False", "" if ready else "ContainersNotReady", "", None),
        ("ContainersReady", "True" if ready else "False", "" if ready else "ContainersNotReady", "", None),
    ]
    if rec.resize:
        wanted.append((RESIZE_PENDING, "True", rec.resize, rec.resize_msg, rec.resize_gen))
    if rec.in_progress:
        wanted.append((RESIZE_IN_PROGRESS, "True", "Error" if rec.error else "", rec.error, rec.in_progress_gen))
    old_by_type = {c["type"]: c for c in old.get("conditions") or ()}
    for ctype, cstatus, reason, message, gen in wanted:
        prev = old_by_type.get(ctype)
        if prev is not None and prev.get("status") == cstatus:
            ltt = prev.get("lastTransitionTime") or rfc3339(now)
        else:
            ltt = rfc3339(rec.cond_times.get(ctype, now))
        cond: dict[str, Any] = {"type": ctype, "status": cstatus, "lastProbeTime": None, "lastTransitionTime": ltt}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        if gen is not None:
            cond["observedGeneration"] = gen
        if ctype in (RESIZE_PENDING, RESIZE_IN_PROGRESS):
            cond.setdefault("reason", "")
            cond.setdefault("message", "")
        conds[ctype] = cond
    order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    status["conditions"] = sorted(
        conds.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else len(order)
    )
    statuses: list[dict[str, Any]] = []
    init_statuses: list[dict[str, Any]] = []
    for c in rec.containers:
        st = container_status(rec, c, ready, now)
        (statuses if c.kind == "container" else init_statuses).append(st)
    status["containerStatuses"] = statuses
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    elif "initContainerStatuses" in status:
        del status["initContainerStatuses"]
    return status


def container_status(rec: KubeletPod, c: KubeletContainer, ready: bool, now: float) -> dict[str, Any]:
    st: dict[str, Any] = {
        "name": c.name,
        "image": c.image,
        "imageID": f"{c.image}@sha256:{'0' * 64}",
        "restartCount": c.restart_count,
        "allocatedResources": podres.format_list(c.req),
        "resources": {k: podres.format_list(v) for k, v in (("limits", c.act_lim), ("requests", c.act_req)) if v},
    }
    if not st["allocatedResources"]:
        del st["allocatedResources"]
    if c.kind == "init":  # ran to completion before the main containers
        st.update(
            ready=rec.running,
            started=False,
            state={"terminated": {"exitCode": 0, "reason": "Completed"}}
            if rec.running
            else {"waiting": {"reason": "PodInitializing"}},
        )
    elif rec.running:
        st.update(
            ready=ready,
            started=True,
            containerID=container_id(rec, c),
            state={"running": {"startedAt": rfc3339(c.started_at)}},
        )
    else:
        st.update(ready=False, started=False, state={"waiting": {"reason": "ContainerCreating"}})
    st["lastState"] = {"terminated": dict(c.last_terminated)} if c.last_terminated else {}
    return st


def _crc(s: str) -> int:
    # crc32, not hash(): str hashes change between processes and runs must be reproducible.
    return zlib.crc32(s.encode())


def container_id(rec: KubeletPod, c: KubeletContainer) -> str:
    return f"containerd://{_crc(f'{rec.uid}/{c.name}/{c.restart_count}'):08x}{_crc(rec.uid):08x}"


def _node_ip(node: str) -> str:
    h = _crc(node) % 65000
    return f"10.128.{h // 250}.{h % 250 + 2}"


def _pod_ip(uid: str) -> str:
    """A loopback address (127.0.0.0/8 all routes to ``lo``): whatever scrapes a simulated pod —
    the daemon's pressure scraper, Prometheus — stays on this machine."""
    h = _crc(uid) % 16_000_000
    return f"127.{(h >> 16) % 254 + 1}.{(h >> 8) & 255}.{(h & 255) or 1}"


def condition_time(status: dict[str, Any], ctype: str) -> float | None:
    """``lastTransitionTime`` of a pod condition as epoch seconds (for tests and readers)."""
    for c in status.get("conditions") or ():
        if c.get("type") == ctype and c.get("lastTransitionTime"):
            return parse_rfc3339(c["lastTransitionTime"])
    return None
