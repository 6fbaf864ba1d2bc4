"""Seeded, deterministic fault injection for the simulated apiserver (and other sim components).

A ``FaultRule`` matches requests by ``verb`` (``get``/``list``/``watch``/``create``/``update``/
``patch``/``delete``), ``resource`` (``pods``, ``pods/resize``, ``rayclusters/status``; glob patterns
allowed) and ``namespace``; when it matches, a draw from the injector's ``random.Random(seed)`` decides
whether it fires (``probability``), up to ``times`` times. The same seed and the same request sequence
give the same faults; ``log`` records every injected fault for assertions.

Kinds:
  ``error``      answer ``code`` (500 InternalError / 503 ServiceUnavailable / any) without touching state
  ``throttle``   429 TooManyRequests with ``Retry-After: retry_after``
  ``slow``       sleep ``delay`` seconds, then serve normally
  ``timeout``    hang ``delay`` seconds (past the client's timeout), then 504 Timeout, state untouched
  ``drop_watch`` a watch stream ends abruptly after ``after_events`` events
  ``gone``       a watch answers a 410 ``Expired`` ERROR event at once (forces a relist)
  ``stall``      for non-HTTP components (e.g. the kubelet: ``decide("kubelet", node_name)``)
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field

__all__ = ["FaultInjector", "FaultRule", "InjectedFault"]

KINDS = ("error", "throttle", "slow", "timeout", "drop_watch", "gone", "stall")


@dataclass
class FaultRule:
    kind: str
    verb: str = "*"
    resource: str = "*"
    namespace: str = "*"
    probability: float = 1.0
    code: int = 500
    retry_after: int = 1
    delay: float = 0.0
    after_events: int = 0
    times: int | None = None
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    def matches(self, verb: str, resource: str, namespace: str) -> bool:
        return (
            fnmatch.fnmatchcase(verb, self.verb)
            and fnmatch.fnmatchcase(resource, self.resource)
            and fnmatch.fnmatchcase(namespace or "", self.namespace)
        )


@dataclass(frozen=True)
class InjectedFault:
    seq: int  # index of the decision (every matching request counts, fired or not)
    verb: str
    resource: str
    namespace: str
    kind: str
    rule: int


class FaultInjector:
    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self.rules = list(rules or [])
        self.seed = seed
        self._rng = random.Random(seed)
        self._seq = 0
        self.log: list[InjectedFault] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def decide(self, verb: str, resource: str, namespace: str = "") -> FaultRule | None:
        """The fault to inject for this request, if any (first firing rule wins)."""
        hit: FaultRule | None = None
        for i, rule in enumerate(self.rules):
            if rule.times is not None and rule.fired >= rule.times:
                continue
            if not rule.matches(verb, resource, namespace):
                continue
            # Always draw for a matching rule so the random stream depends only on the request sequence.
            fires = self._rng.random() < rule.probability
            if fires and hit is None:
                rule.fired += 1
                hit = rule
                self.log.append(InjectedFault(self._seq, verb, resource, namespace, rule.kind, i))
        self._seq += 1
        return hit

    def reset(self) -> None:
        """Restart the random stream and counters from the seed."""
        self._rng = random.Random(self.seed)
        self._seq = 0
        self.log.clear()
        for r in self.rules:
            r.fired = 0
