"""The font embedded in billing documents, and which characters it can print.

DejaVu Sans covers Latin, Greek, Cyrillic and the currency signs and spaces Babel emits
(€, £, ¥, U+00A0, U+202F, U+2212), but not CJK. It comes from the Debian package
fonts-dejavu-core (`make chromium` installs it).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

# fontTools (fpdf2's font parser) ships no type information; only its cmap is read here
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

FONT_DIRECTORY = Path("/usr/share/fonts/truetype/dejavu")
FONT_PACKAGE = "fonts-dejavu-core"
REGULAR = "DejaVuSans.ttf"
BOLD = "DejaVuSans-Bold.ttf"


class MissingFont(FileNotFoundError):
    """The TTF the renderer embeds is not installed."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"Font file {path} is missing: install the Debian package {FONT_PACKAGE} "
            f"(`apt-get install {FONT_PACKAGE}`, or `make chromium`)."
        )


def font_path(name: str) -> Path:
    """The path of one of the font files, or MissingFont naming the package to install."""
    path = FONT_DIRECTORY / name
    if not path.is_file():
        raise MissingFont(path)
    return path


def can_print(text: str) -> bool:
    """Whether every character of `text` has a glyph in both embedded faces (any text may
    be printed bold, e.g. the last total, and the faces' coverage differs slightly)."""
    points = _printable(font_path(REGULAR), font_path(BOLD))
    return all(ord(char) in points for char in text)


@cache
def _printable(regular: Path, bold: Path) -> frozenset[int]:
    return _code_points(regular) & _code_points(bold)


def _code_points(path: Path) -> frozenset[int]:
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())
