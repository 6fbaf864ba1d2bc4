"""Policy ConfigMaps with hot reload: an invalid edit keeps the last good policy and says which field.

A RayCluster uses the ConfigMap named by its ``rva.ray.io/policy`` annotation (default
``rva-policy``), looked up in the cluster's namespace, then in rva's own namespace; with none,
the built-in defaults apply (safe behaviour).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler import annotations as ann
from autoscaler.policy import POLICY_KEY, Policy, PolicyError, load_policy

log = logging.getLogger(__name__)
DEFAULT_POLICY_NAME = "rva-policy"

Key = tuple[str, str]


@dataclass(frozen=True)
class PolicyStatus:
    policy: Policy
    valid: bool  # False when the current content is broken and ``policy`` is the last good one
    errors: tuple[str, ...] = ()


class PolicyBook:
    """Last good policy per ConfigMap; reports rejected edits through ``on_error``."""

    def __init__(
        self, own_namespace: str, on_error: Callable[[Key, PolicyError], None] | None = None
    ) -> None:
        self.own_namespace = own_namespace
        self._on_error = on_error
        self._good: dict[Key, Policy] = {}
        self._status: dict[Key, PolicyStatus] = {}

    def update(self, configmap: Mapping[str, Any]) -> PolicyStatus:
        md = configmap.get("metadata", {})
        key = (md.get("namespace", ""), md["name"])
        text = (configmap.get("data") or {}).get(POLICY_KEY)
        try:
            if text is None:
                raise PolicyError([f"data.{POLICY_KEY}: required key is missing from the ConfigMap"],
                                  f"configmap {key[0]}/{key[1]}")
            policy = load_policy(text, f"configmap {key[0]}/{key[1]}")
        except PolicyError as e:
            last = self._good.get(key, Policy.default())
            status = PolicyStatus(last, False, tuple(e.errors))
            self._status[key] = status
            log.error("policy %s/%s rejected, keeping the last good policy: %s", key[0], key[1], "; ".join(e.errors))
            if self._on_error is not None:
                self._on_error(key, e)
            return status
        self._good[key] = policy
        status = PolicyStatus(policy, True)
        self._status[key] = status
        return status

    def delete(self, namespace: str, name: str) -> None:
        self._good.pop((namespace, name), None)
        self._status.pop((namespace, name), None)

    def for_cluster(self, raycluster: Mapping[str, Any]) -> tuple[Policy, Key | None]:
        md = raycluster.get("metadata", {})
        name = (md.get("annotations") or {}).get(ann.POLICY, DEFAULT_POLICY_NAME)
        for ns in (md.get("namespace", ""), self.own_namespace):
            status = self._status.get((ns, name))
            if status is not None:
                return status.policy, (ns, name)
        return Policy.default(), None

    def status(self, key: Key) -> PolicyStatus | None:
        return self._status.get(key)
