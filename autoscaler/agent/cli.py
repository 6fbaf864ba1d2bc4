"""``rva agent`` command line: flags (with downward-API environment defaults), JSON logs, signals."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from autoscaler import __version__
from autoscaler.agent.sampler import DEFAULT_PORT, DEFAULT_TRIGGER, AgentConfig
from autoscaler.agent.server import Agent
from autoscaler.observe import cgroup_discovery as disc
from autoscaler.observe.psi_trigger import parse_spec

log = logging.getLogger("rva.agent")

# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": record.created, "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--mode", choices=["in-container", "sidecar"], default=env("RVA_AGENT_MODE", "in-container"),
                        help="read our own cgroup, or find the pod's cgroup in a read-only node cgroup mount")
    parser.add_argument("--cgroup-root", type=Path, default=Path(env("RVA_CGROUP_ROOT", str(disc.DEFAULT_ROOT))),
                        help="where the cgroup hierarchies are mounted (v2, or v1 + unified/ on hybrid nodes)")
    parser.add_argument("--cgroup-path", default=None,
                        help="in-container: sample this cgroup path instead of the one in /proc/self/cgroup")
    parser.add_argument("--pod-uid", default=env("POD_UID", ""), help="sidecar: pod UID (downward API; env POD_UID)")
    parser.add_argument("--pod-name", default=env("POD_NAME", ""), help="reported in /v1/pressure (env POD_NAME)")
    parser.add_argument("--pod-namespace", default=env("POD_NAMESPACE", ""), help="env POD_NAMESPACE")
    parser.add_argument("--host", default="", help="listen address (default: all interfaces, IPv4 and IPv6)")
    parser.add_argument("--port", type=int, default=int(env("RVA_AGENT_PORT", str(DEFAULT_PORT))),
                        help="listen port (name the container port 'rva-agent' so the controller finds it)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--psi-trigger", default=DEFAULT_TRIGGER,
                        help="'some|full <stall_us> <window_us>' (window a multiple of 2 s without "
                             "CAP_SYS_RESOURCE), or 'off'")
    parser.add_argument("--log-level", default="INFO")


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    trigger = None if args.psi_trigger in ("", "off", "none") else args.psi_trigger
    if trigger is not None:
        parse_spec(trigger)
    if args.mode == "sidecar" and not args.pod_uid:
        raise ValueError("--mode sidecar needs --pod-uid (or POD_UID from the downward API)")
    if args.interval <= 0:
        raise ValueError("--interval must be > 0")
    return AgentConfig(
        mode=args.mode, cgroup_root=args.cgroup_root, cgroup_path=args.cgroup_path, pod_uid=args.pod_uid,
        pod_name=args.pod_name, pod_namespace=args.pod_namespace, interval_s=args.interval, psi_trigger=trigger,
    )


async def _run(config: AgentConfig, host: str | None, port: int) -> int:
    agent = Agent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = await agent.start(host, port)
    t = agent.sampler.primary_target
    where = "nothing yet" if t is None else " + ".join(str(p) for p in (t.v2_dir, t.v1_memory_dir) if p)
    log.info("rva agent %s listening on %s:%d, sampling %s every %.1fs (PSI trigger: %s)", __version__,
             host or "*", bound, where, config.interval_s, "armed" if agent.trigger else agent.trigger_error or "off")
    await stop.wait()
    await agent.stop()
    return 0


def main(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        config = config_from_args(args)
    except ValueError as e:
        log.error("%s", e)
        return 2
    return asyncio.run(_run(config, args.host or None, args.port))
