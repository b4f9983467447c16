"""The default FreshBooks account of the sandbox seed (deterministic; part of seeds/default.json), and large
generated accounts for benchmarks.

Seven clients and 20 invoices (0000001..0000020) from late June to 19 October 2026: sent and viewed (overdue
and not yet due), paid, partly paid, one disputed, one draft, one archived, one deleted, one in EUR, and one
carrying a late fee FreshBooks added on its own. Two clients keep FreshBooks' own late fees allowed (as a new
account has it); the firm turned them off for the others. `outstanding == amount - paid` throughout, and
`updated` is US/Eastern wall time as FreshBooks writes it.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bridge_sandbox.freshbooks import EASTERN, V3_STATUS, stamp

Obj = dict[str, Any]

FRESHBOOKS_ACCOUNT_ID = "kX7mQ2"
FRESHBOOKS_BUSINESS = {"id": 4401, "name": "Cedar & Slate Architects"}
_CENT = Decimal("0.01")

# (organization, first, last, e-mail, allow_late_fees)
_CLIENTS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("Northwind Traders", "Nancy", "Davolio", "ap@northwind.example", True),
    ("Blue Heron Bakery", "Andrew", "Fuller", "andrew@blueheron.example", False),
    ("Lakeside Dental", "Janet", "Leverling", "office@lakesidedental.example", False),
    ("Orchard Row Co-op", "Margaret", "Peacock", "treasurer@orchardrow.example", True),
    ("Quarry Street Gallery", "Steven", "Buchanan", "steven@quarrygallery.example", False),
    ("Meridian Yoga", "Laura", "Callahan", "laura@meridianyoga.example", False),
    ("Tidewater Marine", "Robert", "King", "", False),  # no e-mail: no reminders by e-mail
)
# A few clients' other contacts (by client index): (first name, last name, e-mail); listed with include[]=contacts.
_CONTACTS: dict[int, tuple[tuple[str, str, str], ...]] = {
    0: (("Andrew", "Fuller", "controller@northwind.example"),),
    3: (("Anne", "Dodsworth", "board@orchardrow.example"), ("Mike", "Suyama", "mike@orchardrow.example")),
}

# (client index, issue date, terms days, [(name, qty, unit)], kind, currency)
# kinds: sent, viewed, paid, part, disputed, draft, archived, deleted, fbfee (FreshBooks' own late fee added)
_PLAN: tuple[tuple[int, date, int, tuple[tuple[str, str, str], ...], str, str], ...] = (
    (0, date(2026, 6, 26), 30, (("Site survey", "1", "1800.00"),), "paid", "USD"),
    (1, date(2026, 7, 2), 30, (("Storefront concept", "1", "2400.00"), ("Renderings", "3", "150.00")), "sent", "USD"),
    (2, date(2026, 7, 9), 30, (("Clinic fit-out drawings", "1", "3900.00"),), "part", "USD"),
    (3, date(2026, 7, 15), 30, (("Feasibility study", "1", "1250.00"),), "fbfee", "USD"),
    (4, date(2026, 7, 21), 14, (("Lighting plan", "1", "680.00"),), "paid", "USD"),
    (5, date(2026, 7, 28), 30, (("Studio layout", "1", "950.00"),), "disputed", "USD"),
    (0, date(2026, 8, 4), 30, (("Permit drawings", "1", "2100.00"),), "viewed", "USD"),
    (6, date(2026, 8, 10), 30, (("Boathouse sketch", "1", "720.00"),), "sent", "USD"),
    (1, date(2026, 8, 17), 30, (("Signage details", "2", "260.00"),), "archived", "USD"),
    (2, date(2026, 8, 24), 30, (("Site visits", "4", "175.00"),), "deleted", "USD"),
    (3, date(2026, 8, 31), 30, (("Community hall review", "1", "1500.00"),), "part", "EUR"),
    (4, date(2026, 9, 4), 30, (("Gallery extension concept", "1", "3200.00"),), "sent", "USD"),
    (5, date(2026, 9, 11), 14, (("Acoustic consult", "3", "120.00"),), "paid", "USD"),
    (0, date(2026, 9, 18), 30, (("Construction admin", "10", "95.00"),), "viewed", "USD"),
    (1, date(2026, 9, 24), 30, (("Kitchen layout", "1", "880.00"),), "draft", "USD"),
    (2, date(2026, 9, 30), 30, (("Waiting room refresh", "1", "1350.00"),), "sent", "USD"),
    (3, date(2026, 10, 5), 30, (("Garden pavilion", "1", "2750.00"),), "sent", "USD"),
    (4, date(2026, 10, 9), 30, (("Catalogue photos", "6", "85.00"),), "paid", "USD"),
    (5, date(2026, 10, 14), 30, (("Retreat masterplan", "1", "4200.00"),), "sent", "USD"),
    (0, date(2026, 10, 19), 30, (("Warehouse retrofit", "1", "5600.00"),), "sent", "USD"),
)
FRESHBOOKS_FEE = ("Late Fee", "Late fee applied by FreshBooks", "18.75")  # name, description, amount


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), EASTERN)


def _money(amount: Decimal, code: str) -> Obj:
    return {"amount": str(amount.quantize(_CENT)), "code": code}


def _client(n: int, org: str, first: str, last: str, email: str, late_fees: bool, updated: datetime) -> Obj:
    return {
        "id": n,
        "userid": n,
        "organization": org,
        "fname": first,
        "lname": last,
        "email": email,
        "currency_code": "USD",
        "allow_late_fees": late_fees,
        "allow_late_notifications": late_fees,
        "vis_state": 0,
        "updated": stamp(updated),
    }


def _line(invoice_id: int, lineid: int, name: str, qty: str, unit: str, code: str, updated: str, desc: str = "") -> Obj:
    return {
        "lineid": lineid,
        "invoiceid": invoice_id,
        "name": name,
        "description": desc,
        "qty": qty,
        "unit_cost": {"amount": unit, "code": code},
        "amount": _money(Decimal(qty) * Decimal(unit), code),
        "type": 0,
        "updated": updated,
    }


def _invoice(
    invoice_id: int,
    number: str,
    client: Obj,
    issued: date,
    terms: int,
    lines: list[Obj],
    code: str,
    status: int,
    paid: Decimal,
    created: datetime,
) -> Obj:
    total = sum((Decimal(line["amount"]["amount"]) for line in lines), Decimal(0))
    outstanding = total - paid
    if outstanding == 0 and total > 0:
        status, payment_status = 4, "paid"
    elif paid > 0:
        status, payment_status = (0 if status == 0 else 8), "partial"
    else:
        payment_status = "unpaid"
    return {
        "id": invoice_id,
        "invoiceid": invoice_id,
        "accountid": FRESHBOOKS_ACCOUNT_ID,
        "invoice_number": number,
        "customerid": client["id"],
        "organization": client["organization"],
        "fname": client["fname"],
        "lname": client["lname"],
        "create_date": issued.isoformat(),
        "due_date": (issued + timedelta(days=terms)).isoformat(),
        "due_offset_days": terms,
        "currency_code": code,
        "amount": _money(total, code),
        "paid": _money(paid, code),
        "outstanding": _money(outstanding, code),
        "status": status,
        "v3_status": V3_STATUS[status],
        "display_status": V3_STATUS[status],
        "payment_status": payment_status,
        "date_paid": None,
        "vis_state": 0,
        "notes": "",
        "terms": f"Net {terms}",
        "po_number": None,
        "auto_bill": False,
        "created_at": stamp(created),
        "updated": stamp(created),
        "lines": lines,
    }


def build_freshbooks_account() -> Obj:
    """The `freshbooks` section of the default seed."""
    created = _at(date(2026, 6, 20), 9)
    clients = [_client(n, *spec, created + timedelta(minutes=n)) for n, spec in enumerate(_CLIENTS, start=1)]
    for index, contacts in _CONTACTS.items():
        clients[index]["contacts"] = [
            {"contactid": 900 + 10 * index + k, "userid": 900 + 10 * index + k, "fname": first, "lname": last,
             "email": address, "username": "", "phone1": "", "phone2": ""}
            for k, (first, last, address) in enumerate(contacts, start=1)
        ]  # fmt: skip
    invoices: list[Obj] = []
    payments: list[Obj] = []
    for n, (ci, issued, terms, specs, kind, code) in enumerate(_PLAN, start=1):
        invoice_id = 100 + n
        made = _at(issued, 10, n)
        lines = [
            _line(invoice_id, k, name, qty, unit, code, stamp(made)) for k, (name, qty, unit) in enumerate(specs, 1)
        ]
        updated = made
        if kind == "fbfee":
            # FreshBooks' own late fee, added by FreshBooks some days after the due date.
            fee_at = _at(issued + timedelta(days=terms + 3), 6, 0)
            name, desc, amount = FRESHBOOKS_FEE
            lines.append(_line(invoice_id, len(lines) + 1, name, "1", amount, code, stamp(fee_at), desc))
            updated = fee_at
        total = sum((Decimal(line["amount"]["amount"]) for line in lines), Decimal(0))
        paid = Decimal(0)
        due = issued + timedelta(days=terms)
        if kind in ("paid", "part"):
            paid = total if kind == "paid" else (total * Decimal("0.4")).quantize(_CENT)
            pay_day = min(due + timedelta(days=(n % 7) - 3), date(2026, 10, 19))
            pay_at = _at(pay_day, 15, n)
            payments.append(
                {
                    "id": 5000 + n,
                    "logid": 5000 + n,
                    "invoiceid": invoice_id,
                    "clientid": clients[ci]["id"],
                    "accounting_systemid": FRESHBOOKS_ACCOUNT_ID,
                    "amount": _money(paid, code),
                    "date": pay_day.isoformat(),
                    "type": "Bank Transfer",
                    "note": f"Transfer {n}",
                    "vis_state": 0,
                    "updated": stamp(pay_at),
                }
            )
            updated = max(updated, pay_at)
        status = {"sent": 2, "viewed": 3, "disputed": 0, "draft": 1}.get(kind, 2)
        invoice = _invoice(invoice_id, f"{n:07d}", clients[ci], issued, terms, lines, code, status, paid, made)
        if kind == "paid":
            invoice["date_paid"] = payments[-1]["date"]
        if kind == "archived":
            invoice["vis_state"] = 2
        if kind == "deleted":
            invoice["vis_state"] = 1
        invoice["updated"] = stamp(updated.astimezone(UTC))
        invoices.append(invoice)
    return {
        "account_id": FRESHBOOKS_ACCOUNT_ID,
        "business": dict(FRESHBOOKS_BUSINESS),
        "invoices": invoices,
        "payments": payments,
        "clients": clients,
    }


def generate_freshbooks_account(
    n_invoices: int, n_payments: int, seed: int = 0, *, end: date = date(2026, 10, 20)
) -> Obj:
    """A large consistent FreshBooks account for benchmarks (the `freshbooks` seed section).

    One-line invoices over the year before `end`, about one client per 40 invoices; each payment pays part
    or all of a random invoice that still has something outstanding. Deterministic for a given `seed`.
    """
    rng = random.Random(seed)
    start = end - timedelta(days=360)
    created = _at(start, 8)
    clients = [
        _client(n, f"Client {n:05d}", "", "", f"billing{n}@example.com", n % 5 == 0, created)
        for n in range(1, max(10, n_invoices // 40) + 1)
    ]
    invoices: list[Obj] = []
    for n in range(1, n_invoices + 1):
        client = clients[rng.randrange(len(clients))]
        issued = start + timedelta(days=rng.randrange(360))
        unit = str(Decimal(rng.randrange(5_000, 500_000)) / 100)
        made = _at(issued, 9 + n % 8, n % 60)
        lines = [_line(n, 1, "Services", "1", unit, "USD", stamp(made))]
        invoices.append(_invoice(n, f"{n:07d}", client, issued, 30, lines, "USD", 2, Decimal(0), made))
    payments: list[Obj] = []
    open_slots = list(range(len(invoices)))
    for n in range(1, n_payments + 1):
        if not open_slots:
            break
        slot = rng.randrange(len(open_slots))
        invoice = invoices[open_slots[slot]]
        outstanding = Decimal(invoice["outstanding"]["amount"])
        amount = outstanding if rng.random() < 0.6 else (outstanding / 2).quantize(_CENT)
        paid_on = min(end, date.fromisoformat(invoice["create_date"]) + timedelta(days=rng.randrange(1, 60)))
        paid_at = _at(paid_on, 14, n % 60)
        payments.append(
            {
                "id": 100_000 + n,
                "logid": 100_000 + n,
                "invoiceid": invoice["id"],
                "clientid": invoice["customerid"],
                "accounting_systemid": FRESHBOOKS_ACCOUNT_ID,
                "amount": _money(amount, "USD"),
                "date": paid_on.isoformat(),
                "type": "Check",
                "note": "",
                "vis_state": 0,
                "updated": stamp(paid_at),
            }
        )
        paid = Decimal(invoice["paid"]["amount"]) + amount
        left = outstanding - amount
        invoice["paid"] = _money(paid, "USD")
        invoice["outstanding"] = _money(left, "USD")
        status = 4 if left == 0 else 8
        invoice.update(
            status=status,
            v3_status=V3_STATUS[status],
            display_status=V3_STATUS[status],
            payment_status="paid" if left == 0 else "partial",
            date_paid=paid_on.isoformat() if left == 0 else None,
            updated=max(invoice["updated"], stamp(paid_at)),
        )
        if left == 0:
            open_slots[slot] = open_slots[-1]
            open_slots.pop()
    return {
        "account_id": FRESHBOOKS_ACCOUNT_ID,
        "business": dict(FRESHBOOKS_BUSINESS),
        "invoices": invoices,
        "payments": payments,
        "clients": clients,
    }
