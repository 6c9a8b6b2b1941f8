"""Decimals in JSON: the shortest plain string, the same on create and on read.

Postgres returns numeric(30, 12) with all its places ('12.500000000000'); a client wrote
'12.5' and reads '12.5' back. Every Decimal field of an API resource is written this way
(the generated contracts/resources.py uses PlainDecimal).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer


def plain_decimal(value: Decimal) -> str:
    """Decimal('12.500000000000') -> '12.5', Decimal('100.000') -> '100', never an exponent."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


PlainDecimal = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]
