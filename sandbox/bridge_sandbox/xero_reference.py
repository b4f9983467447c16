"""Xero's read-only reference lists: Currencies, Accounts, TaxRates, BrandingThemes, Users.

Clients nobody here wrote call these first (an access check, a chart of accounts, tax codes), so the emulator
answers them in the shapes of Xero's accounting OpenAPI file (tests validate them against it). A seed section
may give any of the lists in those shapes; otherwise a small demo organisation's lists are served. Nothing the
bridge does changes them, so they are never written back into the state unless the seed gave them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

REFERENCE_LISTS: Final = ("Currencies", "Accounts", "TaxRates", "BrandingThemes", "Users")

# Fixed timestamps: reference data of a demo organisation that nobody edits during a run.
_CREATED: Final = "/Date(1577836800000+0000)/"  # 2020-01-01T00:00:00Z
_NAMESPACE: Final = uuid.UUID("0b7a1f5e-8f3c-4d6a-9a51-3f0c2d7e9b14")


def _id(tenant_id: str, kind: str, key: str) -> str:
    # Stable across restarts and resets, distinct per organisation.
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/{kind}/{key}"))


def _account(tenant_id: str, code: str, name: str, kind: str, klass: str, tax: str, **extra: Any) -> dict[str, Any]:
    return {
        "AccountID": _id(tenant_id, "account", code),
        "Code": code,
        "Name": name,
        "Status": "ACTIVE",
        "Type": kind,
        "TaxType": tax,
        "Class": klass,
        "EnablePaymentsToAccount": False,
        "ShowInExpenseClaims": False,
        "ReportingCode": klass[:3],
        "HasAttachments": False,
        "UpdatedDateUTC": _CREATED,
        "AddToWatchlist": False,
        **extra,
    }


def default_lists(tenant_id: str, base_currency: str) -> dict[str, list[dict[str, Any]]]:
    """The lists of a small demo organisation whose base currency is `base_currency`."""
    names = {"USD": "United States Dollar", "NZD": "New Zealand Dollar", "GBP": "British Pound", "EUR": "Euro"}
    currencies = [{"Code": base_currency, "Description": names.get(base_currency, base_currency)}]
    currencies += [{"Code": c, "Description": d} for c, d in names.items() if c != base_currency]
    accounts = [
        _account(
            tenant_id,
            "090",
            "Business Bank Account",
            "BANK",
            "ASSET",
            "NONE",
            BankAccountNumber="0123456789",
            BankAccountType="BANK",
            CurrencyCode=base_currency,
            EnablePaymentsToAccount=True,
        ),
        _account(tenant_id, "200", "Sales", "REVENUE", "REVENUE", "OUTPUT"),
        _account(tenant_id, "260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT", Description="Late fees"),
        _account(tenant_id, "610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", SystemAccount="DEBTORS"),
    ]
    tax_rates = [
        {
            "Name": "Tax Exempt",
            "TaxType": "NONE",
            "ReportTaxType": "EXEMPTOUTPUT",
            "TaxComponents": [
                {"Name": "None", "Rate": Decimal("0.0000"), "IsCompound": False, "IsNonRecoverable": False}
            ],
            "Status": "ACTIVE",
            "CanApplyToAssets": True,
            "CanApplyToEquity": True,
            "CanApplyToExpenses": True,
            "CanApplyToLiabilities": True,
            "CanApplyToRevenue": True,
            "DisplayTaxRate": Decimal("0.0000"),
            "EffectiveRate": Decimal("0.0000"),
        },
        {
            "Name": "Tax on Sales",
            "TaxType": "OUTPUT",
            "ReportTaxType": "OUTPUT",
            "TaxComponents": [
                {"Name": "Sales Tax", "Rate": Decimal("15.0000"), "IsCompound": False, "IsNonRecoverable": False}
            ],
            "Status": "ACTIVE",
            "CanApplyToAssets": False,
            "CanApplyToEquity": False,
            "CanApplyToExpenses": False,
            "CanApplyToLiabilities": True,
            "CanApplyToRevenue": True,
            "DisplayTaxRate": Decimal("15.0000"),
            "EffectiveRate": Decimal("15.0000"),
        },
    ]
    themes = [
        {
            "BrandingThemeID": _id(tenant_id, "theme", "standard"),
            "Name": "Standard",
            "Type": "INVOICE",
            "SortOrder": 0,
            "CreatedDateUTC": _CREATED,
        }
    ]
    users = [
        {
            "UserID": _id(tenant_id, "user", "owner"),
            "EmailAddress": "owner@demo-company.example",
            "FirstName": "Demo",
            "LastName": "Owner",
            "UpdatedDateUTC": _CREATED,
            "IsSubscriber": True,
            "OrganisationRole": "FINANCIALADVISER",
        }
    ]
    return {
        "Currencies": currencies,
        "Accounts": accounts,
        "TaxRates": tax_rates,
        "BrandingThemes": themes,
        "Users": users,
    }


def reference_lists(section: Mapping[str, Any], tenant_id: str, base_currency: str) -> dict[str, list[dict[str, Any]]]:
    """Each list as the seed gave it, else the demo organisation's."""
    defaults = default_lists(tenant_id, base_currency)
    return {name: list(section[name]) if name in section else defaults[name] for name in REFERENCE_LISTS}
