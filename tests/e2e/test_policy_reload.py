"""Acceptance 10: a broken policy ConfigMap keeps the last good policy; the error names the field."""

from __future__ import annotations

import pytest

from autoscaler.localstack import LocalStack, worker_group

pytestmark = [pytest.mark.slow, pytest.mark.stack(real_ray=False)]


async def test_broken_policy_keeps_the_last_good_one_and_names_the_field(stack: LocalStack) -> None:
    stack.put_policy("groups:\n  cpu:\n    vertical: {enabled: false}\n")
    stack.create_raycluster(stack.raycluster("rc", [worker_group("cpu")]))
    daemon = await stack.start_daemon()
    worker = daemon.worker("default", "rc")
    assert worker is not None
    assert worker.policy().resolve("cpu").vertical.enabled is False

    stack.put_policy("groups:\n  cpu:\n    vertical: {sizing: {mode: max}}\n")  # a typo'd mode
    assert await stack.wait_for(lambda: bool(stack.events("InvalidPolicy")), 10)
    event = stack.events("InvalidPolicy")[0]
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == "rva-policy"
    assert "groups.cpu.vertical.sizing.mode" in event["message"] and "fit, step, to-max" in event["message"]
    assert worker.policy().resolve("cpu").vertical.enabled is False  # still the last good policy
    assert daemon.metrics.policy_valid.labels("default/rva-policy")._value.get() == 0
    assert daemon.metrics.policy_errors.labels("default/rva-policy")._value.get() == 1

    stack.put_policy("groups:\n  cpu:\n    vertical: {sizing: {mode: step}}\n")  # fixed
    assert await stack.wait_for(lambda: worker.policy().resolve("cpu").vertical.sizing.mode == "step", 10)
    assert worker.policy().resolve("cpu").vertical.enabled is True
    assert daemon.metrics.policy_valid.labels("default/rva-policy")._value.get() == 1
