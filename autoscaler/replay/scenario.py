"""Scenarios: the cluster, the RayCluster, the trace (and how it is scaled) and rva's policy for one replay.

A scenario is a JSON document (``rva simulate --scenario FILE``) or a built-in name (``tpch-gke``,
``bursty``, ``skewed-memory``, ``gpu-fallback``, ``tiny``). Fields (all optional except ``name``/``trace``)::

    {"name": "tpch-gke", "description": "...",
     "trace": {"name": "tpch-q1-q5" | "path": "t.jsonl" | "synthetic": {"duration": 3600,
                   "tasks_per_second": 10, "shapes": [[3, {"CPU": 1}, {}]], "mean_task_seconds": 120},
               "width": 12, "time_scale": 5, "copies": 1, "gap": 0, "jitter": 0.1,
               "memory_per_cpu": "768Mi", "declare_memory": true},
     "pools": [{"name": "cpu", "cpu": "32", "memory": "32Gi", "reserved_cpu": "500m", "reserved_memory": "2Gi",
                "max_nodes": 3, "initial_nodes": 1, "provisioning_delay": 90, "labels": {}, "spot": false,
                "stockouts": [[0, 600]], "gpus": 0, "accelerator": null}],
     "kubelet": {"actuation_delay": 2, "startup_delay": 10},
     "head": {"cpu": "1", "memory": "2Gi"},
     "groups": [{"name": "workers", "cpu": "4", "memory": "4Gi", "min_replicas": 1, "max_replicas": 21,
                 "max_pod": {"cpu": "28", "memory": "26Gi"}, "labels": {}, "node_selector": {}, "gpus": 0}],
     "rva_policy": {...bare rva policy...}, "idle_timeout_s": 60, "rva_loop_s": 1, "ray_loop_s": 5,
     "seeds": [0, 1, 2], "horizon_s": 7200}

``width`` submits each recorded task that many times at once (the same query over ``width``× the data,
in as many more partitions); ``time_scale`` multiplies submit times and durations (bigger partitions);
``copies`` repeats the whole trace ``gap`` s apart; ``jitter`` perturbs times per seed (log-normal σ).
``memory_per_cpu`` is the memory a task uses per CPU it holds when the trace does not say (Ray's state
API does not report it; at least the task's own ``memory`` request); ``declare_memory`` makes each
task with CPUs also ask Ray for that memory (``ray_remote_args={"memory": ...}``), as memory-aware
jobs do. Every group's ``max_pod`` is both rva's ``vertical.maxPod`` and Ray IPPR's ``max-cpu``/
``max-memory``, so the two vertical autoscalers share one bound.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from autoscaler.model import Resources
from autoscaler.policy import Policy, parse_policy
from autoscaler.quantity import to_bytes, to_milli
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.nodepools import NodePool
from autoscaler.sim.traces import Trace, scale_trace, synthetic_trace

CLUSTER = "sim"
NAMESPACE = "default"
RAY_IMAGE = "rayproject/ray:2.60.0"


def trace_path(name: str) -> Path:
    """A built-in trace (``autoscaler/traces/<name>.jsonl``)."""
    return Path(str(resources.files("autoscaler").joinpath("traces", f"{name}.jsonl")))


def builtin_traces() -> list[str]:
    folder = Path(str(resources.files("autoscaler").joinpath("traces")))
    return sorted(p.stem for p in folder.glob("*.jsonl"))


@dataclass(frozen=True)
class Scenario:
    name: str
    trace: Mapping[str, Any]
    description: str = ""
    pools: tuple[Mapping[str, Any], ...] = ()
    kubelet: Mapping[str, Any] = field(default_factory=dict)
    head: Mapping[str, Any] = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    groups: tuple[Mapping[str, Any], ...] = ()
    rva_policy: Mapping[str, Any] = field(default_factory=dict)
    idle_timeout_s: float = 60.0
    rva_loop_s: float = 1.0
    ray_loop_s: float = 5.0
    seeds: tuple[int, ...] = (0, 1, 2)
    horizon_s: float = 7200.0
    warmup_s: float = 0.0
    base_dir: str = ""  # where a scenario file's relative trace path is resolved

    # -- loading --------------------------------------------------------------------------------------
    @staticmethod
    def from_dict(d: Mapping[str, Any], base_dir: str = "") -> Scenario:
        known = set(Scenario.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"scenario: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
        if "name" not in d or "trace" not in d:
            raise ValueError("scenario: 'name' and 'trace' are required")
        kw = dict(d)
        for key in ("pools", "groups", "seeds"):
            if key in kw:
                kw[key] = tuple(kw[key])
        kw.setdefault("base_dir", base_dir)
        return Scenario(**kw)

    def to_dict(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(getattr(self, k)) for k in self.__dataclass_fields__ if k != "base_dir"}
        for key in ("pools", "groups", "seeds"):
            out[key] = list(out[key])
        return out

    def with_(self, **changes: Any) -> Scenario:
        return replace(self, **changes)

    # -- what the runner builds ------------------------------------------------------------------------
    def load_trace(self, seed: int) -> Trace:
        spec = self.trace
        if "synthetic" in spec:
            syn = spec["synthetic"]
            base = synthetic_trace(
                seed, float(syn["duration"]), float(syn["tasks_per_second"]),
                [(float(w), {k: float(v) for k, v in res.items()}, dict(sel)) for w, res, sel in syn["shapes"]],
                mean_task_seconds=float(syn.get("mean_task_seconds", 60.0)),
                memory_overuse=float(syn.get("memory_overuse", 0.0)))
        elif "path" in spec:
            path = Path(spec["path"])
            if not path.is_absolute() and self.base_dir:
                path = Path(self.base_dir) / path
            base = Trace.read_jsonl(path)
        else:
            base = Trace.read_jsonl(trace_path(str(spec["name"])))
        width = int(spec.get("width", 1))
        if width > 1:
            base = Trace.of(
                (replace(t, name=f"{t.name}~{w}", group=f"{t.group}~{w}" if t.group else "")
                 for t in base for w in range(width)), base.meta)
        scaled = scale_trace(base, copies=int(spec.get("copies", 1)), time_scale=float(spec.get("time_scale", 1.0)),
                             gap=float(spec.get("gap", 0.0)), jitter=float(spec.get("jitter", 0.0)), seed=seed)
        per_cpu = spec.get("memory_per_cpu")
        if per_cpu is not None:
            used = to_bytes(per_cpu)
            scaled = Trace(tuple(t if t.memory_used is not None else replace(t, memory_used=max(
                int(used * t.resources.get("CPU", 0.0)), int(t.resources.get("memory", 0)))) for t in scaled),
                scaled.meta)
            if spec.get("declare_memory"):
                scaled = Trace(tuple(replace(t, resources={**t.resources, "memory": float(max(
                    t.used_bytes(), int(t.resources.get("memory", 0))))}) if t.resources.get("CPU") else t
                    for t in scaled), scaled.meta)
        return scaled

    def node_pools(self) -> list[NodePool]:
        out = []
        for p in self.pools:
            kw = {k: v for k, v in p.items() if k != "kubelet"}
            if "stockouts" in kw:
                kw["stockouts"] = [tuple(s) for s in kw["stockouts"]]
            kw.setdefault("scale_down_delay", 600.0)
            out.append(NodePool(kubelet=self.kubelet_config(), **kw))
        return out

    def kubelet_config(self) -> KubeletConfig:
        return KubeletConfig(**{k: v for k, v in self.kubelet.items()})

    def policy(self) -> Policy:
        """rva's policy: the scenario's, with each group's ``max_pod`` as ``vertical.maxPod``."""
        doc = copy.deepcopy(dict(self.rva_policy))
        groups = doc.setdefault("groups", {})
        for g in self.groups:
            if g.get("max_pod"):
                entry = groups.setdefault(g["name"], {})
                entry.setdefault("vertical", {}).setdefault("maxPod", dict(g["max_pod"]))
        return parse_policy(doc, source=f"scenario {self.name}")

    def pod_max(self) -> dict[str, Resources]:
        out = {}
        for g in self.groups:
            mp = g.get("max_pod")
            if mp:
                out[g["name"]] = Resources.of(cpu=to_milli(mp["cpu"]), memory=to_bytes(mp["memory"]))
        return out

    def raycluster(self) -> dict[str, Any]:
        head_res = {"cpu": str(self.head.get("cpu", "1")), "memory": str(self.head.get("memory", "2Gi"))}
        head = {"name": "ray-head", "image": RAY_IMAGE, "resources": {"requests": head_res, "limits": head_res}}
        head_spec: dict[str, Any] = {"containers": [head]}
        if self.head.get("node_selector"):
            head_spec["nodeSelector"] = dict(self.head["node_selector"])
        return {
            "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": CLUSTER, "namespace": NAMESPACE, "annotations": {"rva.ray.io/enabled": "true"}},
            "spec": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {"rayStartParams": {"num-cpus": "0"}, "template": {"spec": head_spec}},
                "workerGroupSpecs": [self._group(g) for g in self.groups],
            },
        }

    @staticmethod
    def _group(g: Mapping[str, Any]) -> dict[str, Any]:
        req = {"cpu": str(g.get("cpu", "1")), "memory": str(g.get("memory", "1Gi"))}
        limits = dict(req)
        if g.get("gpus"):
            limits["nvidia.com/gpu"] = str(g["gpus"])
        container: dict[str, Any] = {
            "name": "ray-worker", "image": RAY_IMAGE,
            "resources": {"requests": req, "limits": limits},
            "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                             {"resourceName": "memory", "restartPolicy": "NotRequired"}],
        }
        spec: dict[str, Any] = {"containers": [container]}
        if g.get("node_selector"):
            spec["nodeSelector"] = dict(g["node_selector"])
        if g.get("tolerations"):
            spec["tolerations"] = list(g["tolerations"])
        out: dict[str, Any] = {
            "groupName": g["name"], "replicas": int(g.get("replicas", g.get("min_replicas", 0))),
            "minReplicas": int(g.get("min_replicas", 0)), "maxReplicas": int(g.get("max_replicas", 10)),
            "rayStartParams": {}, "template": {"spec": spec},
        }
        labels = {"ray.io/node-group": g["name"], **dict(g.get("labels") or {})}
        out["labels"] = labels
        if g.get("priority") is not None:
            out["priority"] = int(g["priority"])
        return out

    def initial_nodes(self) -> int:
        return sum(int(p.get("initial_nodes", 0)) for p in self.pools)


# -- built-in scenarios ----------------------------------------------------------------------------------
_GKE_POOL = {"name": "cpu", "instance_type": "n2-standard-32", "cpu": "32", "memory": "32Gi",
             "reserved_cpu": "500m", "reserved_memory": "2Gi", "max_nodes": 3, "initial_nodes": 1,
             "provisioning_delay": 90.0}
#: rva's policy for batch replays: fit sizing in 500m / 512Mi steps, no cooldown, 4 resizes in flight per node,
#: shrink after 30 s idle, remove after Ray's 60 s idle timeout.
_BATCH_POLICY: dict[str, Any] = {
    "concurrency": {"perNode": 4, "perCluster": 20},
    "groups": {"*": {
        "vertical": {"sizing": {"mode": "fit", "headroom": 0.1, "quanta": {"cpu": "500m", "memory": "512Mi"}},
                     "cooldown": "0s"},
        "shrink": {"idleWindow": "30s"},
        "horizontal": {"idleTimeout": "60s"},
        "memoryPressure": {"startupGrace": "30s"},
    }},
}

BUILTIN: dict[str, dict[str, Any]] = {
    "tpch-gke": {
        "name": "tpch-gke",
        "description": "TPC-H Q1 + Q5 on Ray Data (recorded here, SF 0.5, 8 logical CPUs) scaled ×12 wide and ×5 "
                       "long onto a GKE-like cluster of up to 3 worker nodes of 32 CPU / 32 GB (1 at start), "
                       "node provisioning 90 s, in-place resize actuation 2 s, pod start 10 s",
        "trace": {"name": "tpch-q1-q5", "width": 12, "time_scale": 5.0, "jitter": 0.1, "memory_per_cpu": "768Mi",
                  "declare_memory": True},
        "pools": [_GKE_POOL],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 10.0},
        "head": {"cpu": "1", "memory": "2Gi"},
        "groups": [{"name": "workers", "cpu": "4", "memory": "4Gi", "min_replicas": 1, "max_replicas": 21,
                    "max_pod": {"cpu": "28", "memory": "26Gi"}}],
        "rva_policy": _BATCH_POLICY,
        "seeds": [0, 1, 2],
        "horizon_s": 7200.0,
    },
    "bursty": {
        "name": "bursty",
        "description": "bursts of 1-CPU tasks every few minutes with idle gaps (synthetic, seeded)",
        "trace": {"name": "bursty", "jitter": 0.1},
        "pools": [_GKE_POOL],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 10.0},
        "groups": [{"name": "workers", "cpu": "4", "memory": "4Gi", "min_replicas": 1, "max_replicas": 21,
                    "max_pod": {"cpu": "28", "memory": "26Gi"}}],
        "rva_policy": _BATCH_POLICY,
        "horizon_s": 7200.0,
    },
    "skewed-memory": {
        "name": "skewed-memory",
        "description": "mostly small tasks, a heavy tail of memory-hungry ones, 3 % using more than they asked",
        "trace": {"name": "skewed-memory", "jitter": 0.1},
        "pools": [_GKE_POOL],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 10.0},
        "groups": [{"name": "workers", "cpu": "4", "memory": "16Gi", "min_replicas": 1, "max_replicas": 6,
                    "max_pod": {"cpu": "16", "memory": "26Gi"}}],
        "rva_policy": _BATCH_POLICY,
        "horizon_s": 7200.0,
    },
    "gpu-fallback": {
        "name": "gpu-fallback",
        "description": "L4 tasks that prefer spot and fall back to on-demand; the spot pool is stocked out for "
                       "the first 10 minutes",
        "trace": {"name": "gpu-fallback", "jitter": 0.1},
        "pools": [
            _GKE_POOL,
            {"name": "l4-spot", "instance_type": "g2-standard-16", "cpu": "16", "memory": "64Gi", "gpus": 1,
             "accelerator": "nvidia-l4", "spot": True, "max_nodes": 4, "provisioning_delay": 90.0,
             "stockouts": [[0, 600]], "priority": 10, "labels": {"pool": "l4-spot"}},
            {"name": "l4-ondemand", "instance_type": "g2-standard-16", "cpu": "16", "memory": "64Gi", "gpus": 1,
             "accelerator": "nvidia-l4", "max_nodes": 4, "provisioning_delay": 90.0,
             "labels": {"pool": "l4-ondemand"}},
        ],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 10.0},
        "groups": [
            {"name": "workers", "cpu": "4", "memory": "4Gi", "min_replicas": 1, "max_replicas": 14,
             "max_pod": {"cpu": "28", "memory": "26Gi"}},
            {"name": "l4-spot", "cpu": "8", "memory": "32Gi", "gpus": 1, "min_replicas": 0, "max_replicas": 4,
             "labels": {"ray.io/accelerator-type": "L4", "ray.io/market-type": "spot"}, "priority": 10,
             "node_selector": {"pool": "l4-spot"}, "max_pod": {"cpu": "14", "memory": "56Gi"}},
            {"name": "l4-ondemand", "cpu": "8", "memory": "32Gi", "gpus": 1, "min_replicas": 0, "max_replicas": 4,
             "labels": {"ray.io/accelerator-type": "L4", "ray.io/market-type": "on-demand"},
             "node_selector": {"pool": "l4-ondemand"}, "max_pod": {"cpu": "14", "memory": "56Gi"}},
        ],
        "rva_policy": {"groups": {**_BATCH_POLICY["groups"],
                                  "l4-spot": {"horizontal": {"stockoutTime": "60s"}}}},
        "horizon_s": 7200.0,
    },
    "tiny": {
        "name": "tiny",
        "description": "a small smoke scenario: the bursty trace at quarter length on up to 2 nodes of 8 CPU",
        "trace": {"name": "bursty", "time_scale": 0.25, "jitter": 0.1},
        "pools": [{"name": "cpu", "cpu": "8", "memory": "16Gi", "max_nodes": 2, "initial_nodes": 1,
                   "provisioning_delay": 30.0}],
        "kubelet": {"actuation_delay": 2.0, "startup_delay": 5.0},
        "groups": [{"name": "workers", "cpu": "2", "memory": "2Gi", "min_replicas": 1, "max_replicas": 6,
                    "max_pod": {"cpu": "6", "memory": "8Gi"}}],
        "rva_policy": _BATCH_POLICY,
        "seeds": [0],
        "horizon_s": 3600.0,
    },
}


def load_scenario(name_or_file: str) -> Scenario:
    """A built-in scenario by name, or a JSON scenario file."""
    if name_or_file in BUILTIN:
        return Scenario.from_dict(BUILTIN[name_or_file])
    path = Path(name_or_file)
    if not path.exists():
        raise ValueError(f"no built-in scenario or file named {name_or_file!r}; built-in: {', '.join(BUILTIN)}")
    return Scenario.from_dict(json.loads(path.read_text(encoding="utf-8")), base_dir=str(path.parent))
