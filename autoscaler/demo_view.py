"""What ``rva demo`` shows while it runs (a ``rich`` live view on a terminal, progress lines otherwise)
and the summary table at the end."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from autoscaler.demo_record import EventRecord, PhaseSpan, PodSample, Recording, fmt_cpu, fmt_mem

#: Events worth a line besides rva's actions: the simulated cluster autoscaler's view of the stockout.
CONTEXT_EVENTS = ("ResizeCompleted", "ResizeRejected", "RemovalSkipped", "NotTriggerScaleUp", "TriggeredScaleUp")
#: of those, the ones only rva writes (the kubelet's own ResizeCompleted would say the same thing twice)
RVA_ONLY = ("ResizeCompleted", "ResizeRejected", "RemovalSkipped")
KIND_STYLE = {"GrowPod": "green", "ShrinkPod": "cyan", "ScaleOut": "yellow", "RemovePod": "magenta",
              "RevertResize": "red", "ResizeCompleted": "dim", "NotTriggerScaleUp": "dim red",
              "TriggeredScaleUp": "dim"}


def event_line(e: EventRecord, rec: Recording | None = None) -> str:
    who = e.pod or e.name
    msg = e.message if e.kind != "RayCluster" or not e.pod else e.message.split(": ", 1)[-1]
    if e.reason == "ScaleOut":
        msg, who = e.message, e.group
    elif e.reason == "ResizeCompleted" and e.component == "rva":
        now = rec.pod_at(e.name, e.t) if rec is not None else None
        size = f": now {fmt_cpu(now.actual_cpu)} CPU, {fmt_mem(now.actual_memory)}" if now is not None else ""
        msg = "applied by the kubelet" + size + ("; raylet resized to match" if "raylet resized" in e.message else "")
    src = "" if e.component == "rva" else f"({e.component}) "
    return f"{e.reason:<17} {who:<30} {src}{msg}"


def shown(e: EventRecord) -> bool:
    if e.is_action:
        return True
    if e.reason not in CONTEXT_EVENTS:
        return False
    return (e.component == "rva" and e.kind == "Pod") if e.reason in RVA_ONLY else e.component != "rva"


class Reporter:
    """``mode``: ``live`` (rich Live), ``plain`` (one line per change), ``quiet`` (nothing until the end)."""

    def __init__(self, mode: str, rec: Recording, phases: Sequence[tuple[str, str]], out: TextIO = sys.stdout):
        self.mode = mode
        self.rec = rec
        self.phases = list(phases)  # (key, title) in order
        self.out = out
        self.current: PhaseSpan | None = None
        self.results: dict[str, bool] = {}
        self.log: list[tuple[float, str, str]] = []  # (t, style, text) for the live view
        self.pending_cpu = 0.0
        self.pending_tasks = 0
        self.clock = 0.0
        self._live: Any = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.mode != "live":
            return
        from rich.console import Console
        from rich.live import Live

        self._live = Live(get_renderable=self.render, console=Console(file=self.out), refresh_per_second=4,
                          transient=False)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    # -- hooks ------------------------------------------------------------------------------------
    def _emit(self, t: float, style: str, text: str) -> None:
        self.log = [*self.log[-29:], (t, style, text)]
        if self.mode == "plain":
            print(f"[{t:6.1f}s] {text}", file=self.out, flush=True)

    def phase_started(self, span: PhaseSpan) -> None:
        self.current = span
        n = next((i for i, (k, _) in enumerate(self.phases) if k == span.key), 0) + 1
        self._emit(span.start, "bold", f"── phase {n}/{len(self.phases)}: {span.title}")

    def phase_ended(self, span: PhaseSpan, ok: bool, what: str) -> None:
        self.results[span.key] = ok
        end = span.end if span.end is not None else span.start
        mark = "✓" if ok else "✗"
        self._emit(end, "bold green" if ok else "bold red", f"{mark} {span.title} ({end - span.start:.1f}s): {what}")

    def event(self, e: EventRecord) -> None:
        if shown(e):
            self._emit(e.t, KIND_STYLE.get(e.reason, ""), event_line(e, self.rec))

    def pod(self, s: PodSample, prev: PodSample | None) -> None:
        if prev is None:
            self._emit(s.t, "dim", f"{'pod':<17} {s.pod:<30} created in {s.group} "
                                   f"({fmt_cpu(s.cpu)} CPU, {fmt_mem(s.memory)})")
        elif s.phase != prev.phase or s.unschedulable != prev.unschedulable:
            state = "Unschedulable" if s.unschedulable and s.phase == "Pending" else s.phase
            self._emit(s.t, "dim", f"{'pod':<17} {s.pod:<30} {state}")

    def note(self, t: float, text: str) -> None:
        self._emit(t, "italic", f"{'…':<17} {text}")

    def demand(self, t: float, tasks: int, cpu: float) -> None:
        self.clock = t
        self.pending_tasks, self.pending_cpu = tasks, cpu

    # -- live rendering ---------------------------------------------------------------------------
    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        progress = Text()
        for i, (key, title) in enumerate(self.phases, 1):
            if key in self.results:
                progress.append(f" {'✓' if self.results[key] else '✗'} {i}. {title} ",
                                style="green" if self.results[key] else "red")
            elif self.current is not None and self.current.key == key:
                progress.append(f" ▶ {i}. {title} ({self.clock - self.current.start:.0f}s) ", style="bold yellow")
            else:
                progress.append(f" · {i}. {title} ", style="dim")
            progress.append("\n")
        pods = Table(title=f"worker pods — t = {self.clock:.0f}s — pending demand: {self.pending_tasks} task(s), "
                           f"{self.pending_cpu:g} CPU", title_justify="left", expand=False)
        for col in ("group", "pod", "phase", "CPU req (applied)", "memory req (applied)", "raylet CPU"):
            pods.add_column(col)
        for s in latest_pods(self.rec).values():
            if s.phase == "Deleted":
                continue
            raylet = latest_raylet(self.rec, s.pod)
            state = "Unschedulable" if s.unschedulable and s.phase == "Pending" else s.phase
            if s.deleting:
                state += " (deleting)"
            running = s.phase == "Running"
            pods.add_row(s.group, s.pod, state, f"{fmt_cpu(s.cpu)} ({fmt_cpu(s.actual_cpu) if running else '-'})",
                         f"{fmt_mem(s.memory)} ({fmt_mem(s.actual_memory) if running else '-'})",
                         "" if raylet is None else f"{raylet:g}")
        lines = []
        height = self._live.console.height if self._live is not None else 60
        room = max(4, height - len(self.phases) - 1 - (len(pods.rows) + 5) - 1)
        for t, style, text in self.log[-room:]:
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"[{t:6.1f}s] ", style="dim")
            line.append(text, style=style)
            lines.append(line)
        return Group(progress, pods, Text("actions and reasons (newest last)", style="bold underline"), *lines)


def latest_pods(rec: Recording) -> dict[str, PodSample]:
    out: dict[str, PodSample] = {}
    for s in rec.pods:
        out[s.pod] = s
    return out


def latest_raylet(rec: Recording, pod: str) -> float | None:
    cpu = None
    for n in rec.ray_nodes:
        if n.pod == pod:
            cpu = None if n.status == "DEAD" else n.cpu_total
    return cpu


def print_summary(summary: Mapping[str, Any], png: str | None, log_path: str | None, out: TextIO = sys.stdout,
                  color: bool | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, force_terminal=color, no_color=color is False, width=160 if not out.isatty() else None)
    table = Table(title="rva demo — what the daemon did", title_justify="left")
    table.add_column("#")
    table.add_column("phase")
    table.add_column("what happened (observed)")
    table.add_column("observed")
    table.add_column("time", justify="right")
    for i, p in enumerate(summary["phases"], 1):
        dur = p.get("duration_s")
        table.add_row(str(i), p["title"], p["what"], "[green]yes[/]" if p["observed"] else "[red]NO[/]",
                      "" if dur is None else f"{dur:.1f}s")
    console.print(table)
    t = summary["totals"]
    acts = ", ".join(f"{k} {v}" for k, v in sorted(t["actions"].items())) or "none"
    console.print(f"actions: {acts}; resizes completed {t['resizes_completed']}; pods seen {t['pods_seen']}, "
                  f"deleted {t['pods_deleted']}; raylets {t['raylets_seen']}; total {summary['duration_s']}s")
    if png:
        console.print(f"timeline: {png}")
    if log_path:
        console.print(f"daemon log: {log_path}")
