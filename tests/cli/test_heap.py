"""The long-running commands (api, consume, dev, analytics consume) freeze their start-up
heap and collect the young generation less often."""

from __future__ import annotations

import gc

import pytest

from cli.heap import YOUNG_GENERATION_THRESHOLD, settle_heap

pytestmark = pytest.mark.unit


def test_settle_heap_freezes_what_exists_and_raises_the_threshold() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        survivors = [[] for _ in range(1000)]  # lists are tracked by the collector (plain objects are not)
        settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen >= len(survivors)
        gc.collect()  # a full collection no longer counts them: they stay frozen
        assert gc.get_freeze_count() == frozen
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
