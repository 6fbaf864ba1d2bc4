"""``rva bench sim`` runs end to end on a tiny setting and every written event reaches every watcher."""

from __future__ import annotations

import argparse
import json

import pytest

from autoscaler.bench import sim_api


@pytest.mark.slow
def test_api_throughput_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sim_api.configure(parser)
    args = parser.parse_args(["--only", "api", "--duration", "0.3", "--pods", "20", "--watchers", "2",
                              "--concurrency", "2", "--json"])
    assert sim_api.main(args) == 0
    res = json.loads(capsys.readouterr().out)["api"]
    assert res["gets_per_s_client_process"] > 0 and res["gets_per_s_same_loop"] > 0
    assert res["gets_per_s"] > 0 and res["gets_per_s_kubernetes_asyncio"] > 0
    assert res["events_delivered"] == res["events_expected"] > 0
