"""A minimal workload trace for the simulated Ray runtime: tasks with resources, label selectors,
duration and memory use, plus a seeded synthetic generator and a JSONL round trip.

Resources use Ray's names and units (``CPU``/``GPU`` in units, ``memory`` in bytes). Label selectors use
Ray's syntax: ``"v"`` (equals), ``"!v"``, ``"in(a,b)"``, ``"!in(a,b)"``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    submit_at: float  # seconds from the start of the trace
    resources: Mapping[str, float]
    duration: float
    label_selector: Mapping[str, str] = field(default_factory=dict)
    fallbacks: tuple[Mapping[str, str], ...] = ()  # fallback_strategy label selectors, in order
    memory_used: int | None = None  # bytes the task really uses (default: its ``memory`` request)
    name: str = ""

    def used_bytes(self) -> int:
        return int(self.memory_used if self.memory_used is not None else self.resources.get("memory", 0))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "submit_at": self.submit_at,
            "resources": dict(self.resources),
            "duration": self.duration,
        }
        if self.label_selector:
            out["label_selector"] = dict(self.label_selector)
        if self.fallbacks:
            out["fallbacks"] = [dict(f) for f in self.fallbacks]
        if self.memory_used is not None:
            out["memory_used"] = self.memory_used
        if self.name:
            out["name"] = self.name
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> TaskSpec:
        return TaskSpec(
            submit_at=float(d["submit_at"]),
            resources={k: float(v) for k, v in d["resources"].items()},
            duration=float(d["duration"]),
            label_selector=dict(d.get("label_selector") or {}),
            fallbacks=tuple(dict(f) for f in d.get("fallbacks") or ()),
            memory_used=int(d["memory_used"]) if d.get("memory_used") is not None else None,
            name=str(d.get("name") or ""),
        )


@dataclass(frozen=True)
class Trace:
    tasks: tuple[TaskSpec, ...]

    @property
    def duration(self) -> float:
        return max((t.submit_at + t.duration for t in self.tasks), default=0.0)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def write_jsonl(self, path: str | Path) -> None:
        with open(path, "w") as f:
            for t in self.tasks:
                f.write(json.dumps(t.to_json(), sort_keys=True) + "\n")

    @staticmethod
    def read_jsonl(path: str | Path) -> Trace:
        with open(path) as f:
            return Trace(tuple(TaskSpec.from_json(json.loads(line)) for line in f if line.strip()))

    @staticmethod
    def of(tasks: Iterable[TaskSpec]) -> Trace:
        return Trace(tuple(sorted(tasks, key=lambda t: t.submit_at)))


def synthetic_trace(
    seed: int,
    duration: float,
    tasks_per_second: float,
    shapes: Sequence[tuple[float, Mapping[str, float], Mapping[str, str]]],
    mean_task_seconds: float = 60.0,
    memory_overuse: float = 0.0,
) -> Trace:
    """Poisson arrivals over ``duration`` s; each task draws a shape ``(weight, resources, selector)``
    and an exponential duration. ``memory_overuse`` is the fraction of tasks that use 1.5× the memory
    they declared (what drives memory pressure and OOM kills in the simulation)."""
    rng = random.Random(seed)
    weights = [w for w, _, _ in shapes]
    out = []
    t = 0.0
    i = 0
    while True:
        t += rng.expovariate(tasks_per_second)
        if t >= duration:
            break
        _, resources, selector = rng.choices(shapes, weights)[0]
        used = None
        if memory_overuse and rng.random() < memory_overuse and resources.get("memory"):
            used = int(resources["memory"] * 1.5)
        out.append(
            TaskSpec(
                submit_at=round(t, 3),
                resources=dict(resources),
                duration=round(max(1.0, rng.expovariate(1.0 / mean_task_seconds)), 3),
                label_selector=dict(selector),
                memory_used=used,
                name=f"task-{i}",
            )
        )
        i += 1
    return Trace(tuple(out))
