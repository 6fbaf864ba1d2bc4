"""The demo's PNG timeline: per worker group, capacity (sum of pod requests) against pending Ray demand,
with every daemon action marked where it happened. Drawn with matplotlib's Agg backend (no display)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoscaler.demo_record import GI, PodSample, Recording

KIND_COLOR = {"GrowPod": "tab:green", "ShrinkPod": "tab:cyan", "ScaleOut": "tab:orange", "RemovePod": "tab:purple",
              "RevertResize": "tab:red"}
KIND_SHORT = {"GrowPod": "grow", "ShrinkPod": "shrink", "ScaleOut": "scale-out", "RemovePod": "remove",
              "RevertResize": "revert"}


@dataclass
class Series:
    t: list[float]
    v: list[float]


def capacity_series(rec: Recording, group: str, *, resource: str = "cpu", applied: bool = True) -> Series:
    """Step series of a group's capacity: Σ over its pods of the applied requests of *running* pods
    (``applied``), or of the spec requests of every pod not yet deleted (``applied=False``: what was asked)."""
    state: dict[str, PodSample] = {}
    t: list[float] = [0.0]
    v: list[float] = [0.0]
    for s in rec.pods:
        if s.group != group:
            continue
        state[s.pod] = s
        total = 0.0
        for p in state.values():
            if p.phase == "Deleted":
                continue
            if applied:
                if p.phase != "Running":
                    continue
                total += p.actual_cpu / 1000 if resource == "cpu" else p.actual_memory / GI
            else:
                total += p.cpu / 1000 if resource == "cpu" else p.memory / GI
        t.append(s.t)
        v.append(total)
    end = rec.ended_at if rec.ended_at is not None else (t[-1] if t else 0.0)
    t.append(max(end, t[-1]))
    v.append(v[-1])
    return Series(t, v)


def demand_series(rec: Recording, group: str) -> Series:
    t = [0.0] + [d.t for d in rec.demand]
    v = [0.0] + [d.by_group.get(group, 0.0) for d in rec.demand]
    end = rec.ended_at if rec.ended_at is not None else t[-1]
    t.append(max(end, t[-1]))
    v.append(v[-1])
    return Series(t, v)


def raylet_series(rec: Recording, group: str) -> Series:
    """Σ of the group's raylet CPU totals as the GCS reported them (Ray's view of the capacity)."""
    state: dict[str, float] = {}
    t: list[float] = [0.0]
    v: list[float] = [0.0]
    for n in rec.ray_nodes:
        if n.group != group:
            continue
        state[n.node_id] = 0.0 if n.status == "DEAD" else n.cpu_total
        t.append(n.t)
        v.append(sum(state.values()))
    end = rec.ended_at if rec.ended_at is not None else t[-1]
    t.append(max(end, t[-1]))
    v.append(v[-1])
    return Series(t, v)


def action_marks(rec: Recording, group: str) -> list[tuple[float, str, str]]:
    """(t, kind, label) of the daemon actions on this group's pods (or scale-outs of it)."""
    out = []
    for e in rec.actions():
        g = e.group if e.reason == "ScaleOut" else rec.group_of(e.pod)
        if g == group:
            out.append((e.t, e.reason, f"{KIND_SHORT.get(e.reason, e.reason)} [{e.code}]"))
    return out


def render_timeline(rec: Recording, path: Path, groups: Sequence[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups) if groups is not None else [g.name for g in rec.groups]
    n = max(1, len(names))
    fig, axes = plt.subplots(n, 2, figsize=(15, 2.3 * n + 1.2), sharex=True, squeeze=False)
    end = rec.ended_at or max((s.t for s in rec.pods), default=1.0)
    shades = ("#f3f3f3", "#ffffff")
    for row, name in enumerate(names):
        for col, resource in enumerate(("cpu", "memory")):
            ax = axes[row][col]
            for i, ph in enumerate(rec.phases):
                ax.axvspan(ph.start, ph.end if ph.end is not None else end, color=shades[i % 2], zorder=0)
            applied = capacity_series(rec, name, resource=resource, applied=True)
            asked = capacity_series(rec, name, resource=resource, applied=False)
            ax.step(asked.t, asked.v, where="post", color="tab:gray", linestyle="--", linewidth=1,
                    label="requested (incl. pending pods)")
            ax.step(applied.t, applied.v, where="post", color="tab:blue", linewidth=2,
                    label="capacity (applied requests, running pods)")
            if resource == "cpu":
                r = raylet_series(rec, name)
                ax.step(r.t, r.v, where="post", color="tab:green", linewidth=1, alpha=0.8,
                        label="raylet CPU total (Ray's view)")
                d = demand_series(rec, name)
                ax.step(d.t, d.v, where="post", color="tab:red", linewidth=1.5, label="pending demand (CPU)")
            top = max([*applied.v, *asked.v, *(demand_series(rec, name).v if resource == "cpu" else [0.0]), 1.0])
            ax.set_ylim(0, top * 1.45)
            for t, kind, label in action_marks(rec, name):
                ax.axvline(t, color=KIND_COLOR.get(kind, "black"), linestyle=":", linewidth=1.5)
                if col == 0:
                    ax.annotate(label, (t, top * 1.4), rotation=90, fontsize=7, va="top", ha="right",
                                color=KIND_COLOR.get(kind, "black"))
            ax.set_ylabel(f"{name}\n{'CPU (cores)' if resource == 'cpu' else 'memory (GiB)'}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title("CPU: capacity vs pending demand" if resource == "cpu" else "memory: capacity",
                             fontsize=10, pad=14)
                first = rec.phases[0].start if rec.phases else end
                ax.annotate("setup", (first / 2, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                            ha="center", va="bottom", color="dimgray")
                for ph_i, ph in enumerate(rec.phases):
                    mid = (ph.start + (ph.end if ph.end is not None else end)) / 2
                    ax.annotate(f"{ph_i + 1}", (mid, 1.0), xycoords=("data", "axes fraction"), fontsize=9,
                                fontweight="bold", ha="center", va="bottom")
    for ax in axes[-1]:
        ax.set_xlabel("seconds since the demo started")
        ax.set_xlim(0, end * 1.03)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for kind, color in KIND_COLOR.items():
        handles.append(plt.Line2D([0], [0], color=color, linestyle=":", linewidth=1.5))
        labels.append(f"rva {kind}")
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("rva demo — capacity vs demand per worker group, daemon actions marked", fontsize=12)
    phases = "   ".join(f"{i}. {ph.title} ({(ph.end or end) - ph.start:.0f}s)" for i, ph in enumerate(rec.phases, 1))
    fig.text(0.5, 0.945, f"phases (shaded): {phases}", ha="center", fontsize=8.5, color="dimgray")
    fig.tight_layout(rect=(0, 0.06, 1, 0.935))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
