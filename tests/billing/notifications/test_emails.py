"""Customer emails rendered from the API's JSON: subjects and headers, amounts and dates in
the customer's locale and currency, the PDF attachment, HTML escaping, and a German
translation for every word the templates ask for."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import pytest

from billing.notifications import emails
from billing.notifications.email_translations import GERMAN, TRANSLATED_LANGUAGES
from billing.notifications.emails import Recipient, Sender

from .email_fixtures import invoice_json, payment_method_json, subscription_json

pytestmark = pytest.mark.unit

NBSP = "\xa0"
PDF = b"%PDF-1.7\n% a test document\n%%EOF\n"
ACME = Sender("Acme", "billing@acme.test", reply_to="support@acme.test")
PORTAL = "https://portal.acme.test/session/ps_123?return=a&b=c"


def ada(locale: str = "en-US", name: str | None = "Ada Lovelace") -> Recipient:
    return Recipient("ada@example.com", name, locale)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def attachments(message: EmailMessage) -> list[tuple[str | None, str, bytes]]:
    found = []
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_content()
        assert isinstance(payload, bytes)
        found.append((part.get_filename(), part.get_content_type(), payload))
    return found


def test_invoice_finalized_has_its_subject_headers_amounts_and_the_pdf() -> None:
    invoice = invoice_json(lines=[("Analytics seats", 2, 3000)], tax=266)
    message = emails.invoice_finalized(ACME, ada(), invoice, PDF, PORTAL)

    assert message["Subject"] == "Your invoice INV-0001 from Acme"
    assert message["From"] == "Acme <billing@acme.test>"
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert message["Reply-To"] == "support@acme.test"
    assert message["Content-Language"] == "en-US"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/mixed"
    body = message.get_body(("related", "html", "plain"))
    assert body is not None
    alternative = next(part for part in message.iter_parts() if part.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]

    assert attachments(message) == [("INV-0001.pdf", "application/pdf", PDF)]

    text, html = parts(message)
    for body_text in (text, html):
        assert "Acme has sent you invoice INV-0001 for $32.66." in body_text
        assert "It is due on January 6, 2027." in body_text
        assert "Analytics seats" in body_text
        for amount in ("$30.00", "$2.66", "$32.66"):
            assert amount in body_text, amount
        assert "Dec 7, 2026 – Jan 7, 2027" in body_text  # the line's period
    assert f"View and pay invoice: {PORTAL}" in text
    assert 'href="https://portal.acme.test/session/ps_123?return=a&amp;b=c"' in html
    assert '<html lang="en">' in html


def test_an_invoice_charged_automatically_says_so_and_links_to_view_only() -> None:
    invoice = invoice_json(collectionMethod="charge_automatically", dueDate=None)
    text, html = parts(emails.invoice_finalized(ACME, ada(), invoice, PDF, None))
    assert "It will be charged to your payment method on file." in text
    assert "due on" not in text
    assert "View" not in text  # no portal link without a portal URL
    assert "href=" not in html


@pytest.mark.parametrize(
    ("currency", "locale", "amount", "expected"),
    [
        ("usd", "en-US", 123456, "$1,234.56"),
        ("eur", "de-DE", 123456, f"1.234,56{NBSP}€"),
        ("jpy", "en-US", 12000, "¥12,000"),  # no decimals
        ("jpy", "ja-JP", 12000, "￥12,000"),
        ("kwd", "en-US", 12345, f"KWD{NBSP}12.345"),  # three decimals
        ("kwd", "de-DE", 1234567, f"1.234,567{NBSP}KWD"),
    ],
)
def test_amounts_are_in_the_customer_currency_and_locale(
    currency: str, locale: str, amount: int, expected: str
) -> None:
    invoice = invoice_json(currency=currency, lines=[("Plan", 1, amount)])
    for message in (
        emails.invoice_finalized(ACME, ada(locale), invoice, PDF, PORTAL),
        emails.payment_failed(ACME, ada(locale), invoice, PORTAL),
    ):
        text, html = parts(message)
        assert expected in text and expected in html, (expected, text)
    paid = invoice_json(currency=currency, lines=[("Plan", 1, amount)], paid=True)
    text, html = parts(emails.payment_receipt(ACME, ada(locale), paid, None))
    assert expected in text and expected in html


def test_german_customers_get_german_words_dates_and_amounts() -> None:
    invoice = invoice_json(currency="eur", lines=[("Analytics-Plätze", 1000, 123456)], tax=23456)
    message = emails.invoice_finalized(ACME, ada("de-DE", "Jürgen Müller"), invoice, PDF, PORTAL)
    assert message["Subject"] == "Ihre Rechnung INV-0001 von Acme"
    assert message["To"] == "Jürgen Müller <ada@example.com>"
    assert message["Content-Language"] == "de-DE"
    text, html = parts(message)
    for body in (text, html):
        assert "Hallo Jürgen Müller," in body
        assert f"Acme hat Ihnen die Rechnung INV-0001 über 1.469,12{NBSP}€ gesendet." in body
        assert "Sie ist am 6. Januar 2027 fällig." in body
        assert "Zwischensumme" in body and f"234,56{NBSP}€" in body
        assert "1.000" in body  # the quantity, grouped the German way
    assert "Rechnung ansehen und bezahlen" in html
    assert "Invoice" not in text  # nothing left in English

    failed = emails.payment_failed(
        ACME, ada("de-AT"), invoice_json(currency="eur", nextPaymentAttempt="2026-12-10T12:00:00Z"), PORTAL
    )
    assert failed["Subject"] == "Ihre Zahlung an Acme ist fehlgeschlagen"
    assert "Wir versuchen es am 10. Dezember 2026 erneut." in parts(failed)[0]


def test_payment_receipt_says_what_was_paid_and_when_and_attaches_the_pdf_when_given() -> None:
    invoice = invoice_json(paid=True, lines=[("Analytics seats", 2, 3000)])
    with_pdf = emails.payment_receipt(ACME, ada(), invoice, PDF)
    assert with_pdf["Subject"] == "Receipt from Acme"
    assert attachments(with_pdf) == [("INV-0001.pdf", "application/pdf", PDF)]
    text, html = parts(with_pdf)
    assert "We received your payment of $30.00. Thank you!" in text
    assert "We received your payment of $30.00. Thank you!" in html
    assert "Paid on: December 8, 2026" in text
    assert "Amount remaining: $0.00" in text
    assert "attached as a PDF" in text

    without = emails.payment_receipt(ACME, ada("de-DE"), invoice, None)
    assert without["Subject"] == "Zahlungsbeleg von Acme"
    assert attachments(without) == []
    assert without.get_content_type() == "multipart/alternative"
    assert "PDF" not in parts(without)[0]


def test_payment_failed_names_the_next_attempt_and_links_to_update_the_card() -> None:
    invoice = invoice_json(amountPaid=0, nextPaymentAttempt="2026-12-10T12:00:00Z", attemptCount=2)
    message = emails.payment_failed(ACME, ada(), invoice, PORTAL)
    assert message["Subject"] == "Your payment to Acme failed"
    assert attachments(message) == []
    text, html = parts(message)
    assert "We could not collect $30.00 for invoice INV-0001 from your payment method." in text
    assert "We will try again on December 10, 2026." in text
    assert f"Update payment method: {PORTAL}" in text
    assert re.search(r'<a href="[^"]*ps_123[^"]*"[^>]*>Update payment method</a>', html)

    last = emails.payment_failed(ACME, ada(), invoice_json(nextPaymentAttempt=None), PORTAL)
    assert "We will not try again automatically." in parts(last)[0]


def test_trial_will_end_puts_the_date_in_the_subject() -> None:
    subscription = subscription_json(trialEnd="2026-12-10T00:00:00Z")
    message = emails.trial_will_end(ACME, ada("en-GB"), subscription, PORTAL)
    assert message["Subject"] == "Your trial ends on 10 December 2026"
    text, _ = parts(message)
    assert "Your trial with Acme ends on 10 December 2026." in text
    assert "your payment method on file is charged" in text

    german = emails.trial_will_end(ACME, ada("de-DE"), subscription, PORTAL)
    assert german["Subject"] == "Ihr Testzeitraum endet am 10. Dezember 2026"

    no_card = emails.trial_will_end(ACME, ada(), subscription_json(defaultPaymentMethodId=None), PORTAL)
    assert "Add a payment method before then" in parts(no_card)[0]
    ending = emails.trial_will_end(ACME, ada(), subscription_json(cancelAtPeriodEnd=True), PORTAL)
    assert "Your subscription is set to end then." in parts(ending)[0]

    with pytest.raises(ValueError, match="no trialEnd"):
        emails.trial_will_end(ACME, ada(), subscription_json(trialEnd=None, trialStart=None), PORTAL)


def test_card_expiring_names_the_card_and_the_month() -> None:
    message = emails.card_expiring(ACME, ada(), payment_method_json(brand="mastercard", last4="4444"), PORTAL)
    assert message["Subject"] == "Your card ending 4444 expires soon"
    text, html = parts(message)
    assert "Your Mastercard card ending in 4444 expires at the end of December 2026." in text
    assert "Update payment method" in html

    german = emails.card_expiring(ACME, ada("de-DE"), payment_method_json(), PORTAL)
    assert german["Subject"] == "Ihre Karte mit den Endziffern 4242 läuft bald ab"
    assert "Ihre Visa-Karte mit den Endziffern 4242 läuft Ende Dezember 2026 ab." in parts(german)[0]


def test_a_customer_name_is_escaped_in_html_and_quoted_in_headers() -> None:
    evil = '<script>alert("x")</script> & Co'
    sender = Sender('Acme <b>"Corp"</b>', "billing@acme.test")
    message = emails.invoice_finalized(sender, ada(name=evil), invoice_json(), PDF, PORTAL)
    text, html = parts(message)
    assert "<script>" not in html and "<b>" not in html
    assert "Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co," in html
    assert "Acme &lt;b&gt;&#34;Corp&#34;&lt;/b&gt;" in html
    assert f"Hello {evil}," in text  # the text part is not HTML: left as written
    # the header carries the name as a quoted display name, never as extra addresses
    assert message["To"].addresses[0].addr_spec == "ada@example.com"
    assert message["To"].addresses[0].display_name == evil
    assert len(message["To"].addresses) == 1
    assert message["Reply-To"] is None  # the sender has none


def test_descriptions_are_escaped_too() -> None:
    invoice = invoice_json(lines=[("<img src=x onerror=alert(1)>", 1, 100)])
    _, html = parts(emails.invoice_finalized(ACME, ada(), invoice, PDF, PORTAL))
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_no_name_gets_a_plain_greeting_and_an_unknown_locale_falls_back_to_en_us() -> None:
    message = emails.payment_failed(ACME, ada("xx-nope", name=None), invoice_json(currency="eur"), None)
    assert message["To"] == "ada@example.com"
    assert message["Content-Language"] == "en-US"
    text, _ = parts(message)
    assert "Hello,\n" in text
    assert "€30.00" in text
    assert emails.resolve_locale("") == "en-US"
    assert emails.resolve_locale("fr-FR") == "fr-FR"  # amounts and dates in French, words in English
    assert emails.resolve_locale("ar-KW") == "en-US"  # right to left and not translated


def test_an_invoice_without_a_number_or_an_attachment_that_is_not_a_pdf_is_refused() -> None:
    with pytest.raises(ValueError, match="no number"):
        emails.invoice_finalized(ACME, ada(), invoice_json(number=None, status="draft"), PDF, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a PDF"):
        emails.invoice_finalized(ACME, ada(), invoice_json(), b"<html>", None)


def _template_messages() -> set[str]:
    env = emails.environment("en")
    found: set[str] = set()
    for path in sorted(emails.TEMPLATES.iterdir()):
        source = path.read_text()
        for _, _, message in env.extract_translations(source):  # type: ignore[attr-defined]
            # a call with keyword arguments gives (message id, None, ...)
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_word_asked_for_has_a_german_translation_with_the_same_placeholders() -> None:
    assert TRANSLATED_LANGUAGES == ("en", "de")
    wanted = _template_messages() | set(emails.PYTHON_MESSAGES)
    assert len(wanted) >= 35  # the extraction found the templates' words
    missing = sorted(wanted - set(GERMAN))
    assert not missing, missing
    unused = sorted(set(GERMAN) - wanted)
    assert not unused, unused
    for message in wanted:
        assert set(re.findall(r"%\((\w+)\)s", message)) == set(re.findall(r"%\((\w+)\)s", GERMAN[message])), message


def _every_email(recipient: Recipient) -> list[EmailMessage]:
    invoice: dict[str, Any] = invoice_json(nextPaymentAttempt="2026-12-10T12:00:00Z")
    return [
        emails.invoice_finalized(ACME, recipient, invoice, PDF, PORTAL),
        emails.payment_receipt(ACME, recipient, invoice_json(paid=True), PDF),
        emails.payment_failed(ACME, recipient, invoice, PORTAL),
        emails.trial_will_end(ACME, recipient, subscription_json(), PORTAL),
        emails.card_expiring(ACME, recipient, payment_method_json(), PORTAL),
    ]


def test_every_email_in_german_has_no_english_sentence_left() -> None:
    english = {"Hello", "Your ", "Please", "Invoice", "Amount", "We ", "receive this email"}
    for message in _every_email(ada("de-DE")):
        text, html = parts(message)
        for body in (text, html):
            left = [word for word in english if word in body]
            assert not left, (message["Subject"], left, body)
