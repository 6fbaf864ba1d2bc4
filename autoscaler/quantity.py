"""Kubernetes resource quantities, parsed and formatted the way the API server does.

Parsing accepts strings (``1500m``, ``2Gi``, ``1e3``, ``0.5``) and JSON numbers (``4.0``,
``2147483648``). Canonical formatting follows ``k8s.io/apimachinery/pkg/api/resource``: the
format of the input (binary SI, decimal SI, decimal exponent) is kept and the value is written
with the largest suffix that represents it exactly (``1000m`` → ``1``, ``0.5`` → ``500m``,
``1024Mi`` → ``1Gi``). Values are kept exact as ``Fraction`` and rounded up to nano units,
as the API server does.
"""

from __future__ import annotations

import functools
import math
import re
from enum import Enum
from fractions import Fraction

__all__ = [
    "QuantityError",
    "QuantityFormat",
    "canonical_quantity",
    "format_bytes",
    "format_millicores",
    "parse_quantity",
    "quantity_format",
    "to_bytes",
    "to_milli",
]


class QuantityError(ValueError):
    """A string or number that is not a Kubernetes quantity."""


class QuantityFormat(Enum):
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"
    DECIMAL_EXPONENT = "DecimalExponent"


_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY_RE = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<dec>[numkMGTPE]?))$"
)
_NANO = Fraction(1, 10**9)


def _split(value: str | int | float) -> tuple[Fraction, QuantityFormat]:
    if isinstance(value, bool):
        raise QuantityError(f"quantity must be a string or a number, not {value!r}")
    if isinstance(value, int):
        return Fraction(value), QuantityFormat.DECIMAL_SI
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"quantity {value!r} is not finite")
        # JSON numbers such as 4.0 or 0.5: decimal SI, exact decimal value of the repr.
        return Fraction(repr(value)), QuantityFormat.DECIMAL_SI
    if not isinstance(value, str):
        raise QuantityError(f"quantity must be a string or a number, not {type(value).__name__}")
    m = _QUANTITY_RE.match(value.strip())
    if not m or value.strip() in ("", "+", "-"):
        raise QuantityError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {value!r})"
        )
    number = Fraction(m["num"]) * (-1 if m["sign"] == "-" else 1)
    if m["bin"]:
        return number * (2 ** _BINARY[m["bin"]]), QuantityFormat.BINARY_SI
    if m["exp"]:
        return number * Fraction(10) ** int(m["exp"][1:]), QuantityFormat.DECIMAL_EXPONENT
    return number * Fraction(10) ** _DECIMAL[m["dec"] or ""], QuantityFormat.DECIMAL_SI


def _round_up_nano(v: Fraction) -> Fraction:
    return Fraction(math.ceil(v / _NANO)) * _NANO


def parse_quantity(value: str | int | float) -> Fraction:
    """Exact value of a quantity, rounded up to nano units like the API server."""
    return _round_up_nano(_split(value)[0])


def quantity_format(value: str | int | float) -> QuantityFormat:
    return _split(value)[1]


@functools.lru_cache(maxsize=16384)
def _milli_of_str(value: str) -> int:
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=16384)
def _bytes_of_str(value: str) -> int:
    return math.ceil(parse_quantity(value))


def to_milli(value: str | int | float) -> int:
    """Quantity in milli-units, rounded up (CPU: ``"1.5"`` → 1500 millicores). Strings are memoised: the
    same few quantities are parsed for every pod on every loop."""
    if type(value) is str:
        return _milli_of_str(value)
    return math.ceil(parse_quantity(value) * 1000)


def to_bytes(value: str | int | float) -> int:
    """Quantity in whole units, rounded up (memory: ``"2Gi"`` → 2147483648 bytes); strings memoised."""
    if type(value) is str:
        return _bytes_of_str(value)
    return math.ceil(parse_quantity(value))


def _format_decimal(v: Fraction, exponent_style: bool) -> str:
    sign = "-" if v < 0 else ""
    mantissa = math.ceil(abs(v) * 10**9)  # v is already a whole number of nano units
    exp = -9
    while mantissa != 0 and mantissa % 1000 == 0 and exp < 18:
        mantissa //= 1000
        exp += 3
    if mantissa == 0:
        return "0"
    if exponent_style:
        return f"{sign}{mantissa}" + (f"e{exp}" if exp != 0 else "")
    suffix = {e: k for k, e in _DECIMAL.items()}[exp]
    return f"{sign}{mantissa}{suffix}"


def _format_binary(v: Fraction) -> str:
    if v.denominator != 1 or -1024 < v < 1024:
        return _format_decimal(v, exponent_style=False)
    sign = "-" if v < 0 else ""
    n = abs(int(v))
    suffix = ""
    for name, shift in _BINARY.items():
        if n % (1 << shift) == 0:
            suffix = name
    if suffix:
        n >>= _BINARY[suffix]
    return f"{sign}{n}{suffix}"


def canonical_quantity(value: str | int | float) -> str:
    """The API server's serialisation of a quantity (``"1000m"`` → ``"1"``, ``"1024Mi"`` → ``"1Gi"``)."""
    exact, fmt = _split(value)
    v = _round_up_nano(exact)
    if fmt is QuantityFormat.BINARY_SI:
        return _format_binary(v)
    return _format_decimal(v, exponent_style=fmt is QuantityFormat.DECIMAL_EXPONENT)


def format_millicores(milli: int) -> str:
    """Millicores as a canonical CPU quantity (1500 → ``"1500m"``, 2000 → ``"2"``)."""
    return _format_decimal(Fraction(milli, 1000), exponent_style=False)


def format_bytes(n: int) -> str:
    """Bytes as a canonical memory quantity, binary suffix when exact (2 GiB → ``"2Gi"``)."""
    return _format_binary(Fraction(n)) if n % 1024 == 0 and n != 0 else _format_decimal(Fraction(n), False)
