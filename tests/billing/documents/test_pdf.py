import dataclasses
import io
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.documents import fonts
from billing.documents.formatting import format_date, format_money, format_quantity
from billing.documents.pdf import Document, DocumentLine, render_pdf

pytestmark = pytest.mark.unit

NBSP = "\xa0"
MARCH = (datetime(2024, 3, 14, tzinfo=UTC), datetime(2024, 4, 14, tzinfo=UTC))


def document(currency: str = "usd", locale: str = "en-US", lines: Sequence[DocumentLine] | None = None) -> Document:
    if lines is None:
        lines = [
            DocumentLine("Pro plan", 123456, quantity=1, unit_amount=Decimal(123456), period=MARCH),
            DocumentLine("API calls", 1235, quantity=247, unit_amount=Decimal("5")),
            DocumentLine("Metered storage", 5, quantity=1000, unit_amount=Decimal("0.005")),
            DocumentLine("Unused time on Starter", -1999),
        ]
    subtotal = sum(line.amount for line in lines)
    return Document(
        title="Invoice",
        number="INV-0042",
        issuer="Acme Analytics GmbH",
        bill_to=["Jörg Müller", "jorg@example.com", "", "Hauptstraße 5", "10115 Berlin"],
        facts=[("Date of issue", date(2024, 3, 14)), ("Date due", datetime(2024, 4, 13, tzinfo=UTC)), ("PO", "PO-77")],
        currency=currency,
        locale=locale,
        lines=lines,
        totals=[
            ("Subtotal", subtotal),
            ("Tax 8.875 %", 1096),
            ("Total", subtotal + 1096),
            ("Amount due", subtotal + 1096),
        ],
        created_at=datetime(2024, 3, 14, 12, 0, tzinfo=UTC),
        notes=["Thank you for your business.", "Questions? billing@acme.example"],
    )


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


@pytest.mark.parametrize(
    ("currency", "locale", "literals"),
    [
        ("usd", "en-US", ["$1,234.56", "$12.35", "$0.00005", "-$19.99", "$1,237.93", "Page 1 of 1"]),
        ("eur", "de-DE", [f"1.234,56{NBSP}€", f"-19,99{NBSP}€", "14. März 2024", "13. April 2024"]),
        ("jpy", "en-US", ["¥123,456", "¥1,235", "¥0.005", "-¥1,999"]),
        ("kwd", "en-US", [f"KWD{NBSP}123.456", f"KWD{NBSP}1.235", f"-KWD{NBSP}1.999"]),
    ],
)
def test_the_pdf_shows_every_line_and_total(currency: str, locale: str, literals: list[str]) -> None:
    doc = document(currency, locale)
    (text,) = pages_text(render_pdf(doc))

    assert "Invoice" in text
    assert "INV-0042" in text
    assert "Acme Analytics GmbH" in text
    assert "Jörg Müller" in text
    assert "Hauptstraße 5" in text
    assert format_date(date(2024, 3, 14), locale) in text
    assert "PO-77" in text
    for line in doc.lines:
        assert line.description in text
        assert format_money(line.amount, currency, locale) in text
        if line.unit_amount is not None:
            assert format_money(line.unit_amount, currency, locale) in text
        if line.quantity is not None:
            assert format_quantity(line.quantity, locale) in text
    assert f"{format_date(MARCH[0], locale)} – {format_date(MARCH[1], locale)}" in text
    for label, amount in doc.totals:
        assert label in text
        assert format_money(amount, currency, locale) in text
    for note in doc.notes:
        assert note in text
    for literal in literals:
        assert literal in text


def test_text_reads_label_then_amount() -> None:
    (text,) = pages_text(render_pdf(document()))
    assert "Pro plan 1 $1,234.56 $1,234.56" in text
    assert "Amount due $1,237.93" in text


def test_every_character_has_a_glyph(caplog: pytest.LogCaptureFixture) -> None:
    # fpdf2 logs, and prints nothing for, a character the font lacks
    doc = dataclasses.replace(
        document("eur", "fr-FR"),
        bill_to=["Иван Петров", "Αθήνα 105 57", "Zürich, Łódź, Øresund"],
        notes=["€ £ ¥ – · ‘quotes’"],
    )
    with caplog.at_level(logging.WARNING):
        text = pages_text(render_pdf(doc))[0]
    assert not [record for record in caplog.records if "missing" in record.getMessage()]
    assert "Иван Петров" in text
    assert "Αθήνα 105 57" in text
    assert "€ £ ¥ – · ‘quotes’" in text
    assert f"1\u202f234,56{NBSP}€" in text  # the narrow no-break space French groups with


def test_many_lines_flow_onto_pages_with_the_header_repeated() -> None:
    lines = [
        DocumentLine(
            f"Seat {index:03d} for user{index:03d}@example.com",
            1200 + index,
            quantity=1,
            unit_amount=Decimal(1200 + index),
        )
        for index in range(120)
    ]
    texts = pages_text(render_pdf(document(lines=lines)))
    pages = len(texts)

    assert pages >= 3
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {pages}" in text
        assert "Description" in text  # the table's header, on every page
        assert "Unit price" in text
    full = "\n".join(texts)
    for index, line in enumerate(lines):
        assert full.count(line.description) == 1
        assert format_money(1200 + index, "usd", "en-US") in full
    assert "Amount due" in texts[-1]
    assert "Amount due" not in texts[0]


def test_a_long_description_wraps_without_losing_a_word() -> None:
    words = [f"word{index:02d}" for index in range(60)]
    unbreakable = "https://example.com/" + "x" * 150  # longer than the column: split by characters
    description = " ".join([*words, unbreakable])
    (text,) = pages_text(render_pdf(document(lines=[DocumentLine(description, 100)])))

    positions = [text.index(word) for word in words]
    assert positions == sorted(positions)  # all there, in order
    assert description not in text  # ... on several lines
    assert unbreakable in text.replace("\n", "")


def test_a_description_longer_than_a_page_flows_onto_the_next() -> None:
    words = [f"w{index:04d}" for index in range(1500)]
    texts = pages_text(render_pdf(document(lines=[DocumentLine(" ".join(words), 100)])))

    assert len(texts) >= 2
    full = "\n".join(texts)
    assert all(word in full for word in words)
    assert all("Description" in text for text in texts)


def test_a_draft_says_so() -> None:
    doc = dataclasses.replace(document(), number=None, title="Credit note")
    pdf = render_pdf(doc)
    (text,) = pages_text(pdf)
    assert "Credit note" in text
    assert "Draft" in text
    assert "INV-0042" not in text
    metadata = PdfReader(io.BytesIO(pdf)).metadata
    assert metadata is not None
    assert metadata.title == "Credit note (Draft)"


def test_the_same_document_gives_the_same_bytes() -> None:
    doc = document("eur", "de-DE")
    first = render_pdf(doc)
    assert render_pdf(doc) == first
    assert render_pdf(dataclasses.replace(doc, created_at=datetime(2024, 3, 15, tzinfo=UTC))) != first


def test_metadata() -> None:
    metadata = PdfReader(io.BytesIO(render_pdf(document()))).metadata
    assert metadata is not None
    assert metadata.title == "Invoice INV-0042"
    assert metadata.author == "Acme Analytics GmbH"
    assert metadata.creation_date == datetime(2024, 3, 14, 12, 0, tzinfo=UTC)


def test_a_naive_creation_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_pdf(dataclasses.replace(document(), created_at=datetime(2024, 3, 14, 12, 0)))


def test_a_missing_font_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fonts, "FONT_DIRECTORY", tmp_path)
    with pytest.raises(fonts.MissingFont, match="fonts-dejavu-core"):
        render_pdf(document())
