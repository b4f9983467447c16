"""What a reminder's client really receives, per delivery channel (pure: facts, no I/O).

The plan must show exactly what goes out. Through the provider's channel, what the client
gets is a fact of the provider, stated once by its descriptor (`bridge.providers`,
`Provider.reminder_email`) and handed in by the caller as `provider_channels` (the
configuration's `Terms.provider_channels`): QuickBooks and Xero send the company's own
invoice e-mail template (no API parameter carries a subject or a body), FreshBooks'
`action_email` sends the subject and body it is given. A provider the caller states nothing
about is assumed to send its own template: the plan then never claims that text it shows
will be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

Sends = Literal["contract_text", "provider_invoice_email", "nothing"]
# Who else a message can go to (escalation, docs/policy.md §4): "chosen": exactly the copies the bridge names
# (the SMTP channel's Cc, FreshBooks' email_recipients); "always": the provider copies the client's other contacts
# itself on every e-mail it sends, whatever the step (QuickBooks: the invoice's BillEmailCc/Bcc; Xero: the contact
# persons included in e-mails); "none": no copies at all.
Copies = Literal["chosen", "always", "none"]


class Delivery(NamedTuple):
    """How a message leaves: what the client gets (`sends`), in words through what, and who else it can reach."""

    sends: Sends
    what: str
    copies: Copies = "none"


# The SMTP channel, on every provider: the contract's words from the firm's mailbox ([smtp]), with the provider's
# invoice PDF attached and its pay link in the body where [smtp] asks for them and the provider offers them.
SMTP = Delivery(
    "contract_text",
    "the contract's subject and text, from the firm's mailbox by SMTP, to the client's e-mail at the provider "
    "(with the provider's invoice PDF and pay link when [smtp] asks for them and the provider has them)",
    "chosen",
)

NOT_SENT = Delivery("nothing", "nothing is sent: the message is for you to pass on")


def reminder_delivery(provider: str, channel: str, provider_channels: Mapping[str, Delivery]) -> Delivery:
    """What a reminder through `channel` at `provider` puts in front of the client (`provider_channels`: what
    each provider's own channel sends, by provider name)."""
    if channel == "provider":
        return provider_channels.get(
            provider,
            Delivery("provider_invoice_email", f"{provider} sends its own invoice e-mail, not the contract's text"),
        )
    if channel == "smtp":
        return SMTP
    return Delivery("contract_text", f"the contract's subject and text, by {channel}")
