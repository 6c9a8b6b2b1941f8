"""A meter's total for one customer over a period: what a metered invoice line bills. Read
from ClickHouse by the caller's adapter (the scheduler's, the API's): billing/ asks through
`MeterTotal` and never opens a store itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from billing.subscriptions.periods import Period
from contracts.resources import Meter

# (organization, meter, customer, period) -> the meter's total, None when nothing was counted
MeterTotal = Callable[[str, Meter, str, Period], Awaitable[Decimal | None]]
