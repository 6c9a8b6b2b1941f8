"""tsc on files of a test, with prisma/tsconfig.json's strict options."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from contracts.settings import PROJECT_ROOT

TSC = [shutil.which("npx") or "npx", "--no-install", "tsc"]


def type_check(directory: Path, include: list[Path | str]) -> subprocess.CompletedProcess[str]:
    """`tsc --noEmit` on the files or globs in `include` (tsconfig.json written to
    `directory`, extending prisma/tsconfig.json); errors are on stdout, one per line as
    `file(line,column): error TSnnnn: message`."""
    config = {"extends": str(PROJECT_ROOT / "prisma" / "tsconfig.json"), "include": [str(path) for path in include]}
    (directory / "tsconfig.json").write_text(json.dumps(config, indent=2))
    return subprocess.run(
        [*TSC, "-p", str(directory / "tsconfig.json"), "--pretty", "false"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
