"""What every stack service reports, and where the stack keeps its files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

Mode = Literal["managed", "external", "embedded"]


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One row of `billing stack status`.

    mode: "managed" (a server `billing stack up` runs from the data dir), "external"
    (the settings point elsewhere; we only check it answers) or "embedded" (in-process).
    """

    name: str
    mode: Mode
    healthy: bool
    address: str
    pid: int | None = None
    data_dir: Path | None = None
    log_file: Path | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("data_dir", "log_file"):
            if d[key] is not None:
                d[key] = str(d[key])
        return d


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def lock_file(data_dir: Path) -> Path:
    return data_dir / "stack.lock"
