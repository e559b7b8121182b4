"""Rounding, once, from exact values: money to cents and ratios to 4 places, both half up; a division by
zero is ``None``."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

_CENTS = 2
_RATIO_PLACES = 4


def _round_half_up(value: Fraction, places: int) -> Decimal:
    scaled = abs(value) * 10**places
    whole = math.floor(scaled + Fraction(1, 2))
    return Decimal(-whole if value < 0 else whole).scaleb(-places)


def money(value: Fraction | Decimal | int | None) -> Decimal | None:
    """Exact value → Decimal rounded to cents, half up."""
    if value is None:
        return None
    return _round_half_up(Fraction(value), _CENTS)


def ratio(value: Fraction | Decimal | int | None) -> float | None:
    """Exact value → float rounded to 4 places, half up."""
    if value is None:
        return None
    return float(_round_half_up(Fraction(value), _RATIO_PLACES))


def divide(numerator, denominator) -> Fraction | None:
    """numerator / denominator as an exact Fraction; None when either is None or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return Fraction(numerator) / Fraction(denominator)


def fraction(value: Decimal | int | None) -> Fraction:
    return Fraction(value) if value is not None else Fraction(0)
