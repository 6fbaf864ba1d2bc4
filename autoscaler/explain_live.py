"""``rva explain --cluster NS/NAME``: plan once against a live cluster and print why; never writes.

It is the daemon's own observation path (watch caches, GCS reader, policy ConfigMaps) run in dry-run
mode without leader election, so what it prints is what the daemon would decide now.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from autoscaler.daemon import Daemon, DaemonSettings
from autoscaler.explain import Scenario, render_text
from autoscaler.kubeclient import KubeSettings
from autoscaler.plan import plan
from autoscaler.plan_json import plan_to_dict


def explain_cluster(args: argparse.Namespace) -> int:
    try:
        namespace, name = args.cluster.split("/", 1)
    except ValueError:
        print(f"rva explain: --cluster must be NAMESPACE/NAME (got {args.cluster!r})", file=sys.stderr)
        return 2
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    kube = KubeSettings(server=args.server, token=token, kubeconfig=args.kubeconfig,
                        in_cluster=not args.server and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
    settings = DaemonSettings(kube=kube, namespaces=(namespace,), own_namespace=namespace, leader_election=False,
                              dry_run=True, metrics_host="127.0.0.1", metrics_port=0, resync_s=3600)
    return asyncio.run(_explain(settings, namespace, name, args))


async def _explain(settings: DaemonSettings, namespace: str, name: str, args: argparse.Namespace) -> int:
    daemon = Daemon(settings)
    try:
        await daemon.start()
        worker = daemon.worker(namespace, name)
        if worker is None:
            why = daemon.refused.get((namespace, name))
            print(f"rva explain: RayCluster {namespace}/{name} is not managed by rva"
                  + (f" ({why})" if why else " (missing, or not opted in with rva.ray.io/enabled=true)"),
                  file=sys.stderr)
            return 1
        deadline = time.monotonic() + args.gcs_timeout
        while worker.ray is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if worker.ray is None:
            print(f"rva explain: warning: the Ray GCS of {namespace}/{name} did not answer in "
                  f"{args.gcs_timeout:.0f}s; planning without Ray demand", file=sys.stderr)
        now = time.time()
        snap = worker.snapshot(now)
        if snap is None:
            return 1
        policy = worker.policy()
        result = plan(snap, policy, now)
        if args.json:
            print(json.dumps({"cluster": f"{namespace}/{name}", "now": now, **plan_to_dict(result)}, indent=2))
        else:
            print(render_text(Scenario(f"{namespace}/{name}", "live", snap, policy, now), result))
        return 0
    finally:
        await daemon.stop()
