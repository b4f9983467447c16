"""The emulated QuickBooks query language, without HTTP."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge_sandbox.quickbooks_query import QueryError, parse_query, run_query

PACIFIC = ZoneInfo("America/Los_Angeles")
OBJECTS: list[dict[str, Any]] = [
    {
        "Id": "9",
        "DocNumber": "1009",
        "Active": True,
        "CustomerRef": {"value": "3", "name": "Amy's Bird Sanctuary"},
        "MetaData": {"LastUpdatedTime": "2026-10-01T10:00:00-07:00"},
    },
    {
        "Id": "10",
        "DocNumber": "1010",
        "Active": False,
        "CustomerRef": {"value": "4", "name": "Cool Cars"},
        "MetaData": {"LastUpdatedTime": "2026-10-01T09:00:00-07:00"},
    },
    {
        "Id": "100",
        "DocNumber": "1100",
        "Active": True,
        "CustomerRef": {"value": "3", "name": "Amy's Bird Sanctuary"},
        "MetaData": {"LastUpdatedTime": "2026-10-01T17:30:00Z"},
    },
]


def ids(text: str) -> list[str]:
    return [o["Id"] for o in run_query(parse_query(text), OBJECTS, PACIFIC)]


def test_default_order_is_numeric_id() -> None:
    assert ids("SELECT * FROM Invoice") == ["9", "10", "100"]


def test_timestamps_compare_as_instants_across_offsets() -> None:
    # 17:30Z is 10:30 Pacific: after 10:00-07:00.
    assert ids("select * from Invoice ORDERBY Metadata.LastUpdatedTime") == ["10", "9", "100"]
    assert ids("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2026-10-01T10:00:00'") == ["100"]
    assert ids("SELECT * FROM Invoice ORDER BY Metadata.LastUpdatedTime DESC, Id") == ["100", "9", "10"]


def test_comparisons_in_like_and_refs() -> None:
    assert ids("SELECT * FROM Invoice WHERE Id > '9' AND Id <= '100'") == ["10", "100"]
    assert ids("SELECT * FROM Invoice WHERE DocNumber IN ('1009', '1100')") == ["9", "100"]
    assert ids("SELECT * FROM Invoice WHERE CustomerRef = '3'") == ["9", "100"]
    assert ids("SELECT * FROM Invoice WHERE Active = false") == ["10"]
    assert ids("SELECT * FROM Invoice WHERE CustomerRef.name LIKE 'amy%'") == ["9", "100"]
    assert ids("SELECT * FROM Invoice WHERE DocNumber LIKE '%00'") == ["100"]


def test_paging_clauses_in_either_order() -> None:
    query = parse_query("SELECT * FROM Invoice MAXRESULTS 5 STARTPOSITION 2")
    assert (query.start_position, query.max_results) == (2, 5)
    assert parse_query("SELECT COUNT(*) FROM Invoice WHERE Id = '9'").count


@pytest.mark.parametrize(
    "text",
    [
        "SELECT FROM Invoice",
        "SELECT * FROM Invoice WHERE",
        "SELECT * Invoice",
        "SELECT * FROM Invoice WHERE Id = '1' OR Id = '2'",
        "SELECT * FROM Invoice LIMIT 5",
    ],
)
def test_malformed_queries_are_refused(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_escaped_quotes_in_literals() -> None:
    query = parse_query(r"SELECT * FROM Customer WHERE DisplayName = 'Amy\'s Bird Sanctuary'")
    assert query.where[0].values == ("Amy's Bird Sanctuary",)
