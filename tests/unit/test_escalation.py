"""docs/policy.md §4 — escalation: `reminders.escalate_from_step`, the copies a reminder carries, its warnings;
the mappings that read the client's other billing contacts; the setting's config errors."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_settings
from bridge.delivery import Delivery
from bridge.errors import ConfigError
from bridge.mapping import freshbooks as fm
from bridge.mapping import quickbooks as qm
from bridge.mapping import xero as xm
from bridge.model import Customer
from bridge.plan import Action, Plan, WarningCode
from bridge.policies.evaluate import evaluate, evaluate_stream, other_contacts
from tests.builders import applied, contract, invoice, run, terms

DUE = "2026-09-07"  # steps of [-3, 1, 7, 14, 30]: 09-04, 09-08, 09-14, 09-21, 10-07
AMY = Customer(id="3", name="Amy's Bird Sanctuary", email="birds@example.com", cc=("treasurer@birds.example",))
ALONE = Customer(id="5", name="Diego Rodriguez", email="diego@example.com")


def escalating(step: int | None = 3, channel: str = "provider", **reminders: Any) -> Any:
    return terms(contract(reminders={"escalate_from_step": step, "channel": channel, **reminders}))


def reminder(plan: Plan) -> Action:
    (found,) = [a for a in plan.actions if a.kind.value == "reminder"]
    return found


# --- who a reminder goes to ------------------------------------------------------------------------


@pytest.mark.parametrize(("today", "step", "copied"), [("2026-09-08", 2, False), ("2026-09-14", 3, True)])
def test_copies_go_from_the_escalation_step_on_and_never_before(today: str, step: int, copied: bool) -> None:
    inv = invoice(customer=AMY, provider="freshbooks")
    sent = reminder(run(inv, today, terms_=escalating(3)))
    assert sent.step == step and sent.to == "birds@example.com"
    assert sent.cc == (("treasurer@birds.example",) if copied else ())
    assert sent.recipients == (("birds@example.com", "treasurer@birds.example") if copied else ("birds@example.com",))


def test_later_steps_keep_copying() -> None:
    inv = invoice(customer=AMY, provider="freshbooks")
    history = [applied("reminder:acme:1001:3", "2026-09-14")]
    later = reminder(run(inv, "2026-09-21", terms_=escalating(3), history=history))
    assert later.step == 4 and later.cc == ("treasurer@birds.example",)


def test_the_plan_lists_every_recipient_and_a_plan_without_escalation_is_unchanged() -> None:
    inv = invoice(customer=AMY, provider="freshbooks")
    off = run(inv, "2026-09-14")
    assert '"cc"' not in off.to_json() and '"bcc"' not in off.to_json()
    no_contacts = Customer(id="3", name=AMY.name, email=AMY.email)
    assert off.to_json() == run(invoice(customer=no_contacts, provider="freshbooks"), "2026-09-14").to_json()
    on = json.loads(run(inv, "2026-09-14", terms_=escalating(3)).to_json())
    (action,) = [a for a in on["actions"] if a["kind"] == "reminder"]
    assert action["to"] == "birds@example.com" and action["cc"] == ["treasurer@birds.example"]
    assert "bcc" not in action
    assert Action.from_dict(action).cc == ("treasurer@birds.example",)  # a reviewed plan reads it back


def test_blind_copies_are_kept_apart_and_no_address_is_repeated() -> None:
    customer = Customer(
        id="4",
        email="cool_cars@example.com",
        cc=("owner@coolcars.example", "COOL_CARS@example.com", "owner@coolcars.example"),
        bcc=("Owner@CoolCars.example", "books@coolcars.example"),
    )
    assert other_contacts(customer) == (("owner@coolcars.example",), ("books@coolcars.example",))
    sent = reminder(run(invoice(customer=customer, provider="freshbooks"), "2026-09-14", terms_=escalating(3)))
    assert sent.cc == ("owner@coolcars.example",) and sent.bcc == ("books@coolcars.example",)


# --- warnings ----------------------------------------------------------------------------------


def test_no_second_contact_the_reminder_goes_as_before_with_one_warning_per_client() -> None:
    invoices = [
        invoice("INV-1001", customer=ALONE, provider="freshbooks"),
        invoice("INV-1002", customer=ALONE, provider="freshbooks"),
        invoice("INV-1003", customer=AMY, provider="freshbooks"),
    ]
    plan = run(invoices, "2026-09-14", terms_=escalating(3))
    sent = {a.invoice.number: a for a in plan.actions if a.kind.value == "reminder"}
    assert set(sent) == {"INV-1001", "INV-1002", "INV-1003"}
    assert sent["INV-1001"].recipients == ("diego@example.com",) and sent["INV-1002"].cc == ()
    (warning,) = [w for w in plan.warnings if w.code == WarningCode.NO_ESCALATION_CONTACT]
    assert "Diego Rodriguez" in warning.detail and "INV-1001, INV-1002" in warning.detail
    assert "contracts.standard.reminders.escalate_from_step" in warning.detail
    # Before the escalation step there is nothing to warn about.
    early = run(invoices, "2026-09-08", terms_=escalating(3))
    assert not [w for w in early.warnings if w.code == WarningCode.NO_ESCALATION_CONTACT]


def test_quickbooks_and_xero_copy_at_every_step_so_the_plan_lists_them_and_warns_once() -> None:
    invoices = [invoice("INV-1001", customer=AMY, provider="quickbooks"), invoice("INV-1002", customer=AMY)]
    plan = run(invoices, "2026-09-08", terms_=escalating(3))  # step 2: before escalation
    assert all(a.cc == ("treasurer@birds.example",) for a in plan.actions if a.kind.value == "reminder")
    (warning,) = [w for w in plan.warnings if w.code == WarningCode.PROVIDER_COPIES]
    assert "before step 3" in warning.detail and "SMTP" in warning.detail
    by_smtp = run(invoices, "2026-09-08", terms_=escalating(3, "smtp"))
    assert all(a.cc == () for a in by_smtp.actions) and not by_smtp.warnings


def test_a_channel_that_cannot_copy_says_so_and_sends_to_the_client_alone() -> None:
    blind = Delivery("contract_text", "Acme Books e-mails the contract's text")  # copies: "none"
    terms_ = terms(contract(reminders={"escalate_from_step": 3}), provider_channels={"acmebooks": blind})
    plan = run(invoice(customer=AMY, provider="acmebooks"), "2026-09-14", terms_=terms_)
    assert reminder(plan).recipients == ("birds@example.com",)
    (warning,) = [w for w in plan.warnings if w.code == WarningCode.CANNOT_COPY]
    assert "cannot copy" in warning.detail


# --- the setting ---------------------------------------------------------------------------------


def _problems(tmp_path: Path, reminders: str) -> str:
    path = tmp_path / "bridge.toml"
    path.write_text(f'[contracts.standard]\napplies_to = ["*"]\n\n[contracts.standard.reminders]\n{reminders}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.exit_code == 2
    return str(caught.value)


@pytest.mark.parametrize(
    ("reminders", "words"),
    [
        ("escalate_from_step = 0", "must be at least 1"),
        ("escalate_from_step = 31", "30"),
        ('escalate_from_step = "4"', "write 4 without quotes"),
        ("schedule = [1, 7]\nrepeat_every_days = 0\nescalate_from_step = 3", "never comes"),
    ],
)
def test_a_bad_escalation_step_is_a_config_error_naming_the_key(tmp_path: Path, reminders: str, words: str) -> None:
    text = _problems(tmp_path, reminders)
    assert "contracts.standard.reminders" in text and "escalate_from_step" in text and words in text, text


def test_the_setting_is_off_by_default_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[contracts.standard]\napplies_to = ["*"]\n')
    assert load_settings(path).terms.contracts[0].reminders.escalate_from_step is None
    path.write_text(
        '[contracts.standard]\napplies_to = ["*"]\n[contracts.standard.reminders]\nescalate_from_step = 4\n'
    )
    assert load_settings(path).terms.contracts[0].reminders.escalate_from_step == 4


# --- the mappings ----------------------------------------------------------------------------------


def test_quickbooks_reads_the_invoices_copy_addresses() -> None:
    raw = {
        "Id": "130",
        "DocNumber": "1037",
        "CustomerRef": {"value": "3", "name": "Amy's Bird Sanctuary"},
        "CurrencyRef": {"value": "USD"},
        "DueDate": "2026-09-07",
        "TotalAmt": "100.00",
        "Balance": "100.00",
        "BillEmail": {"Address": "birds@example.com"},
        "BillEmailCc": {"Address": "treasurer@birds.example, chair@birds.example"},
        "BillEmailBcc": {"Address": "books@birds.example"},
    }
    customer = qm.map_invoice(raw, "acme-qbo", {}).customer
    assert customer.cc == ("treasurer@birds.example", "chair@birds.example")
    assert customer.bcc == ("books@birds.example",)
    plain = {k: v for k, v in raw.items() if not k.startswith("BillEmailC") and k != "BillEmailBcc"}
    assert qm.map_invoice(plain, "acme-qbo", {}).customer.cc == ()


def test_xero_reads_the_contact_persons_included_in_emails() -> None:
    raw = {
        "InvoiceID": "i-1",
        "InvoiceNumber": "INV-0001",
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-1"},
        "CurrencyCode": "USD",
        "DueDate": "/Date(1788739200000+0000)/",
        "Total": "100.00",
        "AmountDue": "100.00",
    }
    contact = {
        "ContactID": "c-1",
        "Name": "Ridgeway University",
        "EmailAddress": "accounts@ridgeway.example",
        "ContactPersons": [
            {"FirstName": "Ana", "EmailAddress": "bursar@ridgeway.example", "IncludeInEmails": True},
            {"FirstName": "Tom", "EmailAddress": "tom@ridgeway.example", "IncludeInEmails": False},
            {"FirstName": "Joe", "EmailAddress": "joe@ridgeway.example"},
        ],
    }
    customer = xm.map_invoice(raw, "acme-xero", {"c-1": contact}).customer
    assert customer.email == "accounts@ridgeway.example" and customer.cc == ("bursar@ridgeway.example",)


def test_freshbooks_reads_the_clients_contacts() -> None:
    raw = {
        "id": 101,
        "invoice_number": "0000001",
        "customerid": 4,
        "currency_code": "USD",
        "due_date": "2026-09-07",
        "amount": {"amount": "100.00", "code": "USD"},
        "outstanding": {"amount": "100.00", "code": "USD"},
        "status": 2,
    }
    client = {
        "id": 4,
        "userid": 4,
        "organization": "Orchard Row Co-op",
        "email": "treasurer@orchardrow.example",
        "contacts": [
            {"contactid": 941, "email": "board@orchardrow.example", "fname": "Anne"},
            {"contactid": 942, "email": "", "fname": "Nobody"},
        ],
    }
    customer = fm.map_invoice(raw, "acme-fb", {"4": client}).customer
    assert customer.cc == ("board@orchardrow.example",)


def test_the_warnings_name_what_came_first_in_the_input_when_the_plan_is_written_as_it_is_evaluated() -> None:
    # The plan lists INV-1001 first, the input INV-1002 (whose client's name the provider spells differently):
    # the warning is the one `evaluate` gives, though `evaluate_stream` evaluates INV-1001 first.
    spelled = Customer(id="5", name="D. Rodriguez", email="diego@example.com")
    invoices = [
        invoice("INV-1002", customer=spelled, provider="freshbooks"),
        invoice("INV-1001", customer=ALONE, provider="freshbooks"),
        invoice("INV-1003", customer=AMY, provider="quickbooks"),
    ]
    for today in ("2026-09-08", "2026-09-14"):
        plan = evaluate(invoices, escalating(3), (), (), date.fromisoformat(today))
        assert b"".join(evaluate_stream(invoices, escalating(3), (), (), date.fromisoformat(today)).json_chunks()) == (
            plan.to_json().encode("utf-8")
        )
    assert [w for w in plan.warnings if "D. Rodriguez" in w.detail and "INV-1001, INV-1002" in w.detail]
