"""Deterministic QuickBooks books for the sandbox: the shipped default and large ones for benchmarks.

    python -m bridge_sandbox.make_seed             # regenerate sandbox/bridge_sandbox/seeds/default.json
    python -m bridge_sandbox.make_seed --check     # exit 1 if the shipped file is out of date

The default book (realm 9341453215647712, as of 2026-10-20): eleven customers, one of them a
project (a sub-customer with `Job: true`) holding two invoices; service items and a "Late Fee"
item; 44 invoices (DocNumber 1001-1044) from late June to 20 October 2026 with full and partial
payments (one payment paying two invoices), one voided invoice (1012), one deleted invoice (1019,
a tombstone in `Deleted`), one invoice carrying QuickBooks' own automatic late fee (1009), and a
mix of paid, overdue and not-yet-due invoices. Every `Balance` equals `TotalAmt` minus the
payments linked to it, and every timestamp carries the Pacific offset as QBO writes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from bridge_sandbox.core import paused_gc

Obj = dict[str, Any]

REALM_ID = "9341453215647712"
COMPANY_NAME = "Maple & Finch Landscape Design"
AS_OF = date(2026, 10, 20)
PACIFIC = ZoneInfo("America/Los_Angeles")
USD = {"value": "USD", "name": "United States Dollar"}
_CENT = Decimal("0.01")

# (Id, display name, e-mail, person?, terms days)
_CUSTOMERS: tuple[tuple[str, str, str, bool, int], ...] = (
    ("1", "Bill's Windsurf Shop", "surf@windsurf.example", False, 30),
    ("2", "Dukes Basketball Camp", "dukes@example.com", False, 30),
    ("3", "Amy's Bird Sanctuary", "birds@example.com", False, 30),
    ("4", "Cool Cars", "cool_cars@example.com", False, 30),
    ("5", "Diego Rodriguez", "diego@example.com", True, 15),
    ("6", "Mark Cho", "mark.cho@example.com", True, 15),
    ("8", "Freeman Sporting Goods", "sports@example.com", False, 30),
    ("9", "Geeta Kalapatapu", "geeta@example.com", True, 30),
    ("12", "Jeff's Jalopies", "jeff@jalopies.example", False, 30),
    ("16", "Kookies by Kathy", "kathy@kookies.example", False, 15),
)
PROJECT = ("17", "Warehouse Courtyard", "8")  # (Id, name, parent Id)
# The copy addresses (BillEmailCc, BillEmailBcc) on the invoices of a few customers: their other billing contacts.
_COPIES: dict[str, tuple[str, str | None]] = {
    "3": ("treasurer@birds.example", None),
    "4": ("owner@coolcars.example", "bookkeeper@coolcars.example"),
}

# (Id, name, unit price, description)
_ITEMS: tuple[tuple[str, str, str, str], ...] = (
    ("1", "Services", "0", "General services"),
    ("2", "Design", "75.00", "Garden design"),
    ("3", "Installation", "50.00", "Installation labour"),
    ("4", "Consulting", "125.00", "Consulting"),
    ("5", "Maintenance", "150.00", "Monthly maintenance visit"),
    ("6", "Trimming", "35.00", "Tree and hedge trimming"),
    ("7", "Bird feeder installation", "400.00", "Bird feeder installation"),
)
LATE_FEE_ITEM = ("8", "Late Fee")


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is not PACIFIC:
        moment = moment.astimezone(PACIFIC)
    return moment.isoformat(timespec="seconds")


def _local(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=PACIFIC)


def _meta(created: datetime, updated: datetime | None = None) -> Obj:
    return {"CreateTime": _stamp(created), "LastUpdatedTime": _stamp(updated or created)}


def _copy_fields(customer_id: str) -> Obj:
    """An invoice's `BillEmailCc` / `BillEmailBcc` for a customer with other billing contacts (none otherwise)."""
    cc, bcc = _COPIES.get(customer_id, (None, None))
    return ({"BillEmailCc": {"Address": cc}} if cc else {}) | ({"BillEmailBcc": {"Address": bcc}} if bcc else {})


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT)


def _customer(cid: str, name: str, email: str, person: bool, created: datetime) -> Obj:
    obj: Obj = {
        "Id": cid,
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "DisplayName": name,
        "PrintOnCheckName": name,
        "FullyQualifiedName": name,
        "Active": True,
        "Job": False,
        "BillWithParent": False,
        "Taxable": False,
        "PreferredDeliveryMethod": "Email",
        "PrimaryEmailAddr": {"Address": email},
        "CurrencyRef": dict(USD),
        "MetaData": _meta(created),
    }
    if person:
        given, _, family = name.partition(" ")
        obj["GivenName"], obj["FamilyName"] = given, family
    else:
        obj["CompanyName"] = name
    return obj


def _item(iid: str, name: str, price: str, description: str, created: datetime) -> Obj:
    return {
        "Id": iid,
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "Name": name,
        "Description": description,
        "FullyQualifiedName": name,
        "Active": True,
        "Taxable": False,
        "Type": "Service",
        "UnitPrice": Decimal(price),
        "IncomeAccountRef": {"value": "79", "name": "Services"},
        "MetaData": _meta(created),
    }


@dataclass
class _Invoice:
    customer: Obj
    txn_date: date
    due_date: date
    lines: list[tuple[Obj, str, Decimal, Decimal]]  # item, description, qty, unit price
    created: datetime
    email: str
    sent: bool = True
    voided_at: datetime | None = None
    deleted_at: datetime | None = None
    late_fee: tuple[Decimal, datetime] | None = None  # QBO's automatic late fee and when it was added
    payments: list[tuple[_Payment, Decimal]] = field(default_factory=list)
    obj_id: str = ""
    doc_number: str = ""

    @cached_property
    def total(self) -> Decimal:
        # Cached: lines, late fee and voiding are all settled before any payment reads the total.
        if self.voided_at is not None:
            return Decimal("0.00")
        amount = sum((_money(q * p) for _, _, q, p in self.lines), Decimal(0))
        return _money(amount + (self.late_fee[0] if self.late_fee else Decimal(0)))

    paid: Decimal = Decimal(0)


@dataclass
class _Payment:
    customer: Obj
    when: datetime
    applied: list[tuple[_Invoice, Decimal]]
    obj_id: str = ""


class _Book:
    """Collects invoices and payments, then numbers them in creation order as QBO does."""

    def __init__(self, realm_id: str, company_name: str, start: date) -> None:
        self.realm_id = realm_id
        self.company_name = company_name
        self.created = _local(start - timedelta(days=90), 8, 0)
        self.customers: list[Obj] = []
        self.items: dict[str, Obj] = {}
        self.invoices: list[_Invoice] = []
        self.payments: list[_Payment] = []

    def add_items(self) -> None:
        for iid, name, price, description in _ITEMS:
            self.items[name] = _item(iid, name, price, description, self.created)
        fee_id, fee_name = LATE_FEE_ITEM
        self.items[fee_name] = _item(fee_id, fee_name, "0", "Late Fee", self.created)

    def pay(self, when: datetime, applied: list[tuple[_Invoice, Decimal]]) -> _Payment:
        payment = _Payment(applied[0][0].customer, when, applied)
        for invoice, amount in applied:
            invoice.payments.append((payment, amount))
            invoice.paid += amount
        self.payments.append(payment)
        return payment

    def finish(self, first_txn_id: int = 101, first_doc_number: int = 1001) -> Obj:
        events: list[tuple[datetime, int, _Invoice | _Payment]] = [(i.created, 0, i) for i in self.invoices]
        events += [(p.when, 1, p) for p in self.payments]
        events.sort(key=lambda e: (e[0], e[1]))
        next_id = first_txn_id
        for _, _, txn in events:
            txn.obj_id = str(next_id)
            next_id += 1
        for number, invoice in enumerate(sorted(self.invoices, key=lambda i: (i.txn_date, i.created))):
            invoice.doc_number = str(first_doc_number + number)
        live = [self._invoice_json(i) for i in self.invoices if i.deleted_at is None]
        live.sort(key=lambda o: int(o["Id"]))
        deleted = [
            {"type": "Invoice", "Id": i.obj_id, "DocNumber": i.doc_number, "MetaData": _meta(i.created, i.deleted_at)}
            for i in self.invoices
            if i.deleted_at is not None
        ]
        payments = [self._payment_json(p) for p in sorted(self.payments, key=lambda p: int(p.obj_id))]
        return {
            "realm_id": self.realm_id,
            "CompanyInfo": self._company_info(),
            "Customer": self.customers,
            "Item": list(self.items.values()),
            "Invoice": live,
            "Payment": payments,
            "Deleted": deleted,
        }

    def _company_info(self) -> Obj:
        return {
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "CompanyName": self.company_name,
            "LegalName": self.company_name,
            "Country": "US",
            "CompanyAddr": {
                "Line1": "123 Sierra Way",
                "City": "San Pablo",
                "CountrySubDivisionCode": "CA",
                "PostalCode": "87999",
            },
            "Email": {"Address": "office@maplefinch.example"},
            "FiscalYearStartMonth": "January",
            "MetaData": _meta(self.created),
        }

    def _invoice_json(self, inv: _Invoice) -> Obj:
        voided = inv.voided_at is not None
        lines: list[Obj] = []
        for number, (item, description, qty, price) in enumerate(inv.lines, start=1):
            lines.append(
                {
                    "Id": str(number),
                    "LineNum": number,
                    "Description": description,
                    "Amount": Decimal("0.00") if voided else _money(qty * price),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": item["Id"], "name": item["Name"]},
                        "UnitPrice": price,
                        "Qty": qty,
                        "ItemAccountRef": {"value": "79", "name": "Services"},
                        "TaxCodeRef": {"value": "NON"},
                    },
                }
            )
        if inv.late_fee is not None:
            fee_item = self.items[LATE_FEE_ITEM[1]]
            number = len(lines) + 1
            lines.append(
                {
                    "Id": str(number),
                    "LineNum": number,
                    "Description": "Late Fee",
                    "Amount": inv.late_fee[0],
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": fee_item["Id"], "name": "Late Fee"},
                        "UnitPrice": inv.late_fee[0],
                        "Qty": Decimal(1),
                        "ItemAccountRef": {"value": "79", "name": "Services"},
                        "TaxCodeRef": {"value": "NON"},
                    },
                }
            )
        subtotal = sum((line["Amount"] for line in lines), Decimal(0))
        lines.append({"Amount": _money(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        changes = [inv.created + timedelta(minutes=4)] if inv.sent else []
        changes += [p.when for p, _ in inv.payments]
        if inv.late_fee is not None:
            changes.append(inv.late_fee[1])
        if inv.voided_at is not None:
            changes.append(inv.voided_at)
        customer = inv.customer
        obj: Obj = {
            "Id": inv.obj_id,
            "SyncToken": str(len(changes)),
            "domain": "QBO",
            "sparse": False,
            "MetaData": _meta(inv.created, max([inv.created, *changes])),
            "DocNumber": inv.doc_number,
            "TxnDate": inv.txn_date.isoformat(),
            "DueDate": inv.due_date.isoformat(),
            "CurrencyRef": dict(USD),
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "SalesTermRef": {"value": "3", "name": f"Net {(inv.due_date - inv.txn_date).days}"},
            "Line": lines,
            "TxnTaxDetail": {"TotalTax": Decimal("0.00")},
            "CustomerMemo": {"value": "Thank you for your business and have a great day!"},
            "BillEmail": {"Address": inv.email},
            **_copy_fields(customer["Id"]),
            "TotalAmt": inv.total,
            "Balance": Decimal("0.00") if voided else _money(inv.total - inv.paid),
            "ApplyTaxAfterDiscount": False,
            "PrintStatus": "NotSet",
            "EmailStatus": "EmailSent" if inv.sent else "NeedToSend",
            "AllowOnlineCreditCardPayment": False,
            "AllowOnlineACHPayment": False,
        }
        if inv.sent:
            obj["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": _stamp(inv.created + timedelta(minutes=4))}
        if inv.payments and not voided:
            obj["LinkedTxn"] = [
                {"TxnId": p.obj_id, "TxnType": "Payment"}
                for p in sorted({p.obj_id: p for p, _ in inv.payments}.values(), key=lambda p: int(p.obj_id))
            ]
        if voided:
            obj["PrivateNote"] = "Voided"
        return obj

    def _payment_json(self, payment: _Payment) -> Obj:
        total = sum((amount for _, amount in payment.applied), Decimal(0))
        return {
            "Id": payment.obj_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": _meta(payment.when),
            "TxnDate": payment.when.date().isoformat(),
            "CurrencyRef": dict(USD),
            "CustomerRef": {"value": payment.customer["Id"], "name": payment.customer["DisplayName"]},
            "DepositToAccountRef": {"value": "4"},
            "PaymentRefNum": f"CHK{payment.obj_id}",
            "TotalAmt": _money(total),
            "UnappliedAmt": Decimal("0.00"),
            "ProcessPayment": False,
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": inv.obj_id, "TxnType": "Invoice"}]}
                for inv, amount in payment.applied
            ],
        }


def _lines(rng: random.Random, items: dict[str, Obj]) -> list[tuple[Obj, str, Decimal, Decimal]]:
    names = [n for n in items if n not in ("Services", LATE_FEE_ITEM[1])]
    out = []
    for name in rng.sample(names, rng.choice((1, 1, 2, 2, 3))):
        item = items[name]
        price = Decimal(str(item["UnitPrice"]))
        qty = Decimal(1) if name in ("Maintenance", "Bird feeder installation") else Decimal(rng.randint(2, 16))
        out.append((item, str(item["Description"]), qty, price))
    return out


def build_default_book() -> dict[str, Any]:
    """The default seed file (`{"quickbooks": {...}, "xero": {...}, "freshbooks": {...}}`), as in seeds/default.json."""
    rng = random.Random(20261020)
    start = date(2026, 6, 22)
    book = _Book(REALM_ID, COMPANY_NAME, start)
    for cid, name, email, person, _terms in _CUSTOMERS:
        book.customers.append(_customer(cid, name, email, person, book.created))
    parent = next(c for c in book.customers if c["Id"] == PROJECT[2])
    project = _customer(
        PROJECT[0], PROJECT[1], str(parent["PrimaryEmailAddr"]["Address"]), False, book.created + timedelta(days=60)
    )
    project.update(
        Job=True,
        ParentRef={"value": parent["Id"], "name": parent["DisplayName"]},
        Level=1,
        FullyQualifiedName=f"{parent['DisplayName']}:{PROJECT[1]}",
        BillWithParent=True,
    )
    project.pop("CompanyName")
    book.customers.append(project)
    book.add_items()
    terms = {cid: days for cid, _, _, _, days in _CUSTOMERS} | {PROJECT[0]: 30}
    by_id = {c["Id"]: c for c in book.customers}
    regular = [c for c in book.customers if c["Id"] != PROJECT[0]]

    span = (AS_OF - start).days
    # The last invoice goes out on the as-of day itself, so the book ends where the demo evaluates it.
    days = sorted([*(start + timedelta(days=rng.randint(0, span)) for _ in range(43)), AS_OF])
    for index, day in enumerate(days):
        customer = rng.choice(regular)
        if index in (20, 32):
            customer = by_id[PROJECT[0]]
        if index == 8:
            customer = by_id["9"]  # Geeta: the invoice QuickBooks adds its own late fee to
        created = _local(day, 9 + index % 8, (index * 7) % 60)
        invoice = _Invoice(
            customer=customer,
            txn_date=day,
            due_date=day + timedelta(days=terms[customer["Id"]]),
            lines=_lines(rng, book.items),
            created=created,
            email=str((parent if customer is project else customer)["PrimaryEmailAddr"]["Address"]),
            sent=index not in (41, 43),
        )
        book.invoices.append(invoice)

    invoices = book.invoices
    late = invoices[8]
    late.lines = [(book.items["Design"], "Garden design", Decimal(16), Decimal("75.00"))]
    late.late_fee = (Decimal("25.00"), _local(late.due_date + timedelta(days=10), 2, 0))
    invoices[11].voided_at = invoices[11].created + timedelta(days=3)
    invoices[18].deleted_at = invoices[18].created + timedelta(days=1)
    # Cool Cars pays two invoices with one cheque.
    skip = {8, 11, 18}
    pair = [
        inv
        for index, inv in enumerate(invoices)
        if index not in skip and inv.customer["Id"] == "4" and inv.due_date < AS_OF
    ][:2]
    if len(pair) == 2:
        when = _local(max(p.due_date for p in pair) - timedelta(days=2), 11, 15)
        book.pay(when, [(p, p.total) for p in pair])
        skip |= {invoices.index(p) for p in pair}
    for index, invoice in enumerate(invoices):
        if index in skip:
            continue
        overdue_long = invoice.due_date < AS_OF - timedelta(days=30)
        due_soon = invoice.due_date >= AS_OF
        roll = rng.random()
        latest = _local(AS_OF - timedelta(days=1), 16, 0)
        if due_soon:
            if roll < 0.15:
                book.pay(min(invoice.created + timedelta(days=6, hours=2), latest), [(invoice, invoice.total)])
            continue
        if roll < (0.65 if overdue_long else 0.45):
            paid_on = invoice.due_date + timedelta(days=rng.randint(-10, 8))
            when = min(max(_local(paid_on, 10, rng.randint(0, 59)), invoice.created + timedelta(days=1)), latest)
            book.pay(when, [(invoice, invoice.total)])
        elif roll < 0.85:
            part = _money(invoice.total * Decimal(rng.choice(("0.25", "0.4", "0.5"))))
            when = min(_local(invoice.due_date + timedelta(days=rng.randint(1, 12)), 14, 30), latest)
            if part > 0 and when > invoice.created:
                book.pay(when, [(invoice, part)])
    from bridge_sandbox.freshbooks_books import build_freshbooks_account
    from bridge_sandbox.xero_books import build_xero_org

    return {"quickbooks": book.finish(), "xero": build_xero_org(), "freshbooks": build_freshbooks_account()}


def generate_book(
    n_invoices: int,
    n_payments: int,
    seed: int = 0,
    *,
    realm_id: str = REALM_ID,
    end: date = AS_OF,
    months: int = 12,
    n_customers: int | None = None,
) -> dict[str, Any]:
    """A large consistent book for benchmarks (`{"quickbooks": {...}}`).

    Invoices are spread over `months` months up to `end`; each payment goes to a random invoice
    that still has a balance (full or partial), or stays unapplied when none has. Deterministic
    for a given `seed`; 10,000 invoices and 10,000 payments take well under a second.
    """
    with paused_gc():
        return _generate_book(n_invoices, n_payments, seed, realm_id, end, months, n_customers)


def _generate_book(
    n_invoices: int, n_payments: int, seed: int, realm_id: str, end: date, months: int, n_customers: int | None
) -> dict[str, Any]:
    rng = random.Random(seed)
    start = end - timedelta(days=30 * months)
    book = _Book(realm_id, COMPANY_NAME, start)
    count = n_customers or max(10, n_invoices // 40)
    # Customers set up at any working second of the 90 days before the first invoice (one second for all made a
    # client re-reading from its last timestamp meet every customer again); their own generator, so the
    # invoices and payments stay what they were for a given seed.
    joined = random.Random(f"{seed}-customers")
    for number in range(1, count + 1):
        created = book.created + timedelta(days=joined.randrange(89), seconds=joined.randrange(10 * 3600))
        book.customers.append(
            _customer(str(number), f"Customer {number:05d}", f"billing{number}@example.com", False, created)
        )
    book.add_items()
    span = max(1, (end - start).days)
    for _ in range(n_invoices):
        day = start + timedelta(days=rng.randrange(span))
        customer = book.customers[rng.randrange(count)]
        book.invoices.append(
            _Invoice(
                customer=customer,
                txn_date=day,
                due_date=day + timedelta(days=30),
                lines=_lines(rng, book.items),
                # Any second of the working day, as a real office writes them.
                created=_local(day, 8, 0) + timedelta(seconds=rng.randrange(10 * 3600)),
                email=str(customer["PrimaryEmailAddr"]["Address"]),
            )
        )
    open_invoices = list(book.invoices)
    latest = _local(end, 17, 0)
    unapplied: list[_Payment] = []
    for _ in range(n_payments):
        while open_invoices:
            pick = rng.randrange(len(open_invoices))
            invoice = open_invoices[pick]
            balance = invoice.total - invoice.paid
            if balance > 0:
                break
            open_invoices[pick] = open_invoices[-1]
            open_invoices.pop()
        else:
            when = _local(end - timedelta(days=rng.randrange(30)), 9, 0) + timedelta(seconds=rng.randrange(28_800))
            unapplied.append(_Payment(book.customers[rng.randrange(count)], when, []))
            continue
        amount = balance if rng.random() < 0.7 else _money(balance * Decimal("0.5"))
        when = invoice.created + timedelta(days=rng.randint(1, 45), seconds=rng.randrange(36_000))
        if when > latest:
            # Not yet paid by `end` at that pace: paid at some second between the invoice and `end` instead
            # (capping at `end` would stamp hundreds of payments with one last-updated second).
            room = int((latest - invoice.created).total_seconds())
            when = invoice.created + timedelta(seconds=rng.randrange(60, max(61, room)))
        book.pay(max(when, invoice.created + timedelta(minutes=1)), [(invoice, amount)])
    book.payments.extend(unapplied)
    section = book.finish()
    # Payments with nothing applied carry their amount as unapplied credit.
    for payment in section["Payment"]:
        if not payment["Line"]:
            payment["TotalAmt"] = payment["UnappliedAmt"] = Decimal("100.00")
    return {"quickbooks": section}
