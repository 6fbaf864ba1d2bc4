"""``rva agent``: a tiny per-pod memory-pressure agent (cgroup PSI, usage, limits, OOM events).

It samples its cgroups every ``--interval`` seconds, and at once when an armed PSI trigger fires,
then serves ``/metrics`` (Prometheus, ``rva_agent_*``), ``/v1/pressure`` (JSON for the rva
controller) and ``/healthz``. It runs in every Ray pod, so it must stay small: no Ray import (an
import-linter contract), and HTTP is a few lines over ``asyncio.start_server`` rather than aiohttp,
which alone would cost ~17 MB of RSS per pod.
"""

from autoscaler.agent.cli import config_from_args, configure, main
from autoscaler.agent.sampler import AgentConfig, Round, Sampler
from autoscaler.agent.server import Agent

__all__ = ["Agent", "AgentConfig", "Round", "Sampler", "config_from_args", "configure", "main"]
