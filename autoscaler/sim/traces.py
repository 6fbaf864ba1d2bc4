"""Workload traces: the documented JSONL format (``docs/traces.md``), its reader with line/field errors,
and seeded synthetic generators. The one home of the trace format.

A trace file is JSON Lines. The first line may be a header ``{"rva_trace": 1, ...}`` (name, description,
how it was recorded); every other non-blank line is one submission::

    {"kind": "task", "submit_at": 0.12, "duration": 3.4, "resources": {"CPU": 1, "memory": 2147483648},
     "label_selector": {"ray.io/market-type": "spot"}, "fallbacks": [{"ray.io/market-type": "on-demand"}],
     "memory_used": 3221225472, "name": "ReadParquet"}
    {"kind": "placement_group", "submit_at": 5, "duration": 60, "strategy": "PACK",
     "bundles": [{"CPU": 4}, {"CPU": 4}], "name": "trainer"}

Resources use Ray's names and units (``CPU``/``GPU`` in units, ``memory`` in bytes). Label selectors use
Ray's syntax: ``"v"`` (equals), ``"!v"``, ``"in(a,b)"``, ``"!in(a,b)"``. ``kind`` is ``task`` (default),
``actor`` (holds its resources for ``duration``) or ``placement_group`` (one entry per bundle when read;
the simulated Ray places bundles independently — no gang atomicity). A malformed line raises
:class:`TraceFormatError` naming the file, the line number and the field.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
KINDS = ("task", "actor", "placement_group")
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_TASK_FIELDS = {"kind", "submit_at", "duration", "resources", "label_selector", "fallbacks", "memory_used",
                "name", "node", "group"}
_PG_FIELDS = {"kind", "submit_at", "duration", "bundles", "strategy", "label_selector", "fallbacks",
              "memory_used", "name", "node"}


class TraceFormatError(ValueError):
    """A trace line that does not follow the format: ``source:line: field 'f': message``."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None, source: str = "") -> None:
        self.line = line
        self.field = field
        self.source = source
        self.reason = message
        where = ":".join(str(p) for p in (source or "<trace>", line) if p is not None)
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


@dataclass(frozen=True)
class TaskSpec:
    submit_at: float  # seconds from the start of the trace
    resources: Mapping[str, float]
    duration: float
    label_selector: Mapping[str, str] = field(default_factory=dict)
    fallbacks: tuple[Mapping[str, str], ...] = ()  # fallback_strategy label selectors, in order
    memory_used: int | None = None  # bytes the task really uses (default: its ``memory`` request)
    name: str = ""
    kind: str = "task"  # task | actor | placement_group (one spec per bundle)
    group: str = ""  # placement group name for bundles
    strategy: str = ""  # placement group strategy for bundles

    def used_bytes(self) -> int:
        return int(self.memory_used if self.memory_used is not None else self.resources.get("memory", 0))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "submit_at": self.submit_at,
            "resources": dict(self.resources),
            "duration": self.duration,
        }
        if self.kind != "task":
            out["kind"] = self.kind
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
        """One task/actor record (raises :class:`TraceFormatError` without a line number)."""
        specs = parse_record(d)
        if len(specs) != 1:
            raise TraceFormatError("a placement group is several specs; use parse_record", field="kind")
        return specs[0]


@dataclass(frozen=True)
class Trace:
    tasks: tuple[TaskSpec, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return max((t.submit_at + t.duration for t in self.tasks), default=0.0)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def cpu_seconds(self) -> float:
        return sum(t.resources.get("CPU", 0.0) * t.duration for t in self.tasks)

    def write_jsonl(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.dumps())

    def dumps(self) -> str:
        """The trace as JSONL (header first when ``meta`` is set; one line per placement group)."""
        lines = []
        if self.meta:
            lines.append(json.dumps({"rva_trace": FORMAT_VERSION, **self.meta}, sort_keys=True))
        groups: dict[str, list[TaskSpec]] = {}
        for t in self.tasks:
            if t.kind == "placement_group" and t.group:
                groups.setdefault(t.group, []).append(t)
        written: set[str] = set()
        for t in self.tasks:
            if not (t.kind == "placement_group" and t.group):
                lines.append(json.dumps(t.to_json(), sort_keys=True))
                continue
            if t.group in written:
                continue
            written.add(t.group)
            rec: dict[str, Any] = {
                "kind": "placement_group", "submit_at": t.submit_at, "duration": t.duration,
                "bundles": [dict(b.resources) for b in groups[t.group]], "strategy": t.strategy or "PACK",
                "name": t.group,
            }
            if t.label_selector:
                rec["label_selector"] = dict(t.label_selector)
            if t.fallbacks:
                rec["fallbacks"] = [dict(f) for f in t.fallbacks]
            if t.memory_used is not None:
                rec["memory_used"] = t.memory_used
            lines.append(json.dumps(rec, sort_keys=True))
        return "".join(line + "\n" for line in lines)

    @staticmethod
    def read_jsonl(path: str | Path) -> Trace:
        with open(path, encoding="utf-8") as f:
            return Trace.loads(f.read(), source=str(path))

    @staticmethod
    def loads(text: str, source: str = "") -> Trace:
        """Parse JSONL; any bad line raises :class:`TraceFormatError` with its line number and field."""
        specs: list[TaskSpec] = []
        meta: dict[str, Any] = {}
        for no, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                raise TraceFormatError(f"not valid JSON: {e.msg} (column {e.colno})", line=no, source=source) from None
            if not isinstance(rec, dict):
                raise TraceFormatError("each line must be a JSON object", line=no, source=source)
            if "rva_trace" in rec:
                if specs or meta:
                    raise TraceFormatError("the header must be the first line", line=no, field="rva_trace",
                                           source=source)
                if rec["rva_trace"] != FORMAT_VERSION:
                    raise TraceFormatError(f"unsupported version {rec['rva_trace']!r} (this rva reads "
                                           f"{FORMAT_VERSION})", line=no, field="rva_trace", source=source)
                meta = {k: v for k, v in rec.items() if k != "rva_trace"}
                continue
            try:
                specs.extend(parse_record(rec))
            except TraceFormatError as e:
                raise TraceFormatError(e.reason, line=no, field=e.field, source=source) from None
        return Trace(tuple(sorted(specs, key=lambda t: t.submit_at)), meta)

    @staticmethod
    def of(tasks: Iterable[TaskSpec], meta: Mapping[str, Any] | None = None) -> Trace:
        return Trace(tuple(sorted(tasks, key=lambda t: t.submit_at)), dict(meta or {}))


# -- validation --------------------------------------------------------------------------------------
def _got(v: Any) -> str:
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def _number(rec: Mapping[str, Any], name: str, *, positive: bool = False, required: bool = True) -> float | None:
    if name not in rec or rec[name] is None:
        if required:
            raise TraceFormatError("required field is missing", field=name)
        return None
    v = rec[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise TraceFormatError(f"must be a number (got {_got(v)})", field=name)
    if v < 0 or (positive and v == 0):
        raise TraceFormatError(f"must be {'> 0' if positive else '≥ 0'} (got {_got(v)})", field=name)
    return float(v)


def _resources(v: Any, name: str) -> dict[str, float]:
    if not isinstance(v, dict):
        raise TraceFormatError(f"must be an object of resource name → amount (got {_got(v)})", field=name)
    out: dict[str, float] = {}
    for k, amount in v.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
            raise TraceFormatError(f"must be a number ≥ 0 (got {_got(amount)})", field=f"{name}.{k}")
        out[str(k)] = float(amount)
    return out


def _selector(v: Any, name: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise TraceFormatError(f"must be an object of label → Ray selector string (got {_got(v)})", field=name)
    return dict(v)


def parse_record(rec: Mapping[str, Any]) -> list[TaskSpec]:
    """One JSONL record → task specs (one per bundle for a placement group)."""
    kind = rec.get("kind", "task")
    if kind not in KINDS:
        raise TraceFormatError(f"must be one of {', '.join(KINDS)} (got {_got(kind)})", field="kind")
    allowed = _PG_FIELDS if kind == "placement_group" else _TASK_FIELDS
    unknown = sorted(set(rec) - allowed)
    if unknown:
        raise TraceFormatError(f"unknown field; allowed: {', '.join(sorted(allowed))}", field=unknown[0])
    submit_at = _number(rec, "submit_at")
    duration = _number(rec, "duration", positive=True)
    assert submit_at is not None and duration is not None
    selector = _selector(rec.get("label_selector"), "label_selector")
    fallbacks_raw = rec.get("fallbacks") or []
    if not isinstance(fallbacks_raw, list):
        raise TraceFormatError(f"must be a list of label selectors (got {_got(fallbacks_raw)})", field="fallbacks")
    fallbacks = tuple(_selector(f, f"fallbacks[{i}]") for i, f in enumerate(fallbacks_raw))
    used = _number(rec, "memory_used", required=False)
    name = rec.get("name", "")
    if not isinstance(name, str):
        raise TraceFormatError(f"must be a string (got {_got(name)})", field="name")
    if kind == "placement_group":
        bundles = rec.get("bundles")
        if not isinstance(bundles, list) or not bundles:
            raise TraceFormatError(f"must be a non-empty list of resource objects (got {_got(bundles)})",
                                   field="bundles")
        strategy = rec.get("strategy", "PACK")
        if strategy not in STRATEGIES:
            raise TraceFormatError(f"must be one of {', '.join(STRATEGIES)} (got {_got(strategy)})", field="strategy")
        group = name or f"pg@{submit_at}"
        return [
            TaskSpec(submit_at, _resources(b, f"bundles[{i}]"), duration, selector, fallbacks,
                     int(used) if used is not None else None, f"{group}[{i}]", "placement_group", group, strategy)
            for i, b in enumerate(bundles)
        ]
    if "resources" not in rec:
        raise TraceFormatError("required field is missing", field="resources")
    return [TaskSpec(submit_at, _resources(rec["resources"], "resources"), duration, selector, fallbacks,
                     int(used) if used is not None else None, name, kind)]


# -- transformations -----------------------------------------------------------------------------------
def scale_trace(
    trace: Trace, *, copies: int = 1, time_scale: float = 1.0, gap: float = 0.0, jitter: float = 0.0, seed: int = 0
) -> Trace:
    """``copies`` back-to-back repetitions (each starting ``gap`` s after the previous one's last submission)
    with every submit time and duration multiplied by ``time_scale``; ``jitter`` (fraction) perturbs durations
    and submit times with a seeded log-normal factor, so runs with different seeds differ."""
    rng = random.Random(seed)
    out: list[TaskSpec] = []
    offset = 0.0
    last = max((t.submit_at for t in trace), default=0.0) * time_scale
    for c in range(copies):
        for t in trace:
            f_dur = math.exp(rng.gauss(0.0, jitter)) if jitter else 1.0
            f_sub = math.exp(rng.gauss(0.0, jitter)) if jitter else 1.0
            out.append(replace(
                t,
                submit_at=round(offset + t.submit_at * time_scale * f_sub, 3),
                duration=round(max(0.01, t.duration * time_scale * f_dur), 3),
                name=f"{t.name}#{c}" if copies > 1 else t.name,
                group=f"{t.group}#{c}" if t.group and copies > 1 else t.group,
            ))
        offset += last + gap
    return Trace.of(out, trace.meta)


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
