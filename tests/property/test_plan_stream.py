"""`bridge --json evaluate` writes its plan while it evaluates it (`evaluate_stream`, `PlanStream`): the bytes are
those of the plan `evaluate` gives, whatever the order of the input, with invoices that share a number, and across
the boundaries of the encoded chunks and of the skips' spooled file."""

from __future__ import annotations

import dataclasses
import random
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import plan as plan_module
from bridge.policies.evaluate import evaluate, evaluate_stream
from tests.property.strategies import Scenario, scenarios


@given(scenarios(max_invoices=6), st.integers(0, 2**32), st.booleans(), st.sampled_from([1, 3, 2_000]))
def test_a_streamed_plan_is_the_evaluated_plan_byte_for_byte(s: Scenario, seed: int, twins: bool, chunk: int) -> None:
    rng = random.Random(seed)
    invoices = list(s.invoices)
    if twins:  # another invoice with the same number (another id): both share one place in the plan
        invoices.append(dataclasses.replace(rng.choice(invoices), id=f"twin-{rng.randrange(100)}"))
    rng.shuffle(invoices)
    expected = evaluate(invoices, s.terms, s.history, s.renegotiations, s.today)
    with pytest.MonkeyPatch.context() as patch, tempfile.SpooledTemporaryFile(max_size=64) as spool:
        patch.setattr(plan_module, "_CHUNK", chunk)
        stream = evaluate_stream(invoices, s.terms, s.history, s.renegotiations, s.today)
        written = b"".join(stream.json_chunks(spool))  # the skips go to a file after a few, as the shell's do
        assert written == b"".join(expected.json_chunks())
    assert written == expected.to_json().encode("utf-8")
    assert stream.summary() == expected.summary()
    assert tuple(stream.errors) == expected.errors
