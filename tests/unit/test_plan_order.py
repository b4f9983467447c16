"""The plan's canonical order: invoice numbers sort naturally, whatever characters they hold."""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.plan import Plan, Skip, SkipCode, natural_key


def reference_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """The definition: runs of decimal digits compare as numbers, the rest as text."""
    return tuple((0, int(part)) if part.isdecimal() else (1, part) for part in re.split(r"(\d+)", text) if part)


def flat(key: tuple[tuple[int, int | str], ...]) -> tuple[int | str, ...]:
    return tuple(x for pair in key for x in pair)


numbers = st.one_of(
    st.from_regex(r"[A-Z]{0,4}-?[0-9]{1,8}", fullmatch=True),
    st.text(alphabet=st.sampled_from("0123456789-/ aZ²³¹٣٤߀①"), max_size=12),
    st.text(max_size=12),
)


@settings(max_examples=2000)
@given(numbers)
def test_natural_key_matches_its_definition(text: str) -> None:
    assert natural_key(text) == flat(reference_key(text))


@settings(max_examples=2000)
@given(numbers, numbers)
def test_natural_keys_order_as_the_definition_does(a: str, b: str) -> None:
    assert (natural_key(a) < natural_key(b)) == (reference_key(a) < reference_key(b))
    assert (natural_key(a) == natural_key(b)) == (reference_key(a) == reference_key(b))


def test_digit_runs_sort_as_numbers_and_superscripts_as_text() -> None:
    ordered = sorted(["INV-10", "INV-9", "INV-1²", "10", "9", "INV-٣"], key=natural_key)
    assert ordered == ["9", "10", "INV-1²", "INV-٣", "INV-9", "INV-10"]


def test_a_plan_with_odd_invoice_numbers_and_keys_builds() -> None:
    skips = [
        Skip("c", "INV-1²", SkipCode.PAID, "invoice is paid", key="reminder:c:1:²"),
        Skip("c", "INV-1", SkipCode.PAID, "invoice is paid", key="reminder:c:1:10"),
        Skip("c", "INV-1", SkipCode.PAID, "invoice is paid", key="reminder:c:1:9"),
    ]
    plan = Plan.build(date(2026, 11, 1), [], skips)
    assert [(s.invoice, s.key) for s in plan.skipped] == [
        ("INV-1", "reminder:c:1:9"),
        ("INV-1", "reminder:c:1:10"),
        ("INV-1²", "reminder:c:1:²"),
    ]
