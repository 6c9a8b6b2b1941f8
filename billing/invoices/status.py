"""The invoice status machine, Stripe's transition table. Pure, no I/O.

draft -> open (finalize; the number is assigned then) or deleted (only drafts are deleted);
open -> paid, void or uncollectible; uncollectible -> paid or void (an uncollectible invoice
can still be paid). paid and void are final. Lines and most fields change only on drafts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from billing.errors import InvalidRequest
from contracts.enums import InvoiceStatus

I = InvoiceStatus  # noqa: E741  (the generated enum, short for the table below)


class InvoiceAction(StrEnum):
    edit = "edit"
    finalize = "finalize"
    pay = "pay"
    void = "void"
    mark_uncollectible = "mark_uncollectible"
    delete = "delete"


A = InvoiceAction

# (status, action) -> the status after it. Deleting (drafts only) leaves no status.
TRANSITIONS: Final[dict[tuple[InvoiceStatus, InvoiceAction], InvoiceStatus]] = {
    (I.draft, A.edit): I.draft,
    (I.draft, A.finalize): I.open,
    (I.open, A.pay): I.paid,
    (I.open, A.void): I.void,
    (I.open, A.mark_uncollectible): I.uncollectible,
    (I.uncollectible, A.pay): I.paid,
    (I.uncollectible, A.void): I.void,
}

FINAL: Final = frozenset({I.paid, I.void})

_REFUSALS: Final = {
    A.edit: ("invoice_not_editable", "Only a draft invoice can be edited; this one is {status}."),
    A.finalize: (
        "invoice_not_editable",
        "This invoice is already finalized ({status}); only a draft can be finalized.",
    ),
    A.delete: (
        "invoice_not_editable",
        "Only a draft invoice can be deleted; void or mark uncollectible a {status} one.",
    ),
    A.pay: ("invoice_not_payable", "This invoice is {status} and cannot be paid."),
    A.void: ("invoice_not_voidable", "Only an open or uncollectible invoice can be voided; this one is {status}."),
    A.mark_uncollectible: (
        "invoice_not_open",
        "Only an open invoice can be marked uncollectible; this one is {status}.",
    ),
}


DELETABLE: Final = frozenset({I.draft})


def _refused(status: InvoiceStatus, action: InvoiceAction) -> InvalidRequest:
    code, message = _REFUSALS[action]
    return InvalidRequest(message.format(status=status), code=code)


def after(status: InvoiceStatus, action: InvoiceAction) -> InvoiceStatus:
    """The status after `action`, or a Stripe-shaped error if `status` does not allow it."""
    if action is A.delete:
        raise ValueError("deleting leaves no status: use check_deletable")
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise _refused(status, action) from None


def check_deletable(status: InvoiceStatus) -> None:
    if status not in DELETABLE:
        raise _refused(status, A.delete)
