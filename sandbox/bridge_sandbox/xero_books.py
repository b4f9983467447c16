"""The default Xero organisation of the sandbox seed (deterministic; part of seeds/default.json).

Eight contacts and 25 ACCREC invoices (INV-0001..INV-0025) from late June to 20 October 2026: authorised
(overdue and not yet due), paid, one partly paid (a payment allocated, so it cannot be edited), voided
and draft invoices, two in EUR and GBP. `AmountDue == Total - AmountPaid - AmountCredited` throughout.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bridge_sandbox.xero_where import ms_date

Obj = dict[str, Any]

XERO_TENANT_ID = "6f9d3c1e-2b7a-4c55-9e1d-0a8f4b2c7d31"
XERO_ORG_NAME = "Kea & Kowhai Studio"
_NS = uuid.UUID("2b1f0c55-7d8e-4a3b-9c6d-5e4f3a2b1c0d")

# (name, e-mail)
_CONTACTS: tuple[tuple[str, str], ...] = (
    ("Ridgeway University", "accounts@ridgeway.example"),
    ("Marine Systems", "ap@marinesystems.example"),
    ("Hamilton Smith Ltd", "finance@hamiltonsmith.example"),
    ("Basket Case", "hello@basketcase.example"),
    ("Bayside Club", "treasurer@bayside.example"),
    ("City Agency", "invoices@cityagency.example"),
    ("Petrie McLoud Watson & Associates", "pmw@pmw.example"),
    ("Port & Philip Freight", ""),  # no e-mail: reminders by e-mail are refused
)
# Contact persons of a few contacts (by index): (first name, last name, e-mail, IncludeInEmails).
_PERSONS: dict[int, tuple[tuple[str, str, str, bool], ...]] = {
    0: (("Ana", "Reyes", "bursar@ridgeway.example", True), ("Tom", "Hale", "tom.hale@ridgeway.example", False)),
    2: (("Hugh", "Smith", "hugh@hamiltonsmith.example", True),),
}

# (contact index, issue date, terms days, [(description, quantity, unit amount)], status, paid, currency)
_PLAN: tuple[tuple[int, date, int, tuple[tuple[str, str, str], ...], str, str, str], ...] = (
    (0, date(2026, 6, 24), 30, (("Brand workshop", "1", "1200.00"),), "PAID", "full", "USD"),
    (1, date(2026, 6, 29), 30, (("Logo design", "1", "850.00"), ("Revisions", "3", "75.00")), "PAID", "full", "USD"),
    (2, date(2026, 7, 3), 30, (("Website design", "1", "3400.00"),), "AUTHORISED", "none", "USD"),
    (3, date(2026, 7, 8), 14, (("Illustration", "4", "180.00"),), "PAID", "full", "USD"),
    (4, date(2026, 7, 14), 30, (("Newsletter template", "1", "640.00"),), "VOIDED", "none", "USD"),
    (
        5,
        date(2026, 7, 20),
        30,
        (("Campaign concept", "1", "2250.00"), ("Stock imagery", "6", "45.50")),
        "AUTHORISED",
        "part",
        "USD",
    ),
    (6, date(2026, 7, 27), 30, (("Annual report layout", "1", "4100.00"),), "PAID", "full", "USD"),
    (0, date(2026, 8, 3), 30, (("Signage design", "2", "560.00"),), "AUTHORISED", "none", "USD"),
    (7, date(2026, 8, 7), 30, (("Packaging design", "1", "1875.00"),), "AUTHORISED", "none", "USD"),
    (1, date(2026, 8, 12), 30, (("Brochure", "1", "990.00"),), "AUTHORISED", "part", "EUR"),
    (2, date(2026, 8, 18), 14, (("Photo retouching", "12", "22.50"),), "PAID", "full", "USD"),
    (3, date(2026, 8, 24), 30, (("Social media kit", "1", "720.00"),), "AUTHORISED", "none", "USD"),
    (4, date(2026, 8, 31), 30, (("Event poster", "3", "150.00"),), "AUTHORISED", "none", "GBP"),
    (5, date(2026, 9, 4), 30, (("Copywriting", "10", "95.00"),), "PAID", "full", "USD"),
    (6, date(2026, 9, 9), 30, (("Presentation deck", "1", "1450.00"),), "AUTHORISED", "none", "USD"),
    (0, date(2026, 9, 15), 30, (("UX audit", "1", "2600.00"),), "DRAFT", "none", "USD"),
    (1, date(2026, 9, 18), 30, (("Trade show banner", "2", "410.00"),), "AUTHORISED", "none", "USD"),
    (2, date(2026, 9, 22), 14, (("Icon set", "24", "18.00"),), "AUTHORISED", "none", "USD"),
    (3, date(2026, 9, 28), 30, (("Menu design", "1", "380.00"),), "VOIDED", "none", "USD"),
    (5, date(2026, 10, 1), 30, (("Retainer October", "1", "1500.00"),), "AUTHORISED", "none", "USD"),
    (6, date(2026, 10, 5), 30, (("Infographics", "5", "140.00"),), "AUTHORISED", "none", "USD"),
    (4, date(2026, 10, 8), 30, (("Website maintenance", "1", "300.00"),), "PAID", "full", "USD"),
    (0, date(2026, 10, 12), 30, (("Photography day", "1", "1100.00"),), "AUTHORISED", "none", "USD"),
    (7, date(2026, 10, 15), 30, (("Label redesign", "1", "650.00"),), "DRAFT", "none", "USD"),
    (1, date(2026, 10, 19), 30, (("Video storyboard", "1", "875.00"),), "AUTHORISED", "none", "USD"),
)
_RATES = {"USD": Decimal("1"), "EUR": Decimal("1.0865"), "GBP": Decimal("1.2710")}


def _id(kind: str, n: int) -> str:
    return str(uuid.uuid5(_NS, f"{kind}-{n}"))


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), UTC)


def _midnight(day: date) -> str:
    return ms_date(_at(day, 0))


def _contact(
    contact_id: str, name: str, email: str, updated: datetime, persons: tuple[tuple[str, str, str, bool], ...] = ()
) -> Obj:
    """A customer contact in the shape GET Contacts answers (the empty lists included: clients index them)."""
    return {
        "ContactID": contact_id,
        "ContactStatus": "ACTIVE",
        "Name": name,
        "EmailAddress": email,
        "IsSupplier": False,
        "IsCustomer": True,
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [
            {"FirstName": first, "LastName": last, "EmailAddress": address, "IncludeInEmails": included}
            for first, last, address, included in persons
        ],
        "HasValidationErrors": False,
        "UpdatedDateUTC": ms_date(updated),
    }


def _working_second(rng: Any, day: date, first_hour: int = 8, hours: int = 10) -> datetime:
    """Any second of the working day (real books spread out; clients re-read from their last timestamp)."""
    return _at(day, first_hour) + timedelta(seconds=rng.randrange(hours * 3600))


def build_xero_org() -> Obj:
    """The `xero` section of the default seed."""
    created = date(2026, 6, 20)
    contacts = [
        _contact(_id("contact", n), name, email, _at(created, 9, n), _PERSONS.get(n - 1, ()))
        for n, (name, email) in enumerate(_CONTACTS, start=1)
    ]
    invoices: list[Obj] = []
    payments: list[Obj] = []
    for n, (ci, issued, terms, lines, status, paid, currency) in enumerate(_PLAN, start=1):
        contact = contacts[ci]
        line_items: list[Obj] = [
            {
                "LineItemID": _id(f"line-{n}", k),
                "Description": desc,
                "Quantity": Decimal(qty),
                "UnitAmount": Decimal(unit),
                "AccountCode": "200",
                "TaxType": "NONE",
                "TaxAmount": Decimal("0.00"),
                "LineAmount": (Decimal(qty) * Decimal(unit)).quantize(Decimal("0.01")),
                "Tracking": [],
            }
            for k, (desc, qty, unit) in enumerate(lines, start=1)
        ]
        total: Decimal = sum((Decimal(line["LineAmount"]) for line in line_items), Decimal("0.00"))
        due = issued + timedelta(days=terms)
        updated = _at(issued, 10, n)
        invoice: Obj = {
            "Type": "ACCREC",
            "InvoiceID": _id("invoice", n),
            "InvoiceNumber": f"INV-{n:04d}",
            "Reference": f"PO-{4100 + n}" if n % 3 == 0 else "",
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": _midnight(issued),
            "DueDate": _midnight(due),
            "Status": status,
            "LineAmountTypes": "Exclusive",
            "LineItems": line_items,
            "SubTotal": total,
            "TotalTax": Decimal("0.00"),
            "Total": total,
            "CurrencyCode": currency,
            "CurrencyRate": _RATES[currency],
            "AmountDue": Decimal("0.00") if status == "VOIDED" else total,
            "AmountPaid": Decimal("0.00"),
            "AmountCredited": Decimal("0.00"),
            "Payments": [],
            "CreditNotes": [],
            "SentToContact": status != "DRAFT",
            "HasAttachments": False,
            "IsDiscounted": False,
            "HasErrors": False,
        }
        if paid != "none":
            amount = total if paid == "full" else (total * Decimal("0.4")).quantize(Decimal("0.01"))
            pay_day = min(due + timedelta(days=(n % 9) - 4), date(2026, 10, 19))
            pay_at = _at(pay_day, 14, n)
            payment: Obj = {
                "PaymentID": _id("payment", n),
                "Date": _midnight(pay_day),
                "Amount": amount,
                "BankAmount": amount,
                "Reference": f"Bank transfer {n}",
                "CurrencyRate": _RATES[currency],
                "PaymentType": "ACCRECPAYMENT",
                "Status": "AUTHORISED",
                "IsReconciled": True,
                "HasAccount": True,
                "HasValidationErrors": False,
                "UpdatedDateUTC": ms_date(pay_at),
                "Account": {"AccountID": _id("account", 1), "Code": "090"},
                "Invoice": {
                    "InvoiceID": invoice["InvoiceID"],
                    "InvoiceNumber": invoice["InvoiceNumber"],
                    "Type": "ACCREC",
                    "CurrencyCode": currency,
                    "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
                },
            }
            payments.append(payment)
            invoice["Payments"] = [
                {
                    "PaymentID": payment["PaymentID"],
                    "Date": payment["Date"],
                    "Amount": amount,
                    "Reference": payment["Reference"],
                }
            ]
            invoice["AmountPaid"] = amount
            invoice["AmountDue"] = total - amount
            if paid == "full":
                invoice["FullyPaidOnDate"] = payment["Date"]
            updated = max(updated, pay_at)
        invoice["UpdatedDateUTC"] = ms_date(updated)
        invoices.append(invoice)
    return {
        "tenant_id": XERO_TENANT_ID,
        "Organisation": {"Name": XERO_ORG_NAME},
        "InvoiceReminders": {"Enabled": False},
        "Invoices": invoices,
        "Payments": payments,
        "Contacts": contacts,
    }


def generate_xero_org(n_invoices: int, n_payments: int, seed: int = 0, *, end: date = date(2026, 10, 20)) -> Obj:
    """A large consistent Xero organisation for benchmarks (the `xero` seed section).

    One-line ACCREC invoices over the year before `end`, about one contact per 40 invoices; each payment
    pays part or all of a random invoice that still has something due. Deterministic for a given `seed`.
    """
    import random

    rng = random.Random(seed)
    start = end - timedelta(days=360)
    contacts = [
        _contact(
            _id("bench-contact", n),
            f"Client {n:05d}",
            f"billing{n}@example.com",
            _working_second(rng, start - timedelta(days=rng.randrange(1, 360))),
        )
        for n in range(1, max(10, n_invoices // 40) + 1)
    ]
    invoices: list[Obj] = []
    for n in range(1, n_invoices + 1):
        contact = contacts[rng.randrange(len(contacts))]
        issued = start + timedelta(days=rng.randrange(360))
        amount = Decimal(rng.randrange(5_000, 500_000)) / 100
        invoices.append(
            {
                "Type": "ACCREC",
                "InvoiceID": _id("bench-invoice", n),
                "InvoiceNumber": f"INV-{n:06d}",
                "Reference": "",
                "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
                "Date": _midnight(issued),
                "DueDate": _midnight(issued + timedelta(days=30)),
                "Status": "AUTHORISED",
                "LineAmountTypes": "Exclusive",
                "LineItems": [
                    {
                        "LineItemID": _id(f"bench-line-{n}", 1),
                        "Description": "Services",
                        "Quantity": Decimal(1),
                        "UnitAmount": amount,
                        "AccountCode": "200",
                        "TaxType": "NONE",
                        "TaxAmount": Decimal("0.00"),
                        "LineAmount": amount,
                        "Tracking": [],
                    }
                ],
                "SubTotal": amount,
                "TotalTax": Decimal("0.00"),
                "Total": amount,
                "CurrencyCode": "USD",
                "CurrencyRate": 1,
                "AmountDue": amount,
                "AmountPaid": Decimal("0.00"),
                "AmountCredited": Decimal("0.00"),
                "Payments": [],
                "CreditNotes": [],
                "SentToContact": True,
                "UpdatedDateUTC": ms_date(_working_second(rng, issued)),
            }
        )
    payments: list[Obj] = []
    open_invoices = list(range(len(invoices)))
    for n in range(1, n_payments + 1):
        if not open_invoices:
            break
        slot = rng.randrange(len(open_invoices))
        invoice = invoices[open_invoices[slot]]
        due = Decimal(invoice["AmountDue"])
        amount = due if rng.random() < 0.6 else (due / 2).quantize(Decimal("0.01"))
        paid_on = min(end, parse_midnight(invoice["Date"]) + timedelta(days=rng.randrange(1, 60)))
        payment = {
            "PaymentID": _id("bench-payment", n),
            "Date": _midnight(paid_on),
            "Amount": amount,
            "PaymentType": "ACCRECPAYMENT",
            "Status": "AUTHORISED",
            "UpdatedDateUTC": ms_date(_working_second(rng, paid_on)),
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice["InvoiceNumber"],
                "Type": "ACCREC",
                "CurrencyCode": "USD",
                "Contact": dict(invoice["Contact"]),
            },
        }
        payments.append(payment)
        invoice["AmountPaid"] = Decimal(invoice["AmountPaid"]) + amount
        invoice["AmountDue"] = due - amount
        invoice["Payments"].append({"PaymentID": payment["PaymentID"], "Date": payment["Date"], "Amount": amount})
        invoice["UpdatedDateUTC"] = max(invoice["UpdatedDateUTC"], payment["UpdatedDateUTC"], key=_ms)
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            open_invoices[slot] = open_invoices[-1]
            open_invoices.pop()
    return {"tenant_id": XERO_TENANT_ID, "Invoices": invoices, "Payments": payments, "Contacts": contacts}


def _ms(value: str) -> int:
    return int(value[6:].split("+")[0].split(")")[0])


def parse_midnight(value: str) -> date:
    """The day of a `/Date(ms+0000)/` midnight."""
    return datetime.fromtimestamp(_ms(value) // 1000, UTC).date()
