from fractions import Fraction

import pytest

from autoscaler.quantity import (
    QuantityError,
    canonical_quantity,
    format_bytes,
    format_millicores,
    parse_quantity,
    to_bytes,
    to_milli,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1500m", Fraction(3, 2)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1e3", Fraction(1000)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("1k", Fraction(1000)),
        ("128Mi", Fraction(128 * 2**20)),
        (4.0, Fraction(4)),
        (2147483648, Fraction(2147483648)),
        ("1n", Fraction(1, 10**9)),
    ],
)
def test_parse(text: str | int | float, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1.5.5", "2GB", "Gi", "--1", True, None])
def test_parse_rejects(bad: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)  # type: ignore[arg-type]


def test_rounds_up_like_the_api_server() -> None:
    assert to_milli("0.0001") == 1  # 0.1m rounds up to 1m
    assert to_bytes("1.5") == 2
    assert to_milli("1.5") == 1500


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("1000m", "1"), ("0.5", "500m"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("1e3", "1e3"), ("2000", "2k")],
)
def test_canonical(text: str, canonical: str) -> None:
    assert canonical_quantity(text) == canonical


def test_format_helpers_round_trip() -> None:
    for milli in (1, 250, 1000, 1500, 64000):
        assert to_milli(format_millicores(milli)) == milli
    for n in (1, 1000, 1024, 3600 * 2**20, 16 * 2**30):
        assert to_bytes(format_bytes(n)) == n
    assert format_millicores(2000) == "2"
    assert format_bytes(3600 * 2**20) == "3600Mi"
