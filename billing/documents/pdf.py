"""An invoice or credit note as a PDF, laid out like Stripe's: pure, no database.

The caller builds a `Document` from an invoice or credit note (labels in the document's
language, amounts in minor units) and gets the PDF's bytes. The same Document gives the
same bytes: the creation date is the document's own, never the clock.

The layout is done here rather than with fpdf2's table helper because a row's description
carries its period in smaller grey text under it, and rows must break across pages with
the header repeated, which a page break in the middle of a row would not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos

from billing.documents.fonts import BOLD, REGULAR, font_path
from billing.documents.formatting import format_date, format_money, format_quantity


@dataclass(frozen=True)
class DocumentLine:
    description: str
    amount: int  # minor units, negative for a credit
    quantity: int | None = None
    unit_amount: Decimal | None = None  # minor units, may carry a fraction of one
    period: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Document:
    title: str  # "Invoice" or "Credit note"
    number: str | None  # None on a draft, which has no number yet
    issuer: str  # the organization's name
    bill_to: Sequence[str]  # customer name, email, address lines; empty ones are skipped
    facts: Sequence[tuple[str, date | datetime | str]]  # ("Date of issue", date), ("Invoice", "INV-0001")
    currency: str
    locale: str  # from formatting.document_locale
    lines: Sequence[DocumentLine]
    totals: Sequence[tuple[str, int]]  # ("Subtotal", ...), ..., ("Amount due", ...): the last is bold
    created_at: datetime  # the PDF's creation date (e.g. finalization); aware, so every machine writes the same
    notes: Sequence[str] = ()  # memo and footer lines

    @property
    def label(self) -> str:
        return f"{self.title} {self.number}" if self.number else f"{self.title} (Draft)"


def render_pdf(document: Document) -> bytes:
    """The document as an A4 PDF with DejaVu Sans embedded (MissingFont when it is not
    installed)."""
    if document.created_at.tzinfo is None:
        raise ValueError(
            "Document.created_at must be timezone-aware: a naive time would be read in the machine's zone."
        )
    # twice: the footer's "Page n of m" needs m before page 1 ends (fpdf2's {nb} alias is
    # replaced after the text was measured, which misplaces right-aligned text); the
    # footer sits below the content, so the count from the first pass holds for the second
    pages = _Renderer(document, pages=0).lay_out().page_no()
    return bytes(_Renderer(document, pages).lay_out().output())


# A4 in millimetres, and the layout's grid
_PAGE_WIDTH, _PAGE_HEIGHT = 210.0, 297.0
_MARGIN = 18.0
_CONTENT_WIDTH = _PAGE_WIDTH - 2 * _MARGIN
_BOTTOM = _PAGE_HEIGHT - 22.0  # content stops here; the footer sits below
_FONT = "DejaVu"

# columns: description (wraps), quantity, unit price, amount
_QTY_WIDTH, _UNIT_WIDTH, _AMOUNT_WIDTH = 20.0, 34.0, 34.0
_GAP = 4.0  # between the description and the numbers
_DESCRIPTION_WIDTH = _CONTENT_WIDTH - _QTY_WIDTH - _UNIT_WIDTH - _AMOUNT_WIDTH - _GAP
_TOTALS_WIDTH = _UNIT_WIDTH + _AMOUNT_WIDTH + 34.0  # the totals block, flush right

_BODY, _SMALL, _HEADING, _TITLE = 9.0, 7.5, 11.0, 20.0  # font sizes in points
_LINE, _SMALL_LINE = 4.6, 3.8  # line heights in millimetres for _BODY and _SMALL
_INK, _GREY, _RULE = (26, 31, 54), (105, 115, 134), (205, 210, 220)  # RGB


class _Pages(FPDF):
    """fpdf2's document with our footer, which fpdf2 draws as each page ends."""

    def __init__(self, footer_text: str, pages: int) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text, self.page_count = footer_text, pages

    def footer(self) -> None:
        y = _PAGE_HEIGHT - 14.0
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        self.line(_MARGIN, y - 2.5, _PAGE_WIDTH - _MARGIN, y - 2.5)
        self.set_font(_FONT, "", _SMALL)
        self.set_text_color(*_GREY)
        self.set_xy(_MARGIN, y)
        self.cell(_CONTENT_WIDTH / 2, _SMALL_LINE, self.footer_text)
        self.cell(_CONTENT_WIDTH / 2, _SMALL_LINE, f"Page {self.page_no()} of {self.page_count}", align="R")


class _Renderer:
    def __init__(self, document: Document, pages: int) -> None:
        self.document = document
        pdf = _Pages(f"{document.label} · {document.issuer}", pages)
        # page breaks are placed by _ensure, so a row is never split by fpdf2 in mid-cell
        pdf.set_auto_page_break(False)
        pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
        pdf.c_margin = 0  # text is flush with its column; the columns carry the spacing
        pdf.add_font(_FONT, "", font_path(REGULAR))
        pdf.add_font(_FONT, "B", font_path(BOLD))
        pdf.set_title(document.label)
        pdf.set_author(document.issuer)
        pdf.set_subject(document.label)
        pdf.set_lang(document.locale)
        pdf.set_creation_date(document.created_at)
        self.pdf = pdf

    def lay_out(self) -> _Pages:
        self.pdf.add_page()
        self._header()
        self._table_header()
        for line in self.document.lines:
            self._row(line)
        self._totals()
        self._notes()
        return self.pdf

    # -- the parts, top to bottom

    def _header(self) -> None:
        pdf, document = self.pdf, self.document
        top = pdf.t_margin
        self._font(_TITLE, bold=True)
        pdf.set_xy(_MARGIN, top)
        pdf.cell(_CONTENT_WIDTH / 2, 9, document.title)
        self._font(_HEADING, bold=True)
        # the issuer is right-aligned; a long name wraps within the right half
        y = self._text(_PAGE_WIDTH / 2, top + 1.5, _CONTENT_WIDTH / 2, document.issuer, _LINE + 0.6, align="R")
        self._font(_HEADING, colour=_GREY)
        y = max(y, self._text(_MARGIN, top + 10, _CONTENT_WIDTH / 2, document.number or "Draft", _LINE + 0.6))

        y += 6
        self._font(_BODY)
        label_width = 38.0
        for label, value in document.facts:
            self._font(_BODY, colour=_GREY)
            self._text(_MARGIN, y, label_width, label, _LINE)
            self._font(_BODY)
            y = self._text(_MARGIN + label_width, y, _CONTENT_WIDTH / 2, self._fact(value), _LINE)

        lines = [line for line in document.bill_to if line.strip()]
        if lines:
            y += 6
            self._font(_BODY, bold=True)
            y = self._text(_MARGIN, y, _CONTENT_WIDTH / 2, "Bill to", _LINE)
            self._font(_BODY)
            for line in lines:
                y = self._text(_MARGIN, y, _CONTENT_WIDTH / 2, line, _LINE)
        pdf.set_y(y + 10)

    def _table_header(self) -> None:
        pdf = self.pdf
        y = pdf.get_y()
        self._font(_SMALL, colour=_GREY)
        x = _MARGIN
        pdf.set_xy(x, y)
        pdf.cell(_DESCRIPTION_WIDTH, _SMALL_LINE, "Description")
        x += _DESCRIPTION_WIDTH + _GAP
        for heading, width in (("Qty", _QTY_WIDTH), ("Unit price", _UNIT_WIDTH), ("Amount", _AMOUNT_WIDTH)):
            pdf.set_xy(x, y)
            pdf.cell(width, _SMALL_LINE, heading, align="R")
            x += width
        self._rule(y + _SMALL_LINE + 1.2, dark=True)
        pdf.set_y(y + _SMALL_LINE + 3.2)

    def _row(self, line: DocumentLine) -> None:
        pdf, locale, currency = self.pdf, self.document.locale, self.document.currency
        self._font(_BODY)
        description = self._wrap(line.description, _DESCRIPTION_WIDTH)
        period: list[str] = []
        if line.period is not None:
            start, end = line.period
            self._font(_SMALL)
            period = self._wrap(f"{format_date(start, locale)} – {format_date(end, locale)}", _DESCRIPTION_WIDTH)
        height = len(description) * _LINE + len(period) * _SMALL_LINE
        # keep a row on one page when a page can hold it; a longer one starts right here
        # and flows line by line
        fits_a_page = height <= _BOTTOM - pdf.t_margin - 2 * _LINE
        self._ensure(height if fits_a_page else _LINE, table=True)

        y = pdf.get_y()
        numbers = (
            (format_quantity(line.quantity, locale) if line.quantity is not None else "", _QTY_WIDTH),
            (format_money(line.unit_amount, currency, locale) if line.unit_amount is not None else "", _UNIT_WIDTH),
            (format_money(line.amount, currency, locale), _AMOUNT_WIDTH),
        )
        # the description's first line, then the numbers beside it, then the rest: the
        # order text extraction, copy and paste and screen readers follow
        self._font(_BODY)
        self._lines(description[:1], _LINE)
        x = _MARGIN + _DESCRIPTION_WIDTH + _GAP
        for text, width in numbers:
            self._right(x, y, width, text, _LINE)
            x += width
        pdf.set_y(y + _LINE)
        self._lines(description[1:], _LINE)
        self._font(_SMALL, colour=_GREY)
        self._lines(period, _SMALL_LINE)
        pdf.set_y(pdf.get_y() + 2.2)

    def _totals(self) -> None:
        pdf, document = self.pdf, self.document
        self._rule(pdf.get_y() - 0.6, dark=True)
        pdf.set_y(pdf.get_y() + 2.0)
        x = _PAGE_WIDTH - _MARGIN - _TOTALS_WIDTH
        label_width = _TOTALS_WIDTH - _AMOUNT_WIDTH - _GAP
        for index, (label, amount) in enumerate(document.totals):
            last = index == len(document.totals) - 1
            self._font(_BODY, bold=last)
            labels = self._wrap(label, label_width)
            self._ensure(len(labels) * _LINE + 2.4)
            y = pdf.get_y()
            if index:
                self._rule(y - 1.2, left=x)
            for number, text in enumerate(labels):
                pdf.set_xy(x, y + number * _LINE)
                pdf.cell(label_width, _LINE, text)
            amount_text = format_money(amount, document.currency, document.locale)
            self._right(x + label_width + _GAP, y, _AMOUNT_WIDTH, amount_text, _LINE)
            pdf.set_y(y + len(labels) * _LINE + 2.4)

    def _notes(self) -> None:
        pdf = self.pdf
        if not self.document.notes:
            return
        pdf.set_y(pdf.get_y() + 8)
        self._font(_BODY)
        for note in self.document.notes:
            self._lines(self._wrap(note, _CONTENT_WIDTH), _LINE)
            pdf.set_y(pdf.get_y() + 1.5)

    # -- helpers

    def _fact(self, value: date | datetime | str) -> str:
        return value if isinstance(value, str) else format_date(value, self.document.locale)

    def _font(self, size: float, *, bold: bool = False, colour: tuple[int, int, int] = _INK) -> None:
        self.pdf.set_font(_FONT, "B" if bold else "", size)
        self.pdf.set_text_color(*colour)

    def _wrap(self, text: str, width: float) -> list[str]:
        """`text` broken into lines that fit `width` in the current font (words longer
        than a line are split), so nothing is cut off."""
        lines = self.pdf.multi_cell(width, _LINE, text, dry_run=True, output=MethodReturnValue.LINES)
        assert isinstance(lines, list)  # what output=LINES returns; the union is fpdf2's typing
        return [str(line) for line in lines]

    def _text(self, x: float, y: float, width: float, text: str, height: float, align: str = "L") -> float:
        """Wrapped text at (x, y); returns the y under it."""
        for line in self._wrap(text, width):
            self.pdf.set_xy(x, y)
            self.pdf.cell(width, height, line, align=align)
            y += height
        return y

    def _lines(self, lines: Sequence[str], height: float) -> None:
        """Already wrapped lines of the description column, each on a page that has room."""
        for line in lines:
            self._ensure(height, table=True)
            self.pdf.set_x(_MARGIN)
            self.pdf.cell(_DESCRIPTION_WIDTH, height, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _right(self, x: float, y: float, width: float, text: str, height: float) -> None:
        """Right-aligned text on one line, shrunk rather than cut or spilled into the next
        column when it is wider (a very large amount)."""
        pdf = self.pdf
        size = pdf.font_size_pt
        text_width = pdf.get_string_width(text)
        if text_width > width:
            pdf.set_font_size(size * width / text_width)
        pdf.set_xy(x, y)
        pdf.cell(width, height, text, align="R")
        pdf.set_font_size(size)

    def _rule(self, y: float, *, dark: bool = False, left: float = _MARGIN) -> None:
        self.pdf.set_draw_color(*(_GREY if dark else _RULE))
        self.pdf.set_line_width(0.2)
        self.pdf.line(left, y, _PAGE_WIDTH - _MARGIN, y)

    def _ensure(self, height: float, *, table: bool = False) -> None:
        """A new page (with the table's header again when inside the table) unless
        `height` still fits above the footer; the font in use carries over."""
        pdf = self.pdf
        if pdf.get_y() + height <= _BOTTOM:
            return
        family, style, size = pdf.font_family, pdf.font_style, pdf.font_size_pt
        colour = pdf.text_color
        pdf.add_page()
        pdf.set_y(pdf.t_margin)
        if table:
            self._table_header()
        pdf.set_font(family, style, size)
        pdf.text_color = colour
