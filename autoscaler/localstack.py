"""A whole rva installation on one machine: simulated Kubernetes + its HTTP API + real Ray + the daemon.

Used by the end-to-end tests, ``rva demo`` and ``rva bench reaction``. The daemon runs exactly as in
a cluster: ``kubernetes_asyncio`` over real HTTP to the simulated API server (optionally enforcing
the RBAC the manifests ship), and gRPC to a real Ray head whose raylets play the worker pods.

    async with LocalStack(pools=[NodePool("cpu", cpu="8", memory="16Gi", initial_nodes=1)]) as stack:
        stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu", cpu="1", memory="1Gi")]))
        daemon = await stack.start_daemon()
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from autoscaler import annotations as ann
from autoscaler.daemon import Daemon, DaemonSettings
from autoscaler.kubeclient import KubeSettings
from autoscaler.leader import LeaseSettings
from autoscaler.metrics import Metrics
from autoscaler.model import RayNodeState
from autoscaler.observe.ray_gcs import GcsConnection, RayGcsReader
from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.clock import RealClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.faults import FaultInjector
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.nodepools import NodePool
from autoscaler.sim.ray_runtime import RealRayRuntime
from autoscaler.sim.rbac import Rbac

NAMESPACE = "default"
TOKEN = "rva-e2e-token"
RAY_IMAGE = "rayproject/ray:2.60.0"


def worker_group(
    name: str,
    *,
    cpu: str = "1",
    memory: str = "1Gi",
    limit_cpu: str | None = None,
    limit_memory: str | None = None,
    replicas: int = 1,
    min_replicas: int = 0,
    max_replicas: int = 5,
    labels: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    gpus: int = 0,
    agent_port: int | None = None,
) -> dict[str, Any]:
    """A KubeRay worker group (KubeRay ≥ 1.5 fields) whose Ray container can be resized in place."""
    limits: dict[str, str] = {"cpu": limit_cpu or cpu, "memory": limit_memory or memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    container: dict[str, Any] = {
        "name": "ray-worker",
        "image": RAY_IMAGE,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                         {"resourceName": "memory", "restartPolicy": "NotRequired"}],
    }
    template: dict[str, Any] = {"spec": {"containers": [container]}}
    if node_selector:
        template["spec"]["nodeSelector"] = dict(node_selector)
    if agent_port is not None:
        template["metadata"] = {"annotations": {ann.AGENT_PORT: str(agent_port)}}
    group: dict[str, Any] = {
        "groupName": name, "replicas": replicas, "minReplicas": min_replicas, "maxReplicas": max_replicas,
        "rayStartParams": {}, "template": template,
    }
    if labels:
        group["labels"] = dict(labels)
    return group


class LocalStack:
    """Start with ``async with`` (or ``start()``/``stop()``); every process it started is stopped."""

    def __init__(
        self,
        pools: Sequence[NodePool],
        *,
        kubelet: KubeletConfig | None = None,
        server_minor: int = 35,
        enforce_rbac: bool = True,
        faults: FaultInjector | None = None,
        real_ray: bool = True,
        scan_interval: float = 2.0,
    ) -> None:
        self.runtime = RealRayRuntime(object_store_memory=80 * 2**20, stop_grace=10) if real_ray else None
        self.cluster = SimCluster(
            RealClock(), pools=pools, server_minor=server_minor, ray=self.runtime, scan_interval=scan_interval,
            kubelet=kubelet or KubeletConfig(startup_delay=0.5, actuation_delay=1.0, termination_delay=0.5),
        )
        self.store = self.cluster.store
        self.rbac: Rbac | None = None
        if enforce_rbac:
            from autoscaler.testing.rbac_rules import rbac_yaml, service_account_user

            self.user = service_account_user(namespace=NAMESPACE)
            self.rbac = Rbac.from_yaml(rbac_yaml(namespace=NAMESPACE), tokens={TOKEN: self.user}, namespace=NAMESPACE)
        self.faults = faults
        self.server = SimApiServer(self.store, rbac=self.rbac, faults=faults)
        self.daemons: list[Daemon] = []
        self._drivers: list[asyncio.subprocess.Process] = []
        self._conn: GcsConnection | None = None
        self._reader: RayGcsReader | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        await self.cluster.start()
        await self.server.start()

    async def stop(self) -> None:
        for d in self.daemons:
            with contextlib.suppress(Exception):
                await d.stop()
        for p in self._drivers:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        if self._conn is not None:
            await self._conn.close()
        await self.server.stop()
        await self.cluster.stop()

    async def __aenter__(self) -> LocalStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- objects ---------------------------------------------------------------------------------
    @property
    def gcs_address(self) -> str:
        return self.runtime.address if self.runtime is not None else "127.0.0.1:1"

    def raycluster(
        self, name: str, groups: Sequence[dict[str, Any]], *, annotations: Mapping[str, str] | None = None,
        in_tree_autoscaling: bool = False,
    ) -> dict[str, Any]:
        head = {"name": "ray-head", "image": RAY_IMAGE,
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}}
        meta_annotations = {ann.ENABLED: "true", ann.GCS_ADDRESS: self.gcs_address, **(annotations or {})}
        return {
            "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": name, "namespace": NAMESPACE, "annotations": meta_annotations},
            "spec": {
                "rayVersion": "2.60.0",
                "enableInTreeAutoscaling": in_tree_autoscaling,
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [head]}}},
                "workerGroupSpecs": [copy.deepcopy(g) for g in groups],
            },
        }

    def create_raycluster(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.cluster.create_raycluster(obj)

    def put_policy(self, text: str, name: str = "rva-policy") -> None:
        """Create or replace the policy ConfigMap (label ``rva.ray.io/policy=true``)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {ann.POLICY_LABEL: "true"}},
                "data": {"policy.yaml": text}}
        try:
            current = self.store.get("configmaps", NAMESPACE, name)
        except Exception:
            self.store.create("configmaps", body)
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.store.update("configmaps", body)

    def workers(
        self, cluster: str, group: str | None = None, *, include_deleting: bool = False
    ) -> list[dict[str, Any]]:
        pods = [p for p in self.cluster.pods(cluster, group, NAMESPACE)
                if (p["metadata"].get("labels") or {}).get("ray.io/node-type") == "worker"]
        return [p for p in pods if include_deleting or not p["metadata"].get("deletionTimestamp")]

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        items = self.store.list("events", NAMESPACE)[0]
        return [e for e in items if reason is None or e.get("reason") == reason]

    # -- the daemon ------------------------------------------------------------------------------
    def daemon_settings(self, **over: Any) -> DaemonSettings:
        base = DaemonSettings(
            kube=KubeSettings(
                server=self.server.url, token=TOKEN if self.rbac is not None else None, qps=50, burst=100
            ),
            namespaces=(NAMESPACE,),
            own_namespace=NAMESPACE,
            leader_election=False,
            lease=LeaseSettings(namespace=NAMESPACE, lease_duration_s=4.0, renew_deadline_s=3.0, retry_period_s=0.5),
            metrics_host="127.0.0.1",
            metrics_port=0,
            gcs_poll_s=0.25,
            resync_s=2.0,
            pressure_poll_s=1.0,
        )
        return replace(base, **over)

    async def start_daemon(
        self, *, metrics: Metrics | None = None, pressure: bool = False, **over: Any
    ) -> Daemon:
        factory = None
        if pressure:
            from autoscaler.observe.pressure_source import agent_pressure_source

            factory = agent_pressure_source
        daemon = Daemon(self.daemon_settings(**over), metrics=metrics, pressure_factory=factory)
        await daemon.start()
        self.daemons.append(daemon)
        return daemon

    # -- Ray drivers -----------------------------------------------------------------------------
    async def driver(self, script: str, *, env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
        """Run a Python driver against the real head (``RAY_ADDRESS`` is set); stdout is piped."""
        if self.runtime is None:
            raise RuntimeError("this stack has no real Ray")
        full_env = dict(self.runtime.env, RAY_ADDRESS=self.gcs_address, **(env or {}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, env=full_env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._drivers.append(proc)
        return proc

    async def ray_nodes(self) -> list[RayNodeState]:
        """Live raylets as the GCS reports them (the head included)."""
        if self._reader is None:
            self._conn = GcsConnection(self.gcs_address)
            self._reader = RayGcsReader(self._conn, check_truncation=False)
        state = await self._reader.read()
        return [n for n in state.nodes if n.status != "DEAD"]

    async def wait_raylets(self, cluster: str, timeout: float = 60.0) -> bool:
        """Until every running worker pod of ``cluster`` has a registered raylet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = {p["metadata"]["name"] for p in self.workers(cluster) if p["status"].get("phase") == "Running"}
            if pods and pods <= {n.instance_id for n in await self.ray_nodes()}:
                return True
            await asyncio.sleep(0.25)
        return False

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            await asyncio.sleep(step)
        return predicate()
