"""Kubernetes resource quantities ("500m", "64Mi", "1e3") as exact numbers.

Parsing is total: anything that is not a quantity raises ``QuantityError``,
never another exception, and a quantity is at most ``MAX_QUANTITY_CHARS``
characters (the API server's limit on a quantity's digits is far lower), so
a million-digit string costs nothing and cannot overflow ``Decimal``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, DecimalException

_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
MAX_QUANTITY_CHARS = 64

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


class QuantityError(ValueError):
    pass


def parse_quantity(value: object) -> Decimal:
    """Parse a quantity as the API accepts it: a string with suffix, or a number."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression {_QUANTITY.pattern!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError("quantity must be finite")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise QuantityError("quantity must be a string or a number")
    # As the API server's decoder, surrounding whitespace is ignored.
    text = value.strip()
    if len(text) > MAX_QUANTITY_CHARS:
        raise QuantityError(f"quantity must be at most {MAX_QUANTITY_CHARS} characters")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(f"quantities must match the regular expression {_QUANTITY.pattern!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
        if suffix[:1] in ("e", "E"):
            exponent = int(suffix[1:])
            if abs(exponent) > 30:
                raise QuantityError("quantity exponent out of range")
            return base.scaleb(exponent)
        return base * _SUFFIX[suffix]
    except DecimalException as e:  # pragma: no cover - bounded above, so never expected
        raise QuantityError("quantity out of range") from e


def to_milli(q: Decimal) -> int:
    """CPU in millicores, rounded up as the API rounds sub-milli values."""
    return math.ceil(q * 1000)


def to_int(q: Decimal) -> int:
    """Bytes (or any integral unit), rounded up."""
    return math.ceil(q)
