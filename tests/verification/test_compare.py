"""same_value: what Dataverse normalises compares equal, and nothing else does."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.verify import same_value


@pytest.mark.parametrize(
    ("expected", "actual", "kind"),
    [
        (12.3, 12.30, "Money"),
        ("12.30", 12.3, "Money"),
        (12.345, 12.35, "Money"),  # Dataverse rounded to the currency's 2 places
        (12.345, 12.34, "Money"),  # … half-even
        (1.23456, 1.2346, "Money"),  # … or to 4 (pricing precision)
        (100, 100.0, "Money"),
        (3, 3, "Picklist"),
        ("3", 3, "Picklist"),
        (1, 1, "State"),
        (True, True, "Boolean"),
        ("true", True, "Boolean"),
        (0, False, "Boolean"),
        ("  Müller GmbH ", "Müller GmbH", "String"),
        ("line one\r\nline two", "line one\nline two", "Memo"),
        ("", None, "String"),
        ("   ", None, "String"),
        (None, None, None),
        ("2024-06-30", "2024-06-30", "DateTime"),
        ("2024-06-30T00:00:00Z", "2024-06-30", "DateTime"),
        ("2024-06-30", "2024-06-30T00:00:00Z", "DateTime"),
        ("2021-05-04T13:00:00Z", "2021-05-04T13:00:00Z", "DateTime"),
        ("2021-05-04T13:00:00", "2021-05-04T13:00:00Z", "DateTime"),  # no zone: UTC
        ("2021-05-04T15:00:00+02:00", "2021-05-04T13:00:00Z", "DateTime"),
        ("2021-05-04T13:00:00.123Z", "2021-05-04T13:00:00Z", "DateTime"),
        ("2021-05-04T13:00:00Z", "2021-05-04T13:00:00.000+00:00", None),
        ("7EB682F1-0000-4000-8000-000000000001", "7eb682f1-0000-4000-8000-000000000001", None),
    ],
)
def test_values_dataverse_normalises_compare_equal(
    expected: Any, actual: Any, kind: str | None
) -> None:
    assert same_value(expected, actual, kind)


@pytest.mark.parametrize(
    ("expected", "actual", "kind"),
    [
        (12.3, 12.4, "Money"),
        (12.4, 12, "Money"),  # rounding to whole units is not a precision Dataverse uses here
        (12.3456, 12.3, "Money"),
        ("12.3x", 12.3, "Money"),
        (3, 4, "Picklist"),
        (True, False, "Boolean"),
        (True, None, "Boolean"),
        ("yes", True, "Boolean"),
        ("Müller", "müller", "String"),  # case counts
        ("Müller", "MÃ¼ller", "String"),
        ("Müller", None, "String"),
        (None, "Müller", "String"),
        ("2024-06-30", "2024-07-01", "DateTime"),
        ("2021-05-04T13:00:00Z", "2021-05-04T13:00:01Z", "DateTime"),
        ("2021-05-04T13:00:00+02:00", "2021-05-04T13:00:00Z", "DateTime"),
        ("2024-06-30", "2024-06-30T00:00:00Z", "String"),  # text is text
        (42, 43, "Integer"),
        ("7eb682f1-0000-4000-8000-000000000001", "7eb682f1-0000-4000-8000-000000000002", None),
    ],
)
def test_real_differences_do_not_compare_equal(
    expected: Any, actual: Any, kind: str | None
) -> None:
    assert not same_value(expected, actual, kind)
