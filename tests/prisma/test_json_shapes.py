"""The shapes of Json fields (prisma/json-shapes.toml) mean the same in Python and in
TypeScript, and the generator refuses a shape or an annotation it cannot render.

The agreement test feeds the same values to both sides: pydantic validating with the
TypedDicts of contracts/json_shapes.py (what the API resource models do on every read)
and `tsc --strict` checking each value as an object literal typed with the generated
prisma/generated/json-shapes.ts (what the API contract check does). For every shape and
every field it tries the value the shape asks for, values of every other JSON type, the
field left out, and an unknown key; both sides must accept and refuse the same ones.
Non-integral numbers are left out of the battery on purpose: `integer` is a whole number
in Python, and TypeScript has only `number`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import contracts.json_shapes
from contracts.settings import PROJECT_ROOT
from tests.prisma.test_generator import JSON_SHAPES, MINIMAL_HEAD, SCHEMA, drift, generate_into

sys.path.insert(0, str(PROJECT_ROOT / "prisma" / "generator"))
from json_shapes import ListOf, Literal, MapOf, Primitive, Ref, Shape, TypeExpr, Union, load_shapes

from tests.typescript import type_check

SHAPES = load_shapes(JSON_SHAPES)
# "7", "true", 1 and 0 are what a lax validator coerces to an integer or a boolean
OTHER_JSON_VALUES: list[Any] = ["text", "7", "true", 7, 1, 0, -3, True, None, [], {}, ["text"], {"key": "text"}]


def sample(expr: TypeExpr) -> Any:
    """A value of the type."""
    match expr:
        case Primitive("string"):
            return "text"
        case Primitive("integer"):
            return 7
        case Primitive("number"):
            return 2.5
        case Primitive("boolean"):
            return True
        case Primitive("null"):
            return None
        case Literal(value):
            return value
        case ListOf(item):
            return [sample(item)]
        case MapOf(value):
            return {"key": sample(value)}
        case Ref(name):
            return full(SHAPES[name])
        case Union(members):
            return sample(members[0])
    raise AssertionError(expr)


def samples(expr: TypeExpr) -> list[Any]:
    """A value of each member of a union (or the one value of another type)."""
    if isinstance(expr, Union):
        return [value for member in expr.members for value in samples(member)]
    return [sample(expr)]


def full(shape: Shape) -> Any:
    if shape.alias is not None:
        return sample(shape.alias)
    return {field.key: sample(field.type) for field in shape.fields}


def cases() -> list[tuple[str, str, Any]]:
    """(shape, what the case tries, value)"""
    found: list[tuple[str, str, Any]] = []
    for shape in SHAPES.values():
        if shape.alias is not None:
            for value in [*samples(shape.alias), *OTHER_JSON_VALUES, [full(shape)]]:
                found.append((shape.name, f"the value {json.dumps(value)}", value))
            continue
        whole = full(shape)
        required = {field.key: whole[field.key] for field in shape.fields if field.required}
        found += [
            (shape.name, "every key", whole),
            (shape.name, "only the required keys", required),
            (shape.name, "an unknown key", {**whole, "unexpectedKey": "text"}),
        ]
        for field in shape.fields:
            found.append((shape.name, f"{field.key} left out", {k: v for k, v in whole.items() if k != field.key}))
            for value in [*samples(field.type), *OTHER_JSON_VALUES]:
                found.append((shape.name, f"{field.key} = {json.dumps(value)}", {**whole, field.key: value}))
    return found


def python_accepts(shape: str, value: Any) -> bool:
    try:
        TypeAdapter(getattr(contracts.json_shapes, shape)).validate_python(value)
    except ValidationError:
        return False
    return True


def typescript_accepts(tmp_path: Path, typed: list[tuple[str, Any]]) -> list[bool]:
    """tsc on one typed constant per line: the lines without an error are accepted."""
    shapes_module = PROJECT_ROOT / "prisma" / "generated" / "json-shapes.ts"
    names = sorted({shape for shape, _ in typed})
    lines = [f"import type {{ {', '.join(names)} }} from {json.dumps(str(shapes_module))};"]
    lines += [f"export const case{i}: {shape} = {json.dumps(value)};" for i, (shape, value) in enumerate(typed)]
    (tmp_path / "cases.ts").write_text("\n".join(lines) + "\n")
    result = type_check(tmp_path, [tmp_path / "cases.ts"])
    failing = {int(line) for line in re.findall(r"cases\.ts\((\d+),\d+\): error", result.stdout)}
    unexplained = [line for line in result.stdout.splitlines() if "error" in line and "cases.ts(" not in line]
    assert not unexplained, result.stdout[-3000:]
    return [line not in failing for line in range(2, len(typed) + 2)]


def test_python_and_typescript_accept_and_refuse_the_same_values(tmp_path: Path) -> None:
    battery = cases()
    in_typescript = typescript_accepts(tmp_path, [(shape, value) for shape, _, value in battery])
    disagreements = [
        f"{shape}, {what}: Python {'accepts' if python else 'refuses'}, TypeScript {'accepts' if ts else 'refuses'}"
        for (shape, what, value), ts in zip(battery, in_typescript, strict=True)
        if (python := python_accepts(shape, value)) != ts
    ]
    assert disagreements == [], "\n".join(disagreements)
    # the battery tells shapes apart: each shape accepts some values and refuses others
    for shape in SHAPES:
        verdicts = {ts for (name, _, _), ts in zip(battery, in_typescript, strict=True) if name == shape}
        assert verdicts == {True, False}, shape


def test_resource_models_validate_json_fields_with_the_shapes() -> None:
    from contracts.resources import Price

    fields = Price.model_fields
    assert "PriceTier" in str(fields["tiers"].annotation)
    assert "PriceCurrencyOption" in str(fields["currencyOptions"].annotation)
    schema = Price.model_json_schema()
    tier = schema["$defs"]["PriceTier"]
    assert tier["additionalProperties"] is False and tier["required"] == ["upTo"]


def test_an_edit_to_the_shapes_without_regenerating_is_caught(tmp_path: Path) -> None:
    edited = JSON_SHAPES.read_text().replace('"flatAmount?" = "integer"', '"flatAmount?" = "string"')
    assert edited != JSON_SHAPES.read_text()
    result = generate_into(tmp_path, SCHEMA.read_text(), edited)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(drift(tmp_path)) == {"contracts/json_shapes.py", "prisma/generated/json-shapes.ts"}


THING = "/// @domain things\nmodel Thing {{\n  id String @id\n  {field}\n}}\n"


@pytest.mark.parametrize(
    ("field", "shapes", "message"),
    [
        (
            "/// @json Address\n  name String",
            None,
            "model Thing, field name: `/// @json` names the shape of a Json field; this field is String",
        ),
        ("/// @json Adress\n  data Json", None, "model Thing, field data: no json shape named Adress"),
        ("/// @json map<string\n  data Json", None, "model Thing, field data: expected '>'"),
        ("/// @json string | \n  data Json", None, "model Thing, field data: a type is missing"),
        ("/// @json\n  data Json", None, "model Thing, field data: `/// @json` needs a type"),
        ("data Json", '[Node.fields]\nchildren = "Node[]"\n', "json shape Node: it contains itself"),
        ("data Json", '[A.fields]\nb = "B"\n', "json shape A, field b: no json shape named B"),
        ("data Json", '[A.fields]\n"b-c" = "string"\n', "json shape A, field b-c: a key must be an identifier"),
        ("data Json", '[A]\ntype = "string"\nfields = {}\n', "json shape A: give `doc` and either"),
        ("data Json", '[A]\ntype = "str1ng & int"\n', "json shape A: cannot read the type"),
    ],
)
def test_a_shape_or_annotation_the_generator_cannot_render_stops_it_by_name(
    tmp_path: Path, field: str, shapes: str | None, message: str
) -> None:
    result = generate_into(tmp_path, MINIMAL_HEAD + THING.format(field=field), shapes)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "billing" / "models" / "things.py").exists()
