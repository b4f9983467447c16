"""Xero, as a provider plugin (entry point `bridge.providers:xero`). Imports no SDK."""

from bridge.delivery import Delivery
from bridge.providers import Provider

PROVIDER = Provider(
    name="xero",
    display_name="Xero",
    tenant_label="tenant id",
    flow="bridge.auth.link:XeroFlow",
    connector="bridge.connectors.xero:factory",
    customer_id_fields=("ContactID",),
    # POST /Invoices/{id}/Email carries no subject or body: the organisation's own invoice e-mail goes out.
    reminder_email=Delivery(
        "provider_invoice_email",
        "Xero sends its own invoice e-mail (the organisation's template with the invoice), not the contract's text",
        # The send copies the client's other contacts itself, at every step (docs/delivery.md, escalation).
        "always",
    ),
)
