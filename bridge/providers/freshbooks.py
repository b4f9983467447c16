"""FreshBooks, as a provider plugin (entry point `bridge.providers:freshbooks`). Imports no SDK."""

from bridge.delivery import Delivery
from bridge.providers import Provider

PROVIDER = Provider(
    name="freshbooks",
    display_name="FreshBooks",
    tenant_label="account id",
    flow="bridge.auth.link:FreshBooksFlow",
    connector="bridge.connectors.freshbooks:factory",
    customer_id_fields=("id", "userid"),
    # FreshBooks accepts https redirect addresses only.
    redirect_uri="https://127.0.0.1:8719/callback",
    # action_email sends the subject and body it is given.
    # ... to the email_recipients it is given: the copies are the bridge's to choose.
    reminder_email=Delivery(
        "contract_text", "FreshBooks e-mails the contract's subject and text with the invoice", "chosen"
    ),
)
