"""Tenant-scoped credit note reads, answered as `CreditNoteDetails` (with its lines)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.models import CreditNote, CreditNoteLineItem
from contracts.credit_notes import CreditNoteDetails
from contracts.resources import CreditNote as CreditNoteResource
from contracts.resources import CreditNoteLineItem as CreditNoteLineItemResource


async def credit_note_lines(session: AsyncSession, credit_note_id: str) -> list[CreditNoteLineItem]:
    """A credit note's lines in their order on it."""
    return list(
        (
            await session.scalars(
                select(CreditNoteLineItem)
                .where(CreditNoteLineItem.credit_note_id == credit_note_id)
                .order_by(CreditNoteLineItem.position, CreditNoteLineItem.id)
            )
        ).all()
    )


async def details(session: AsyncSession, notes: Sequence[CreditNote]) -> list[CreditNoteDetails]:
    lines = (
        await session.scalars(
            select(CreditNoteLineItem)
            .where(CreditNoteLineItem.credit_note_id.in_([note.id for note in notes]))
            .order_by(CreditNoteLineItem.position, CreditNoteLineItem.id)
        )
    ).all()
    return [
        CreditNoteDetails(
            **CreditNoteResource.model_validate(note).model_dump(),
            lines=[CreditNoteLineItemResource.model_validate(line) for line in lines if line.credit_note_id == note.id],
        )
        for note in notes
    ]


async def get_credit_note(session: AsyncSession, credit_note_id: str) -> CreditNoteDetails | None:
    note = await get_one(session, CreditNote, CreditNote.id, credit_note_id)
    if note is None:
        return None
    (found,) = await details(session, [note])
    return found


async def list_credit_notes(
    session: AsyncSession, page: PageRequest, *, invoice: str | None = None, customer: str | None = None
) -> Page[CreditNoteDetails]:
    tenant_of(session)
    statement = select(CreditNote)
    if invoice is not None:
        statement = statement.where(CreditNote.invoice_id == invoice)
    if customer is not None:
        statement = statement.where(CreditNote.customer_id == customer)
    found = await paginate(session, statement, CreditNote, page, "credit_note")
    return Page(await details(session, found.items), found.has_more)
