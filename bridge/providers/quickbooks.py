"""QuickBooks Online, as a provider plugin (entry point `bridge.providers:quickbooks`). Imports no SDK."""

from bridge.providers import Provider

PROVIDER = Provider(
    name="quickbooks",
    display_name="QuickBooks Online",
    tenant_label="realm id",
    flow="bridge.auth.link:QuickBooksFlow",
    connector="bridge.connectors.quickbooks:factory",
    customer_id_fields=("Id",),
    # POST /invoice/{id}/send carries no subject or body: the company's own invoice e-mail goes out.
    reminder_sends_contract_text=False,
    # Intuit's development apps reach only its sandbox companies, on their own API host and discovery document.
    environments=("production", "sandbox"),
)
