"""Prisma custom generator: writes the SQLAlchemy models, the Python enums, the API
resource models and the shapes of Json fields (Python and TypeScript) from the Prisma
schema and prisma/json-shapes.toml.

`npx prisma generate` starts this script (the `generator python` block of
prisma/schema.prisma) and speaks JSON-RPC to it: one request per line on stdin
(`getManifest`, then `generate` with the DMMF), one reply per line on stderr.

Only the standard library is used, so Prisma can start it with any python3.
Set BILLING_GENERATOR_ROOT to write the files under another project root (the drift test
does this to compare a fresh generation with the committed files).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from json_shapes import load_shapes
from schema_model import GeneratorError, build_schema
from writers import write_all


def _reply(request_id: int, result: object = None, error: str | None = None) -> None:
    message: dict[str, object] = {"jsonrpc": "2.0", "id": request_id}
    if error is None:
        message["result"] = result
    else:
        message["error"] = {"code": -32000, "message": error, "data": {"message": error}}
    sys.stderr.write(json.dumps(message) + "\n")
    sys.stderr.flush()


def _project_root(params: dict) -> Path:
    override = os.environ.get("BILLING_GENERATOR_ROOT")
    if override:
        return Path(override).resolve()
    return Path(params["schemaPath"]).resolve().parent.parent


def generate(params: dict) -> list[Path]:
    # the shapes of Json fields live next to the schema
    shapes = load_shapes(Path(params["schemaPath"]).resolve().parent / "json-shapes.toml")
    schema = build_schema(params["dmmf"]["datamodel"], shapes)
    return write_all(schema, params["dmmf"]["datamodel"], _project_root(params))


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        method = request.get("method")
        if method == "getManifest":
            _reply(
                request["id"],
                {
                    "manifest": {
                        "prettyName": "SQLAlchemy models and resource models",
                        "defaultOutput": "../billing/models",
                    }
                },
            )
        elif method == "generate":
            try:
                generate(request["params"])
            except GeneratorError as error:
                _reply(request["id"], error=str(error))
            except Exception:  # an unexpected failure must still reach Prisma's output
                _reply(request["id"], error=traceback.format_exc())
            else:
                _reply(request["id"], None)
        else:
            _reply(request["id"], error=f"unknown method {method!r}")


if __name__ == "__main__":
    main()
