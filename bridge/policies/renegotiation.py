"""One-time schedule renegotiation (docs/policy.md §6): decide a request, count per project, effective due dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal

from bridge.messages import RenegotiationTerms
from bridge.model import Invoice, RenegotiationRequest
from bridge.policies.terms import Contract, ProjectKey


def project_of(invoice: Invoice, contract: Contract) -> str:
    """The scope one renegotiation is allowed per, by the contract's `project_key`."""
    customer = f"{contract.name}:customer:{invoice.connection}:{invoice.customer.id}"
    if contract.project_key is ProjectKey.INVOICE:
        return f"{contract.name}:invoice:{invoice.connection}:{invoice.id}"
    if contract.project_key is ProjectKey.PROVIDER and invoice.project:
        return f"{contract.name}:project:{invoice.connection}:{invoice.project}"
    return customer


def decide(
    request: RenegotiationRequest,
    invoice: Invoice,
    contract: Contract,
    accepted_in_project: Sequence[RenegotiationRequest],
    accepted_on_invoice: Sequence[RenegotiationRequest],
    today: date,
) -> tuple[RenegotiationRequest, str]:
    """Accept or refuse a request at once; returns the decided record and a sentence saying why.

    Refusal reasons, checked in this order: `not_open`, `limit_reached`, `not_later`,
    `extension_too_long`. `accepted_*` are the renegotiations accepted before this one.
    """
    original = accepted_on_invoice[0].original_due_date if accepted_on_invoice else invoice.due_date
    current = accepted_on_invoice[-1].new_due_date if accepted_on_invoice else invoice.due_date
    reason, why = _refusal(request, invoice, contract, accepted_in_project, original, current)
    decided = request.model_copy(
        update={
            "status": "refused" if reason else "accepted",
            "reason": reason,
            "decided_on": today,
            "original_due_date": original,
            "previous_due_date": current,
            "project": project_of(invoice, contract),
            "invoice_id": invoice.id,
            "invoice_number": invoice.number,
        }
    )
    return decided, why


def _refusal(
    request: RenegotiationRequest,
    invoice: Invoice,
    contract: Contract,
    accepted_in_project: Sequence[RenegotiationRequest],
    original: date | None,
    current: date | None,
) -> tuple[str | None, str]:
    """Why the request is refused (None when it is not), and the sentence that says so or says what moves."""
    terms = contract.renegotiation
    new = request.new_due_date
    if not invoice.status.is_open or original is None or current is None:
        if not invoice.status.is_open:
            return "not_open", f"invoice {invoice.number} is {invoice.status.value}"
        return "not_open", f"invoice {invoice.number} has no due date to move"
    if len(accepted_in_project) >= terms.max_per_project:
        if not accepted_in_project:
            return "limit_reached", "the contract allows no renegotiation (max_per_project = 0)"
        earlier = accepted_in_project[-1]
        return "limit_reached", (
            f"the project already had {len(accepted_in_project)} of max_per_project = "
            f"{terms.max_per_project} renegotiation(s): invoice {earlier.invoice_number or earlier.invoice_id} "
            f"was moved to {earlier.new_due_date} on {earlier.decided_on or earlier.requested_on}"
        )
    if new <= current:
        return "not_later", f"{new} is not after the current due date {current}"
    if new > original + timedelta(days=terms.max_extension_days):
        return "extension_too_long", (
            f"{new} is {(new - original).days} days after the original due date {original}; "
            f"max_extension_days = {terms.max_extension_days}"
        )
    nth = len(accepted_in_project) + 1
    return None, f"due date moved from {current} to {new} ({nth} of {terms.max_per_project} allowed per project)"


def renegotiation_terms(contract: Contract) -> RenegotiationTerms:
    """The renegotiation clause as the answers restate it (in the client's language)."""
    terms = contract.renegotiation
    scope = _SCOPES[contract.project_key]
    return RenegotiationTerms(terms.max_per_project, terms.max_extension_days, scope)


_SCOPES: dict[ProjectKey, Literal["customer", "invoice", "provider"]] = {
    ProjectKey.CUSTOMER: "customer",
    ProjectKey.INVOICE: "invoice",
    ProjectKey.PROVIDER: "provider",
}
