"""Garbage-collector settings for the long-running processes (API, consumers).

Everything imported and built at start-up (modules, ORM mappers, pydantic models, routes)
lives as long as the process, yet CPython's collector walks it again at every full
collection: 15-67 ms a time for the consumer's ~160,000 start-up objects. Frozen, those
objects are left out (no full collection ran in the consumer during a whole benchmark
afterwards); and with a larger first generation, collections come less often (the many
short-lived objects of a request die young either way). Measured by
`bench/write_path.py`, p99 at 500 requests/s over four runs each: 85.8 / 132.1 / 222.6 /
117.9 ms without, 57.7 / 90.1 / 89.7 / 49.2 ms with.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 50_000


def settle_heap() -> None:
    """Call once imports and start-up objects are in place, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, 20, 20)
