"""What a reminder's client really receives, per delivery channel (pure: facts, no I/O).

The plan must show exactly what goes out. Through the provider's channel, QuickBooks
(`POST /invoice/{id}/send`) and Xero (`POST /Invoices/{id}/Email`) send the company's own
invoice e-mail template: no API parameter carries a subject or a body, so the contract's
words cannot reach the client that way. FreshBooks' `action_email` sends the subject and
body it is given. A provider not listed here is assumed to send its own template: the plan
then never claims that text it shows will be sent.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Sends = Literal["contract_text", "provider_invoice_email", "nothing"]


class Delivery(NamedTuple):
    """How a message leaves: what the client gets (`sends`) and, in words, through what."""

    sends: Sends
    what: str


# The provider channel, per provider: does the provider's send call carry our subject and body?
_PROVIDER_CHANNEL: dict[str, Delivery] = {
    "freshbooks": Delivery("contract_text", "FreshBooks e-mails the contract's subject and text with the invoice"),
    "quickbooks": Delivery(
        "provider_invoice_email",
        "QuickBooks sends its own invoice e-mail (the company's template with the invoice), not the contract's text",
    ),
    "xero": Delivery(
        "provider_invoice_email",
        "Xero sends its own invoice e-mail (the organisation's template with the invoice), not the contract's text",
    ),
}

# The SMTP channel, on every provider: the contract's words from the firm's mailbox ([smtp]), with the provider's
# invoice PDF attached and its pay link in the body where [smtp] asks for them and the provider offers them.
SMTP = Delivery(
    "contract_text",
    "the contract's subject and text, from the firm's mailbox by SMTP, to the client's e-mail at the provider "
    "(with the provider's invoice PDF and pay link when [smtp] asks for them and the provider has them)",
)

NOT_SENT = Delivery("nothing", "nothing is sent: the message is for you to pass on")


def reminder_delivery(provider: str, channel: str) -> Delivery:
    """What a reminder through `channel` at `provider` puts in front of the client."""
    if channel == "provider":
        return _PROVIDER_CHANNEL.get(
            provider,
            Delivery("provider_invoice_email", f"{provider} sends its own invoice e-mail, not the contract's text"),
        )
    if channel == "smtp":
        return SMTP
    return Delivery("contract_text", f"the contract's subject and text, by {channel}")
