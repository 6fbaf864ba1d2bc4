"""What a cluster worker exports follows the cluster: gone pods lose their series, served demand goes to 0."""

from __future__ import annotations

from typing import Any

from autoscaler.actions import Plan, Reason, Unserved
from autoscaler.daemon import ClusterView, ClusterWorker, DaemonSettings
from autoscaler.metrics import Metrics
from autoscaler.policy import Policy
from tests.planning import demand, group, node, pod, snapshot


def worker(metrics: Metrics) -> ClusterWorker:
    view = ClusterView(raycluster=lambda: None, worker_pods=list, nodes=dict, pods_by_node=dict)
    return ClusterWorker(
        "ray", "rc", view=view, policy=Policy.default, executor=None,  # type: ignore[arg-type]
        reader=None, pressure=None, metrics=metrics, settings=DaemonSettings(), server_minor=35,
        on_written=lambda resource, obj: None, may_act=lambda: True)


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    value: Any = m.registry.get_sample_value(name, labels)
    return value


def test_a_removed_pods_series_are_dropped() -> None:
    m = Metrics()
    w = worker(m)
    g = group("cpu", cpu=1, mem_gi=1, replicas=2)
    a, b = pod("rc-cpu-a", g), pod("rc-cpu-b", g)
    w._export_sizes(snapshot([a, b], [node("n1")], [g]))
    m.pod_pressure.labels("ray/rc", "cpu", "rc-cpu-b").set(0.3)  # as the pressure poller sets it
    assert sample(m, "rva_pod_cpu_request_cores", cluster="ray/rc", group="cpu", pod="rc-cpu-b") == 1.0

    w._export_sizes(snapshot([a], [node("n1")], [g]))  # rc-cpu-b was removed

    for name in ("rva_pod_cpu_request_cores", "rva_pod_memory_request_bytes",
                 "rva_pod_memory_pressure_some_avg10_ratio"):
        assert sample(m, name, cluster="ray/rc", group="cpu", pod="rc-cpu-b") is None, name
    assert sample(m, "rva_pod_cpu_request_cores", cluster="ray/rc", group="cpu", pod="rc-cpu-a") == 1.0
    assert sample(m, "rva_group_pods", cluster="ray/rc", group="cpu") == 1.0


def test_unserved_demand_goes_back_to_zero_once_served() -> None:
    m = Metrics()
    w = worker(m)
    waiting = Unserved(demand(cpu=1), 2, Reason.WAITING_FOR_CAPACITY, "new pods starting")
    w._export_unserved(Plan(unserved=(waiting,)))
    assert sample(m, "rva_unserved_demand_tasks", cluster="ray/rc", reason="WaitingForCapacity") == 2.0

    w._export_unserved(Plan())  # served: the GCS reports no pending demand any more

    assert sample(m, "rva_unserved_demand_tasks", cluster="ray/rc", reason="WaitingForCapacity") == 0.0
    assert sample(m, "rva_unserved_demand_tasks", cluster="ray/rc", reason="InfeasibleDemand") == 0.0


async def test_the_pressure_poller_labels_each_pods_series_with_its_group() -> None:
    import asyncio
    import dataclasses

    from autoscaler.model import Pressure

    pods = [{"metadata": {"name": f"rc-{g}-{i}", "labels": {"ray.io/group": g}}}
            for g in ("cpu", "gpu") for i in range(3)]

    class Source:
        async def sample(self, workers: list[Any], policy: Any, now: float) -> dict[str, Pressure]:
            assert workers == pods
            return {"rc-gpu-1": Pressure("rc-gpu-1", now, 12.0, 0.0, 1, 2, 1, 0)}

    m = Metrics()
    w = worker(m)
    w.view = dataclasses.replace(w.view, worker_pods=lambda: list(pods))
    w.pressure_source = Source()  # type: ignore[assignment]
    poller = asyncio.create_task(w.poll_pressure())
    await asyncio.sleep(0.05)
    poller.cancel()
    assert sample(m, "rva_pod_memory_pressure_some_avg10_ratio", cluster="ray/rc", group="gpu", pod="rc-gpu-1") == 0.12
