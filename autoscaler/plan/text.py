"""How the planner writes resources and demand in its sentences (fast: called for every action)."""

from __future__ import annotations

from autoscaler.model import CPU, GPU, MEMORY, Demand, Gang, Resources


def fmt_cpu(milli: int) -> str:
    """Millicores as Kubernetes writes them (``1500m``, ``2``) — fast, for sentences."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def fmt_bytes(n: int) -> str:
    """Bytes with the largest exact binary suffix (``3600Mi``, ``16Gi``) — fast, for sentences."""
    for suffix, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def shape_text(shape: Resources) -> str:
    """``{CPU: 2, memory: 4Gi}`` — how Ray users write a shape."""
    parts = []
    for k, v in shape._items:
        if k == CPU:
            parts.append(f"CPU: {v / 1000:g}")
        elif k == MEMORY:
            parts.append(f"memory: {fmt_bytes(v)}")
        elif k == GPU:
            parts.append(f"GPU: {v / 1000:g}")
        else:
            parts.append(f"{k}: {v / 1000:g}")
    return "{" + ", ".join(parts) + "}"


def demand_label(item: Demand | Gang) -> str:
    if isinstance(item, Gang):
        return f"placement group {item.id} ({item.strategy.value}, {len(item.bundles)} bundles)"
    sel = " or ".join(str(s) for s in item.selectors) if item.selectors else "any node"
    return f"{shape_text(item.shape)} on {sel}"
