"""Customer emails, rendered: pure functions from the API's JSON to an `EmailMessage`.

Each email is multipart/alternative (plain text first, then HTML), from Jinja2 templates in
billing/notifications/templates/ (`<name>.txt` and `<name>.html`, the HTML autoescaped),
with a PDF attached where said. Amounts and dates are written with Babel in the
recipient's locale (`billing.documents.formatting`), amounts with exactly their currency's
ISO 4217 decimals (JPY none, KWD three); an unknown locale tag falls back to en-US. Words
are translated for the languages of `email_translations.TRANSLATED_LANGUAGES` (English and
German); any other language gets English words with its own amounts and dates.

The inputs are the JSON the API returns (camelCase, datetimes as ISO 8601 strings or
already `datetime`): an invoice is `contracts.invoices.InvoiceDetails`, a subscription
`contracts.subscriptions.SubscriptionDetails`, a payment method
`contracts.resources.CustomerPaymentMethod`.

Nothing here reads the clock or does I/O: the Date and Message-ID headers are left to
`billing.notifications.smtp.send`, which adds them when missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import UnknownLocaleError
from babel.dates import format_date as babel_format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from billing.documents.formatting import DEFAULT_LOCALE, format_date, format_money, format_quantity, parse_locale
from billing.notifications.email_translations import TRANSLATED_LANGUAGES, Catalog

TEMPLATES = Path(__file__).parent / "templates"

# the subjects' message ids (translated in email_translations)
SUBJECT_INVOICE = "Your invoice %(number)s from %(organization)s"
SUBJECT_RECEIPT = "Receipt from %(organization)s"
SUBJECT_PAYMENT_FAILED = "Your payment to %(organization)s failed"
SUBJECT_TRIAL = "Your trial ends on %(date)s"
SUBJECT_CARD = "Your card ending %(last4)s expires soon"
# other words this module (rather than a template) asks for
LABELS = (
    "Subtotal",
    "Tax",
    "Total",
    "Credit notes",
    "Applied balance",
    "Amount paid",
    "Amount remaining",
    "Amount due",
    "card",
)
PYTHON_MESSAGES = (SUBJECT_INVOICE, SUBJECT_RECEIPT, SUBJECT_PAYMENT_FAILED, SUBJECT_TRIAL, SUBJECT_CARD, *LABELS)

CARD_BRANDS = {
    "amex": "American Express",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos",
    "jcb": "JCB",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}


@dataclass(frozen=True)
class Sender:
    """Who the email is from: the organization's name (also used in the subjects and
    the text) and address, and where replies go."""

    name: str
    address: str
    reply_to: str | None = None


@dataclass(frozen=True)
class Recipient:
    address: str
    name: str | None
    locale: str  # BCP 47, e.g. "de-DE"; an unknown tag falls back to en-US


# ----------------------------------------------------------------------------- the emails


def invoice_finalized(
    sender: Sender, recipient: Recipient, invoice: Mapping[str, Any], pdf: bytes, portal_url: str | None
) -> EmailMessage:
    """ "Your invoice INV-0001 from Acme": the amount due, its due date (or that it is
    charged automatically), the lines and totals, a link to the invoice in the portal; the
    PDF attached as <number>.pdf."""
    r = _Renderer(recipient)
    number = _number(invoice)
    currency = invoice["currency"]
    due = _datetime(invoice.get("dueDate"))
    context = {
        "number": number,
        "amount_due": r.money(invoice["amountDue"], currency),
        "nothing_due": invoice["amountDue"] == 0,
        "due_date": r.long_date(due) if due else None,
        "charged_automatically": invoice.get("collectionMethod") == "charge_automatically",
        "lines": r.lines(invoice),
        "totals": r.totals(invoice),
        "portal_url": portal_url,
    }
    subject = r.t(SUBJECT_INVOICE, number=number, organization=sender.name)
    message = r.message("invoice_finalized", sender, subject, context)
    _attach_pdf(message, pdf, number)
    return message


def payment_receipt(
    sender: Sender, recipient: Recipient, invoice: Mapping[str, Any], pdf: bytes | None
) -> EmailMessage:
    """ "Receipt from Acme": the amount paid, when, for which invoice, the lines and totals;
    the invoice's PDF attached as <number>.pdf when given."""
    r = _Renderer(recipient)
    number = _number(invoice)
    currency = invoice["currency"]
    paid_at = _datetime(invoice.get("paidAt"))
    context = {
        "number": number,
        "amount_paid": r.money(invoice["amountPaid"], currency),
        "paid_on": r.long_date(paid_at) if paid_at else None,
        "lines": r.lines(invoice),
        "totals": r.totals(invoice),
        "attached": pdf is not None,
    }
    message = r.message("payment_receipt", sender, r.t(SUBJECT_RECEIPT, organization=sender.name), context)
    if pdf is not None:
        _attach_pdf(message, pdf, number)
    return message


def payment_failed(
    sender: Sender, recipient: Recipient, invoice: Mapping[str, Any], portal_url: str | None
) -> EmailMessage:
    """ "Your payment to Acme failed": the amount still owed, when the next attempt is
    (invoice["nextPaymentAttempt"]; none: no automatic retry) and a link to update the
    payment method."""
    r = _Renderer(recipient)
    number = _number(invoice)
    next_attempt = _datetime(invoice.get("nextPaymentAttempt"))
    context = {
        "number": number,
        "amount": r.money(invoice["amountRemaining"], invoice["currency"]),
        "next_attempt": r.long_date(next_attempt) if next_attempt else None,
        "portal_url": portal_url,
    }
    subject = r.t(SUBJECT_PAYMENT_FAILED, organization=sender.name)
    return r.message("payment_failed", sender, subject, context)


def trial_will_end(
    sender: Sender, recipient: Recipient, subscription: Mapping[str, Any], portal_url: str | None
) -> EmailMessage:
    """ "Your trial ends on 10 December 2026" (subscription["trialEnd"], in the recipient's
    locale): what happens then, and a link to manage the subscription."""
    r = _Renderer(recipient)
    trial_end = _datetime(subscription.get("trialEnd"))
    if trial_end is None:
        raise ValueError(f"subscription {subscription.get('id')} has no trialEnd")
    ends = r.long_date(trial_end)
    ending = bool(subscription.get("cancelAtPeriodEnd")) or subscription.get("cancelAt") is not None
    context = {
        "date": ends,
        "ending": ending,
        "has_payment_method": subscription.get("defaultPaymentMethodId") is not None,
        "portal_url": portal_url,
    }
    return r.message("trial_will_end", sender, r.t(SUBJECT_TRIAL, date=ends), context)


def card_expiring(
    sender: Sender, recipient: Recipient, payment_method: Mapping[str, Any], portal_url: str | None
) -> EmailMessage:
    """ "Your card ending 4242 expires soon": the brand, the last four digits, the month it
    expires in ("December 2026", "Dezember 2026"), and a link to add a new card."""
    r = _Renderer(recipient)
    last4 = payment_method.get("last4") or "????"
    month, year = payment_method.get("expMonth"), payment_method.get("expYear")
    if not (isinstance(month, int) and isinstance(year, int)):
        raise ValueError(f"payment method {payment_method.get('id')} has no expiry date")
    brand = payment_method.get("brand")
    context = {
        "brand": CARD_BRANDS.get(brand, brand.title()) if brand else r.t("card"),
        "last4": last4,
        "month": babel_format_date(date(year, month, 1), format="LLLL y", locale=r.babel_locale),
        "portal_url": portal_url,
    }
    return r.message("card_expiring", sender, r.t(SUBJECT_CARD, last4=last4), context)


# ----------------------------------------------------------------------------- rendering


def resolve_locale(tag: str | None) -> str:
    """The locale amounts and dates are written in: the tag when Babel knows it ("de-DE",
    "de", "pt-BR", "ja-JP"), else en-US. A right-to-left locale whose words we do not
    translate ("ar-KW") gets en-US too: its amounts and dates, with their direction marks,
    would be reordered inside English sentences."""
    if not tag:
        return DEFAULT_LOCALE
    try:
        babel_locale = parse_locale(tag)
    except (UnknownLocaleError, ValueError):
        return DEFAULT_LOCALE
    if babel_locale.character_order != "left-to-right" and babel_locale.language not in TRANSLATED_LANGUAGES:
        return DEFAULT_LOCALE
    return tag


@lru_cache(maxsize=8)
def environment(language: str) -> Environment:
    """One Jinja2 environment per translated language: HTML autoescaped, text not; a
    missing variable is an error, not an empty string."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    catalog = Catalog(language)
    env.install_gettext_callables(catalog.gettext, catalog.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


class _Renderer:
    """One recipient's locale and language."""

    def __init__(self, recipient: Recipient) -> None:
        self.recipient = recipient
        self.locale = resolve_locale(recipient.locale)
        self.babel_locale = parse_locale(self.locale)
        self.catalog = Catalog(self.babel_locale.language)
        self.env = environment(self.catalog.language)

    def t(self, message: str, **values: str) -> str:
        return self.catalog.gettext(message) % values

    def money(self, amount_minor: int, currency: str) -> str:
        return format_money(amount_minor, currency, self.locale)

    def long_date(self, value: date | datetime) -> str:
        return format_date(value, self.locale)

    def short_date(self, value: date | datetime) -> str:
        return babel_format_date(value, format="medium", locale=self.babel_locale)

    def lines(self, invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
        lines = sorted(invoice.get("lines") or [], key=lambda line: line.get("position", 0))
        rows = []
        for line in lines:
            start, end = _datetime(line.get("periodStart")), _datetime(line.get("periodEnd"))
            rows.append(
                {
                    "description": line["description"],
                    "quantity": format_quantity(line["quantity"], self.locale),
                    "amount": self.money(line["amount"], invoice["currency"]),
                    "period": f"{self.short_date(start)} – {self.short_date(end)}" if start and end else None,
                }
            )
        return rows

    def totals(self, invoice: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
        """(label, amount, bold) in Stripe's order, as the PDF has them
        (billing.documents.sources.invoice_total_rows): the amount still due last."""
        currency = invoice["currency"]
        rows: list[tuple[str, int]] = [("Subtotal", invoice["subtotal"])]
        if invoice.get("tax"):
            rows.append(("Tax", invoice["tax"]))
        rows.append(("Total", invoice["total"]))
        if invoice.get("prePaymentCreditNotesAmount"):
            rows.append(("Credit notes", -invoice["prePaymentCreditNotesAmount"]))
        ending = invoice.get("endingBalance")
        applied = ending - invoice.get("startingBalance", 0) if ending is not None else 0
        if applied:
            rows.append(("Applied balance", -applied))
        if invoice.get("amountPaid"):
            rows.append(("Amount paid", invoice["amountPaid"]))
        last = "Amount remaining" if invoice.get("amountPaid") else "Amount due"
        rows.append((last, invoice["amountRemaining"]))
        return [
            (self.t(label), self.money(amount, currency), index == len(rows) - 1)
            for index, (label, amount) in enumerate(rows)
        ]

    def message(self, template: str, sender: Sender, subject: str, context: Mapping[str, Any]) -> EmailMessage:
        values = {
            **context,
            "subject": subject,
            "organization": sender.name,
            "recipient_name": self.recipient.name,
            "reply_to": sender.reply_to,
            "language": self.babel_locale.language,
        }
        text = self.env.get_template(f"{template}.txt").render(values)
        html = self.env.get_template(f"{template}.html").render(values)
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = Address(display_name=sender.name, addr_spec=sender.address)
        message["To"] = Address(display_name=self.recipient.name or "", addr_spec=self.recipient.address)
        if sender.reply_to:
            message["Reply-To"] = sender.reply_to
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message["Content-Language"] = self.locale  # after the content, which clears Content-* headers
        return message


def _attach_pdf(message: EmailMessage, pdf: bytes, number: str) -> None:
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("the attachment is not a PDF (it does not start with %PDF-)")
    language = message["Content-Language"]
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{number}.pdf")
    if language and message["Content-Language"] is None:  # multipart/mixed moved it to the text
        message["Content-Language"] = language


def _number(invoice: Mapping[str, Any]) -> str:
    number = invoice.get("number")
    if not number:
        raise ValueError(f"invoice {invoice.get('id')} has no number: a draft is never emailed")
    return str(number)


def _datetime(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
