"""QuickBooks Online, as a provider plugin (entry point `bridge.providers:quickbooks`). Imports no SDK."""

from bridge.delivery import Delivery
from bridge.providers import Provider

PROVIDER = Provider(
    name="quickbooks",
    display_name="QuickBooks Online",
    tenant_label="realm id",
    flow="bridge.auth.link:QuickBooksFlow",
    connector="bridge.connectors.quickbooks:factory",
    customer_id_fields=("Id",),
    # POST /invoice/{id}/send carries no subject or body: the company's own invoice e-mail goes out.
    reminder_email=Delivery(
        "provider_invoice_email",
        "QuickBooks sends its own invoice e-mail (the company's template with the invoice), not the contract's text",
        # The send copies the client's other contacts itself, at every step (docs/delivery.md, escalation).
        "always",
    ),
    # Intuit's development apps reach only its sandbox companies, on their own API host and discovery document.
    environments=("production", "sandbox"),
)
