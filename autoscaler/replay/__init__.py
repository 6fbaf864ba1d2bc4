"""Virtual-time replay of a workload trace on the simulated cluster, driven by one autoscaler.

``rva simulate`` and ``rva bench efficiency`` are built on it:

* :mod:`.scenario` — what is simulated (node pools, worker groups, trace and how it is scaled, policy);
* :mod:`.adapters` — the in-process Kubernetes API (the executor's four calls on the ``ObjectStore``),
  the raylet adapter over ``SimulatedRay``, and the GCS-state converter;
* :mod:`.drivers` — the autoscalers: rva (the real planner + ``PlanExecutor``, 1 s loop) and Ray 2.60's
  v2 ``ResourceDemandScheduler`` (IPPR off/on, 5 s loop, idle termination) through ``autoscaler.peers``;
* :mod:`.pressure` — rva's memory pressure: simulated agents per worker pod, the daemon's detector;
* :mod:`.quiet` — when rva's planner call provably decides nothing (the quiet-loop skip);
* :mod:`.meter` — what is measured (allocated vs used core·s and byte·s, pods, nodes, waits, OOM kills);
* :mod:`.runner` — one run, and many runs.
"""
