"""The apiserver's three patch types plus a server-side-apply approximation.

* ``application/strategic-merge-patch+json``: maps merge recursively, ``null`` deletes a key, lists
  with a ``patchMergeKey`` in the real Go types merge element-wise by that key, other lists are replaced;
  directives ``$patch: replace|delete|merge``, ``$retainKeys``, ``$deleteFromPrimitiveList/<f>`` and
  ``$setElementOrder/<f>`` are honoured. Built-in kinds only (custom resources answer 415).
* ``application/merge-patch+json``: RFC 7386 (lists replaced wholesale).
* ``application/json-patch+json``: RFC 6902 with ``test``, ``~0``/``~1`` escaping, ``-`` append, errors on
  missing paths. A JSON object instead of an array is a 400, as from a real server.
* ``application/apply-patch+yaml``: applied as a strategic merge of the YAML document — enough for
  ``kubectl apply --server-side --subresource resize``; field ownership is not tracked.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["APPLY", "JSON_PATCH", "MERGE", "PATCH_TYPES", "STRATEGIC", "PatchError", "apply_patch"]

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC, APPLY)


class PatchError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def _bad(message: str) -> PatchError:
    return PatchError(400, "BadRequest", message)


def _unprocessable() -> PatchError:
    # errors.NewGenericServerResponse(422, ...) with isUnexpectedResponse=false drops the jsonpatch text.
    return PatchError(422, "Invalid", "the server rejected our request due to an error in our request")


def _clone(x: Any) -> Any:
    if type(x) is dict:
        return {k: _clone(v) for k, v in x.items()}
    if type(x) is list:
        return [_clone(v) for v in x]
    return x


def _decode(body: bytes | str | dict[str, Any] | list[Any], what: str) -> Any:
    if isinstance(body, dict | list):
        return _clone(body)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(f"error decoding {what}: {e}") from None


def apply_patch(content_type: str, current: dict[str, Any], body: bytes | str | dict[str, Any] | list[Any],
                kind: str) -> Any:
    """Apply a patch of ``content_type`` to a copy of ``current`` (a ``kind`` object)."""
    if content_type == JSON_PATCH:
        ops = _decode(body, "patch")
        if not isinstance(ops, list):
            raise _bad(f"json: cannot unmarshal {_json_type(ops)} into Go value of type jsonpatch.Patch")
        return apply_json_patch(current, ops)
    if content_type == MERGE:
        p = _decode(body, "patch")
        return merge_patch(_clone(current), p)
    if content_type == APPLY:
        if isinstance(body, dict | list):
            doc: Any = _clone(body)
        else:
            try:
                doc = yaml.safe_load(body)
            except yaml.YAMLError as e:
                raise _bad(f"error decoding YAML: {e}") from None
        if not isinstance(doc, dict):
            raise _bad("invalid object: apply patch must be a YAML or JSON object")
        return strategic_merge(_clone(current), doc, kind)
    p = _decode(body, "patch")
    if not isinstance(p, dict):
        raise _bad(f"json: cannot unmarshal {_json_type(p)} into Go value of type map[string]interface {{}}")
    return strategic_merge(_clone(current), p, kind)


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(v), "number")


# ---------------------------------------------------------------- RFC 7386
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return _clone(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


# ---------------------------------------------------------------- RFC 6902
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable()
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _unprocessable()
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise _unprocessable()
    return i


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise _unprocessable()
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, False)]
        else:
            raise _unprocessable()
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable()
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise _unprocessable()


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise _unprocessable()
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _unprocessable()
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable()
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, False))
    raise _unprocessable()


def apply_json_patch(doc: Any, ops: list[Any]) -> Any:
    doc = _clone(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _bad("json patch operations must be objects with \"op\" and \"path\"")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _unprocessable()
        if kind == "add":
            doc = _add(doc, tokens, _clone(op["value"]))
        elif kind == "remove":
            _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # must exist
            if not tokens:
                doc = _clone(op["value"])
            else:
                parent = _parent(doc, tokens)
                if isinstance(parent, dict):
                    parent[tokens[-1]] = _clone(op["value"])
                else:
                    parent[_index(parent, tokens[-1], False)] = _clone(op["value"])
        elif kind == "test":
            if not _json_equal(_get(doc, tokens), op["value"]):
                raise _unprocessable()
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise _unprocessable()
            src = _pointer(op["from"])
            value = _clone(_get(doc, src))
            if kind == "move":
                if tokens[: len(src)] == src and len(tokens) > len(src):
                    raise _unprocessable()
                _remove(doc, src)
            doc = _add(doc, tokens, value)
        else:
            raise _unprocessable()
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    # JSON numbers compare by value (1 == 1.0) but bool is not a number.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------- strategic merge
# The patchMergeKey / patchStrategy tags of the real Go types (k8s.io/api/core/v1/types.go):
# (type, field) -> ("merge", key, element type) | ("set",) for merge lists of primitives | type name.
_ListRule = tuple[str, str, str]
_META: dict[str, Any] = {"ownerReferences": ("merge", "uid", ""), "finalizers": ("set", "", "")}
SCHEMA: dict[str, dict[str, Any]] = {
    "ObjectMeta": _META,
    "Pod": {"metadata": "ObjectMeta", "spec": "PodSpec", "status": "PodStatus"},
    "PodSpec": {
        "containers": ("merge", "name", "Container"),
        "initContainers": ("merge", "name", "Container"),
        "ephemeralContainers": ("merge", "name", "Container"),
        "volumes": ("merge", "name", ""),
        "imagePullSecrets": ("merge", "name", ""),
        "hostAliases": ("merge", "ip", ""),
        "topologySpreadConstraints": ("merge", "topologyKey", ""),
        "resourceClaims": ("merge", "name", ""),
        "schedulingGates": ("merge", "name", ""),
    },
    "Container": {
        "env": ("merge", "name", ""),
        "ports": ("merge", "containerPort", ""),
        "volumeMounts": ("merge", "mountPath", ""),
        "volumeDevices": ("merge", "devicePath", ""),
        "resources": "ResourceRequirements",
    },
    "ResourceRequirements": {"claims": ("merge", "name", "")},
    "PodStatus": {
        "conditions": ("merge", "type", ""),
        "podIPs": ("merge", "ip", ""),
        "hostIPs": ("merge", "ip", ""),
    },
    "Node": {"metadata": "ObjectMeta", "spec": "NodeSpec", "status": "NodeStatus"},
    "NodeSpec": {"podCIDRs": ("set", "", "")},
    "NodeStatus": {"conditions": ("merge", "type", ""), "addresses": ("merge", "type", "")},
    "Namespace": {"metadata": "ObjectMeta"},
    "ConfigMap": {"metadata": "ObjectMeta"},
    "Event": {"metadata": "ObjectMeta"},
    "Lease": {"metadata": "ObjectMeta"},
}

_PATCH = "$patch"
_RETAIN = "$retainKeys"
_DELETE_PRIM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def strategic_merge(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    return _merge_map(original, patch, kind)


def _merge_map(original: Any, patch: dict[str, Any], type_name: str) -> Any:
    directive = patch.get(_PATCH)
    if directive == "replace":
        return {k: _strip(v) for k, v in patch.items() if k != _PATCH}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise _bad(f"Unknown patch type: {directive}")
    if not isinstance(original, dict):
        original = {}
    fields = SCHEMA.get(type_name, {})
    retain = patch.get(_RETAIN)
    for key, value in patch.items():
        if key in (_PATCH, _RETAIN) or key.startswith(_ORDER):
            continue
        if key.startswith(_DELETE_PRIM):
            name = key[len(_DELETE_PRIM):]
            if isinstance(original.get(name), list) and isinstance(value, list):
                original[name] = [x for x in original[name] if x not in value]
            continue
        if value is None:
            original.pop(key, None)
            continue
        rule = fields.get(key)
        if isinstance(value, dict):
            sub_type = rule if isinstance(rule, str) else ""
            merged = _merge_map(original.get(key), value, sub_type)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list) and isinstance(rule, tuple):
            original[key] = _merge_list(original.get(key), value, rule)
        else:
            original[key] = _strip(value)
    if isinstance(retain, list):
        for k in list(original):
            if k not in retain:
                del original[k]
    return original


def _merge_list(original: Any, patch: list[Any], rule: _ListRule) -> list[Any]:
    strategy, merge_key, elem_type = rule
    if not isinstance(original, list):
        original = []
    if strategy == "set":
        out = list(original)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    # A {"$patch": "replace"} element replaces the whole list with the other elements.
    if any(isinstance(e, dict) and e.get(_PATCH) == "replace" for e in patch):
        return [_strip(e) for e in patch if not (isinstance(e, dict) and e.get(_PATCH) == "replace")]
    out = [_clone(e) for e in original]
    for elem in patch:
        if not isinstance(elem, dict):
            raise _bad(f"map: {elem!r} does not contain declared merge key: {merge_key}")
        if merge_key not in elem:
            raise _bad(f"map: {_go_map(elem)} does not contain declared merge key: {merge_key}")
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(merge_key) == elem[merge_key]),
                   None)
        if elem.get(_PATCH) == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip(elem))
        else:
            out[idx] = _merge_map(out[idx], elem, elem_type)
    return out


def _strip(v: Any) -> Any:
    """Remove directive keys from a value that is inserted as-is."""
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def _go_map(m: dict[str, Any]) -> str:
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(m.items())) + "]"
