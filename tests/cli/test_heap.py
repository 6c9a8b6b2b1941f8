"""The long-running commands (api, consume, dev, analytics consume) freeze their start-up
heap and collect the young generation less often."""

from __future__ import annotations

import gc

from cli.heap import YOUNG_GENERATION_THRESHOLD, settle_heap


def test_settle_heap_freezes_what_exists_and_raises_the_threshold() -> None:
    before = gc.get_threshold()
    try:
        survivor = [object() for _ in range(1000)]
        settle_heap()
        assert gc.get_freeze_count() >= len(survivor)
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
