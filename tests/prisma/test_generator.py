"""The generated code matches the schema, and the generator refuses what it cannot model."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts.settings import PROJECT_ROOT

SCHEMA = PROJECT_ROOT / "prisma" / "schema.prisma"
JSON_SHAPES = PROJECT_ROOT / "prisma" / "json-shapes.toml"
GENERATED_PYTHON = [
    "contracts/enums.py",
    "contracts/resources.py",
    "contracts/json_shapes.py",
    "prisma/generated/json-shapes.ts",
    "prisma/generated/dmmf.json",
]


def generate_into(root: Path, schema_text: str, shapes_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `prisma generate` on `schema_text` (and the Json shapes, the committed ones
    unless given) with every output under `root`."""
    (root / "prisma").mkdir(parents=True, exist_ok=True)
    schema = root / "prisma" / "schema.prisma"
    schema.write_text(schema_text)
    (root / "prisma" / "json-shapes.toml").write_text(JSON_SHAPES.read_text() if shapes_text is None else shapes_text)
    env = {**os.environ, "BILLING_GENERATOR_ROOT": str(root)}
    return subprocess.run(
        [str(PROJECT_ROOT / "prisma" / "generate.sh"), "--schema", str(schema)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def drift(fresh: Path) -> list[str]:
    """Files that differ between a fresh generation under `fresh` and the committed tree."""
    differences = []
    for relative in GENERATED_PYTHON:
        if not filecmp.cmp(fresh / relative, PROJECT_ROOT / relative, shallow=False):
            differences.append(relative)
    for tree in ("billing/models", "prisma/generated/client"):
        comparison = filecmp.dircmp(fresh / tree, PROJECT_ROOT / tree, ignore=["__pycache__"])
        differences += _tree_differences(comparison, tree)
    return differences


def _tree_differences(comparison: filecmp.dircmp[str], prefix: str) -> list[str]:
    found = [f"{prefix}/{name}" for name in comparison.left_only + comparison.right_only + comparison.diff_files]
    # dircmp compares by stat signature first; compare the contents of the rest too
    _, mismatch, errors = filecmp.cmpfiles(comparison.left, comparison.right, comparison.same_files, shallow=False)
    found += [f"{prefix}/{name}" for name in mismatch + errors]
    for name, sub in comparison.subdirs.items():
        found += _tree_differences(sub, f"{prefix}/{name}")
    return found


def test_regenerating_from_the_committed_schema_changes_nothing(tmp_path: Path) -> None:
    result = generate_into(tmp_path, SCHEMA.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert drift(tmp_path) == [], "generated files drifted from prisma/schema.prisma: run `make generate` and commit"


def test_an_edit_to_the_schema_without_regenerating_is_caught(tmp_path: Path) -> None:
    edited = SCHEMA.read_text().replace(
        "  phone                  String?   @db.VarChar(64)\n",
        "  phone                  String?   @db.VarChar(64)\n  nickname               String?   @db.VarChar(80)\n",
    )
    assert edited != SCHEMA.read_text()
    result = generate_into(tmp_path, edited)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(drift(tmp_path)) >= {
        "billing/models/customers.py",
        "contracts/resources.py",
        "prisma/generated/dmmf.json",
        "prisma/generated/client/models/Customer.ts",
    }


MINIMAL_HEAD = """
generator python {
  provider = "python3 prisma/generator/main.py"
  output   = "../billing/models"
}
datasource db {
  provider = "postgresql"
}
"""


TENANT_SCOPED = """
/// @domain things
model Owner {
  id     String  @id
  tenant String
  things Thing[]

  @@unique([tenant, id])
}

/// @domain things
model Thing {
  id      String  @id
  tenant  String
  ownerId String?
  owner   Owner?  @relation(fields: [tenant, ownerId], references: [tenant, id], onDelete: SetNull)
}
"""


def test_a_tenant_scoped_relation_joins_on_the_tenant_and_sets_only_its_reference_null(tmp_path: Path) -> None:
    result = generate_into(tmp_path, MINIMAL_HEAD + TENANT_SCOPED)
    assert result.returncode == 0, result.stdout + result.stderr
    models = (tmp_path / "billing" / "models" / "things.py").read_text()
    # the column list is SQL: a camelCase column is quoted, or Postgres would fold it
    constraint = (
        '        ForeignKeyConstraint(\n            ["tenant", "ownerId"],\n            ["Owner.tenant", "Owner.id"],\n'
        '            name="Thing_tenant_ownerId_fkey",\n            ondelete=\'SET NULL ("ownerId")\',\n'
        '            onupdate="CASCADE",\n        ),'
    )
    assert constraint in models
    # both sides join on the tenant, and neither writes it
    join = 'primaryjoin="and_(Thing.tenant == Owner.tenant, foreign(Thing.owner_id) == Owner.id)"'
    assert models.count(join) == 2


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "/// @domain things\nmodel Thing {\n  id String @id\n  tags String[]\n}",
            "model Thing, field tags: scalar lists are not supported",
        ),
        (
            "model Thing {\n  id String @id\n}",
            "model Thing: add a `/// @domain NAME` comment",
        ),
        (
            '/// @domain things\nmodel Thing {\n  id String @id @default(dbgenerated("gen_random_uuid()"))\n}',
            "model Thing, field id: the default @default(dbgenerated(...)) is not supported",
        ),
        (
            "/// @domain things\nmodel Thing {\n  id String @id\n  at DateTime @db.Time(3)\n}",
            "model Thing, field at: native type @db.Time on DateTime is not supported",
        ),
        (
            TENANT_SCOPED.replace("ownerId String?", "ownerId String "),
            "model Thing, field owner: onDelete: SetNull needs an optional field in the relation",
        ),
    ],
)
def test_an_unsupported_construct_stops_generation_naming_model_and_field(
    tmp_path: Path, model: str, message: str
) -> None:
    result = generate_into(tmp_path, MINIMAL_HEAD + model + "\n")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "billing" / "models" / "things.py").exists()


def test_a_schema_prisma_rejects_stops_generation_with_prismas_message(tmp_path: Path) -> None:
    result = generate_into(tmp_path, MINIMAL_HEAD + "/// @domain things\nmodel Thing {\n  id Strin @id\n}\n")
    assert result.returncode != 0
    assert "Strin" in result.stdout + result.stderr
    assert not (tmp_path / "billing").exists()


def test_generated_typescript_type_checks_and_rejects_a_wrong_field_type(tmp_path: Path) -> None:
    tsc = [shutil.which("npx") or "npx", "--no-install", "tsc", "-p", str(PROJECT_ROOT / "prisma" / "tsconfig.json")]
    clean = subprocess.run(tsc, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    probe = PROJECT_ROOT / "prisma" / "types" / f"probe_{os.getpid()}.ts"
    probe.write_text(
        'import type { Price } from "../generated/client/browser.ts";\n'
        'import type { ApiResource } from "./api.ts";\n'
        'export const wrong: Pick<ApiResource<Price>, "unitAmount"> = { unitAmount: "12" };\n'
    )
    try:
        broken = subprocess.run(tsc, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    assert broken.returncode != 0
    assert "unitAmount" in broken.stdout or "TS2322" in broken.stdout
