"""Turn the workspace's decisions into the Plan: one action per pod or group, each with a reason
and a sentence, checked against the guards. (Dry run is applied by :func:`autoscaler.plan.plan`.)"""

from __future__ import annotations

from autoscaler.actions import Action, GrowPod, Plan, Reason, RemovePod, RevertResize, ScaleOut, ShrinkPod, Unserved
from autoscaler.model import CPU, MEMORY, Resources
from autoscaler.plan.guards import limits_for, resize_problem, resized_requests
from autoscaler.plan.text import fmt_bytes, fmt_cpu, shape_text
from autoscaler.plan.workspace import RC, RM, Workspace

_GROWTH_PRECEDENCE = (Reason.OOM_KILLED, Reason.MEMORY_PRESSURE, Reason.DEMAND_FITS_IN_PLACE)


def _served_text(
    served: dict[tuple[str, Resources], int], limit: int = 3, texts: dict[tuple[str, Resources], str] | None = None
) -> str:
    """``2× {CPU: 1}, 1× {CPU: 2} and 3 more shapes``; ``texts`` caches each shape's text."""
    parts = []
    for key, n in list(served.items())[:limit]:
        text = texts.get(key) if texts is not None else None
        if text is None:
            text = key[0] + shape_text(key[1])
            if texts is not None:
                texts[key] = text
        parts.append(f"{n}× {text}")
    more = len(served) - limit
    return ", ".join(parts) + (f" and {more} more shapes" if more > 0 else "")


def _grow_actions(ws: Workspace) -> list[Action]:
    out: list[Action] = []
    texts: dict[tuple[str, Resources], str] = {}
    for r in sorted(ws.growth):
        pod = ws.pod(r)
        assert pod is not None
        before = dict(pod.requests._items)
        was_cpu, was_mem = before.get(CPU, 0), before.get(MEMORY, 0)
        cpu = ws.reqs[r][RC] + ws.growns[r][RC]
        mem = ws.reqs[r][RM] + ws.growns[r][RM]
        entry = ws.growth[r]
        if (cpu == was_cpu and mem == was_mem) or not (entry.served or entry.reasons or any(ws.growns[r])):
            continue  # nothing changes, or (a settle round) a pod grown before that grows no further
        requests = resized_requests(pod, cpu, mem)
        limits = limits_for(pod, requests)
        problem = resize_problem(pod, requests, limits, ws.snapshot.server_minor)
        if problem is not None:
            ws.notes.append(f"{pod.name}: not grown: {problem}")
            continue
        reasons = [reason for reason, _ in entry.reasons]
        if entry.served:
            reasons.append(Reason.DEMAND_FITS_IN_PLACE)
        reason = next((c for c in _GROWTH_PRECEDENCE if c in reasons), Reason.DEMAND_FITS_IN_PLACE)
        changes = []
        if cpu != was_cpu and CPU in before:
            changes.append(f"cpu {fmt_cpu(was_cpu)} → {fmt_cpu(cpu)}")
        if mem != was_mem and MEMORY in before:
            changes.append(f"memory {fmt_bytes(was_mem)} → {fmt_bytes(mem)}")
        sentences = [why for _, why in entry.reasons]
        if entry.served:
            mode = ws.group_policy[ws.row_group[r]].vertical.sizing.mode
            sentences.insert(0, f"pending {_served_text(entry.served, texts=texts)} fit once grown ({mode} sizing)")
        why = f"grow {', '.join(changes)} in place: " + "; ".join(sentences)
        # Ray gains the memory grown for demand less the reserve debt it pays (pressure growth: none)
        ray_memory = max(0, ws.growns[r][RM] - ws.debts[r])
        out.append(GrowPod(pod.name, requests, limits, reason, why, ray_memory=ray_memory))
    return out


def _scale_actions(ws: Workspace) -> list[Action]:
    out: list[Action] = []
    for g in sorted(ws.new_pods):
        entry = ws.new_pods[g]
        if entry.replicas <= 0:
            continue
        group = ws.group(g)
        hosts = max(1, group.num_of_hosts)
        total = group.replicas + entry.replicas
        if entry.served:
            reason = Reason.FALLBACK_GROUP if entry.fallback else Reason.DEMAND_NEEDS_NEW_PODS
            lead = "fallback group: " if entry.fallback else ""
            why = f"{lead}pending {_served_text(entry.served)} did not fit free capacity or in-place growth"
        else:
            reason = Reason.MIN_REPLICAS
            why = f"below its minimum of {ws.min_replicas(g)} replicas"
        why = f"{why}; {group.name} {group.replicas} → {total} replicas"
        out.append(ScaleOut(group.name, entry.replicas * hosts, total, reason, why))
    return out


def assemble(ws: Workspace) -> Plan:
    """The round's actions and notes; its unserved demand is :func:`unserved`, asked for only of the
    round whose view the plan keeps."""
    reverts = [a for a in ws.actions if isinstance(a, RevertResize)]
    shrinks = [a for a in ws.actions if isinstance(a, ShrinkPod)]
    removals = [a for a in ws.actions if isinstance(a, RemovePod)]
    actions = (*reverts, *_grow_actions(ws), *_scale_actions(ws), *shrinks, *removals)
    notes = list(dict.fromkeys(ws.notes))  # de-duplicated, order kept
    return Plan(actions=actions, notes=tuple(notes))


def unserved(ws: Workspace) -> tuple[Unserved, ...]:
    return tuple(u.unserved() for u in ws.unserved)
