"""Label and field selectors with the apiserver's grammar and its per-resource field tables.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, ``k>1``,
``k<1``, comma-separated (all must hold). Field selectors: ``f=v``, ``f==v``, ``f!=v`` on the fields each
resource supports; anything else is a 400 like the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.sim.apierrors import ApiError

__all__ = ["FieldSelector", "LabelSelector", "parse_field_selector", "parse_label_selector"]

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=|>|<)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class _Req:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return has and value == self.values[0]
        if self.op == "!=":
            return not has or value != self.values[0]
        if self.op == "in":
            return has and value in self.values
        if self.op == "notin":
            return not has or value not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        try:  # gt / lt compare integers; non-integers never match
            left, right = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return left > right if self.op == ">" else left < right


def _split_top(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[_Req, ...]

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def parse_label_selector(selector: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query value; raises a 400 ``ApiError`` on bad syntax."""
    reqs: list[_Req] = []
    if not selector or not selector.strip():
        return LabelSelector(())
    for part in _split_top(selector):
        if m := _SET_RE.match(part):
            values = tuple(v.strip() for v in m[3].split(",") if v.strip())
            reqs.append(_Req(m[1], m[2], values))
        elif m := _OP_RE.match(part):
            op = "=" if m[2] == "==" else m[2]
            if op in (">", "<") and not re.fullmatch(r"-?\d+", m[3]):
                raise _bad_label(selector, f"for 'Gt', 'Lt' operators, the value must be an integer: {m[3]!r}")
            reqs.append(_Req(m[1], op, (m[3],)))
        elif m := _EXISTS_RE.match(part):
            reqs.append(_Req(m[2], "!" if m[1] else "exists", ()))
        else:
            raise _bad_label(selector, f"unable to parse requirement: {part.strip()!r}")
    return LabelSelector(tuple(reqs))


def _bad_label(selector: str, why: str) -> ApiError:
    return ApiError(400, "BadRequest", f"unable to parse labelSelector {selector!r}: {why}")


# Field selectors the real apiserver supports per resource (pkg/registry/*/strategy.go ToSelectableFields).
_POD_FIELDS = (
    "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
    "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.namespace",
    "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
    "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
)
SELECTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": _POD_FIELDS,
    "nodes": ("metadata.name", "spec.unschedulable"),
    "events": _EVENT_FIELDS,
    "namespaces": ("metadata.name", "status.phase"),
}
_DEFAULT_FIELDS = ("metadata.name", "metadata.namespace")


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    if path == "source":  # events: source.component
        path = "source.component"
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, str, str], ...]  # (field, op, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for fld, op, value in self.requirements:
            actual = _field_value(obj, fld)
            if (actual == value) != (op == "="):
                return False
        return True


def parse_field_selector(selector: str | None, resource: str, custom: bool = False) -> FieldSelector:
    """Parse a ``fieldSelector`` for ``resource``; unknown fields are a 400 like the real server."""
    if not selector or not selector.strip():
        return FieldSelector(())
    allowed = SELECTABLE_FIELDS.get(resource, _DEFAULT_FIELDS)
    reqs: list[tuple[str, str, str]] = []
    for part in selector.split(","):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: '{selector}'; can't understand '{part}'")
        fld, op, value = m[1], "=" if m[2] == "==" else m[2], m[3]
        if fld not in allowed:
            if custom:
                msg = f'"{fld}" is not a known field selector: only "metadata.name", "metadata.namespace"'
            else:
                msg = f"field label not supported: {fld}"
            raise ApiError(400, "BadRequest", msg)
        reqs.append((fld, op, value))
    return FieldSelector(tuple(reqs))


Matcher = Callable[[Mapping[str, Any]], bool]


def object_matcher(label: LabelSelector, fields: FieldSelector) -> Matcher | None:
    """One predicate over an object for both selectors, or None when nothing is selected on."""
    if not label.requirements and not fields.requirements:
        return None

    def match(obj: Mapping[str, Any]) -> bool:
        return label.matches((obj.get("metadata") or {}).get("labels")) and fields.matches(obj)

    return match
