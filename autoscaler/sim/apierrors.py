"""Kubernetes API errors as ``Status`` bodies, built the way ``k8s.io/apimachinery/pkg/api/errors`` does.

``FieldError`` renders like ``field.Error`` (``spec: Invalid value: "Burstable": …``) and an ``invalid``
error aggregates several of them as ``Pod "x" is invalid: [e1, e2]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

__all__ = ["ApiError", "FieldError", "invalid"]

# field.ErrorType → (rendered type, Status cause reason)
_FIELD_TYPES = {
    "Invalid": ("Invalid value", "FieldValueInvalid"),
    "Forbidden": ("Forbidden", "FieldValueForbidden"),
    "Required": ("Required value", "FieldValueRequired"),
    "NotSupported": ("Unsupported value", "FieldValueNotSupported"),
    "Duplicate": ("Duplicate value", "FieldValueDuplicate"),
}
# Types whose rendering includes the bad value (field.Error.ErrorBody).
_WITH_VALUE = {"Invalid", "NotSupported", "Duplicate"}


class ApiError(Exception):
    """An HTTP error answered as a Kubernetes ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _go_value(value: Any) -> str:
    # %q for strings, %v for numbers; anything else as JSON (newer apiservers print structs as JSON).
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: ``type`` is Invalid, Forbidden, Required, NotSupported or Duplicate."""

    type: str
    field: str
    detail: str = ""
    value: Any = None
    supported: tuple[str, ...] = dc_field(default=())

    def body(self) -> str:
        name, _ = _FIELD_TYPES[self.type]
        s = name
        if self.type in _WITH_VALUE:
            s = f"{name}: {_go_value(self.value)}"
        if self.type == "NotSupported" and self.supported:
            return s + ": supported values: " + ", ".join(json.dumps(v) for v in self.supported)
        if self.detail:
            s += f": {self.detail}"
        return s

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def cause(self) -> dict[str, str]:
        return {"reason": _FIELD_TYPES[self.type][1], "message": self.body(), "field": self.field}


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """``errors.NewInvalid``: 422 with the aggregated message and one cause per field error."""
    msgs: list[str] = []
    for e in errors:  # utilerrors.NewAggregate drops duplicate messages
        if str(e) not in msgs:
            msgs.append(str(e))
    agg = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    qualified = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {agg}', details)
