"""The usage request rules that run before anything is published."""

from __future__ import annotations

import pytest

from billing.errors import InvalidRequest
from billing.requests.usage import check_unique_identifiers

pytestmark = pytest.mark.unit


def test_distinct_identifiers_pass() -> None:
    check_unique_identifiers(["a", "b", "c"], batch=True)


@pytest.mark.parametrize(("batch", "param"), [(True, "events[2][identifier]"), (False, "identifier")])
def test_the_second_use_of_an_identifier_is_named(batch: bool, param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_unique_identifiers(["a", "b", "a", "b"], batch=batch)
    assert refused.value.param == param
    assert "events[2] repeats events[0]" in refused.value.message
