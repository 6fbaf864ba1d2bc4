"""Shared fixtures for the replay tests."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.replay import drivers, runner


@pytest.fixture
def rva_drivers(monkeypatch: pytest.MonkeyPatch) -> list[drivers.RvaDriver]:
    """Every rva driver the runner makes from now on, to look inside after a replay."""
    made: list[drivers.RvaDriver] = []
    real = runner.RvaDriver

    def make(*args: Any, **kw: Any) -> drivers.RvaDriver:
        d = real(*args, **kw)
        made.append(d)
        return d

    monkeypatch.setattr(runner, "RvaDriver", make)
    return made
