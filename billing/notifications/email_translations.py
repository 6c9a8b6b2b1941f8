"""The customer emails' words in each language we translate: English (the message ids
themselves) and German. Any other language gets English words, with its own amounts and
dates (Babel formats those for every CLDR locale).

A small dict rather than gettext catalogs: two languages, a few dozen strings. A test
checks that every string the templates and billing/notifications/emails.py ask for has a
German translation, and that the placeholders match.
"""

from __future__ import annotations

from collections.abc import Mapping

# message id -> German; placeholders are %(name)s, as jinja2.ext.i18n's newstyle gettext
GERMAN: Mapping[str, str] = {
    # subjects
    "Your invoice %(number)s from %(organization)s": "Ihre Rechnung %(number)s von %(organization)s",
    "Receipt from %(organization)s": "Zahlungsbeleg von %(organization)s",
    "Your payment to %(organization)s failed": "Ihre Zahlung an %(organization)s ist fehlgeschlagen",
    "Your trial ends on %(date)s": "Ihr Testzeitraum endet am %(date)s",
    "Your card ending %(last4)s expires soon": "Ihre Karte mit den Endziffern %(last4)s läuft bald ab",
    # the layout
    "Hello %(name)s,": "Hallo %(name)s,",
    "Hello,": "Hallo,",
    "You receive this email as a customer of %(organization)s.": (
        "Sie erhalten diese E-Mail als Kunde von %(organization)s."
    ),
    "Questions? Reply to this email.": "Fragen? Antworten Sie einfach auf diese E-Mail.",
    # invoice finalized
    "Invoice %(number)s": "Rechnung %(number)s",
    "%(organization)s has sent you invoice %(number)s for %(amount)s.": (
        "%(organization)s hat Ihnen die Rechnung %(number)s über %(amount)s gesendet."
    ),
    "It is due on %(date)s.": "Sie ist am %(date)s fällig.",
    "It will be charged to your payment method on file.": "Der Betrag wird von Ihrer hinterlegten Zahlungsmethode eingezogen.",
    "Nothing is due.": "Es ist nichts zu zahlen.",
    "The invoice is attached as a PDF.": "Die Rechnung ist als PDF angehängt.",
    "View and pay invoice": "Rechnung ansehen und bezahlen",
    "View invoice": "Rechnung ansehen",
    "Amount due": "Fälliger Betrag",
    "Due date": "Fälligkeitsdatum",
    # receipt
    "Receipt for invoice %(number)s": "Beleg zur Rechnung %(number)s",
    "We received your payment of %(amount)s. Thank you!": "Wir haben Ihre Zahlung über %(amount)s erhalten. Vielen Dank!",
    "Amount paid": "Gezahlter Betrag",
    "Paid on": "Bezahlt am",
    "Invoice number": "Rechnungsnummer",
    "The invoice is attached as a PDF for your records.": "Die Rechnung ist für Ihre Unterlagen als PDF angehängt.",
    # payment failed
    "Payment failed": "Zahlung fehlgeschlagen",
    "We could not collect %(amount)s for invoice %(number)s from your payment method.": (
        "Wir konnten %(amount)s für die Rechnung %(number)s nicht von Ihrer Zahlungsmethode einziehen."
    ),
    "We will try again on %(date)s.": "Wir versuchen es am %(date)s erneut.",
    "We will not try again automatically.": "Wir versuchen es nicht automatisch erneut.",
    "Please update your payment method so the invoice can be paid.": (
        "Bitte aktualisieren Sie Ihre Zahlungsmethode, damit die Rechnung bezahlt werden kann."
    ),
    "Update payment method": "Zahlungsmethode aktualisieren",
    "Next attempt": "Nächster Versuch",
    # trial ending
    "Your trial ends soon": "Ihr Testzeitraum endet bald",
    "Your trial with %(organization)s ends on %(date)s.": "Ihr Testzeitraum bei %(organization)s endet am %(date)s.",
    "After that, your subscription continues and your payment method on file is charged.": (
        "Danach läuft Ihr Abonnement weiter und Ihre hinterlegte Zahlungsmethode wird belastet."
    ),
    "Add a payment method before then to keep your subscription.": (
        "Hinterlegen Sie bis dahin eine Zahlungsmethode, um Ihr Abonnement zu behalten."
    ),
    "Your subscription is set to end then.": "Ihr Abonnement endet dann wie vorgesehen.",
    "Manage subscription": "Abonnement verwalten",
    # card expiring
    "Your card expires soon": "Ihre Karte läuft bald ab",
    "Your %(brand)s card ending in %(last4)s expires at the end of %(month)s.": (
        "Ihre %(brand)s-Karte mit den Endziffern %(last4)s läuft Ende %(month)s ab."
    ),
    "Please add a new card to avoid interrupting your subscription.": (
        "Bitte hinterlegen Sie eine neue Karte, damit Ihr Abonnement nicht unterbrochen wird."
    ),
    "card": "Karte",
    # invoice tables
    "Description": "Beschreibung",
    "Qty": "Menge",
    "Amount": "Betrag",
    "Subtotal": "Zwischensumme",
    "Tax": "Steuer",
    "Total": "Gesamt",
    "Credit notes": "Gutschriften",
    "Applied balance": "Verrechnetes Guthaben",
    "Amount remaining": "Offener Betrag",
}

CATALOGS: Mapping[str, Mapping[str, str]] = {"de": GERMAN}
TRANSLATED_LANGUAGES = ("en", *CATALOGS)


class Catalog:
    """gettext and ngettext over one language's dict; English (the ids) where it has none."""

    def __init__(self, language: str) -> None:
        self.language = language if language in CATALOGS else "en"
        self._messages: Mapping[str, str] = CATALOGS.get(self.language, {})

    def gettext(self, message: str) -> str:
        return self._messages.get(message, message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)
