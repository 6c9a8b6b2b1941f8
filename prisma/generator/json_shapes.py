"""The shapes of Json fields (prisma/json-shapes.toml) and the small type language that
names them, rendered as Python (pydantic-validated TypedDicts) and as TypeScript.

One parser reads the types of both the shapes file and the `/// @json TYPE` annotations
of schema.prisma, so the two languages can only get what the file says. Anything the
language cannot say stops generation with a message that names the shape or the field.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from errors import GeneratorError

PRIMITIVES = ("string", "integer", "number", "boolean", "null")
_TOKEN = re.compile(r'\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<literal>"[^"\\]*")|(?P<symbol>\[\]|[|<>()]))')


@dataclass(frozen=True)
class Primitive:
    name: str


@dataclass(frozen=True)
class Literal:
    value: str


@dataclass(frozen=True)
class ListOf:
    item: TypeExpr


@dataclass(frozen=True)
class MapOf:
    value: TypeExpr


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Union:
    members: tuple[TypeExpr, ...]


TypeExpr = Primitive | Literal | ListOf | MapOf | Ref | Union


@dataclass(frozen=True)
class ShapeField:
    key: str
    required: bool
    type: TypeExpr
    doc: str | None


@dataclass(frozen=True)
class Shape:
    name: str
    doc: str | None
    # an alias has `alias`; an object has `fields`
    alias: TypeExpr | None
    fields: tuple[ShapeField, ...]


# ------------------------------------------------------------------------------ parsing


def parse_type(text: str, where: str) -> TypeExpr:
    tokens = _tokens(text, where)
    expr, rest = _union(tokens, where)
    if rest:
        raise GeneratorError(f"{where}: unexpected {rest[0]!r} in the type {text!r}")
    return expr


def _tokens(text: str, where: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise GeneratorError(f"{where}: cannot read the type {text!r} from {text[position:].strip()!r}")
        tokens.append(match.group(match.lastgroup or ""))
        position = match.end()
    return tokens


def _union(tokens: list[str], where: str) -> tuple[TypeExpr, list[str]]:
    members = []
    term, tokens = _term(tokens, where)
    members.append(term)
    while tokens and tokens[0] == "|":
        term, tokens = _term(tokens[1:], where)
        members.append(term)
    return (members[0] if len(members) == 1 else Union(tuple(members))), tokens


def _term(tokens: list[str], where: str) -> tuple[TypeExpr, list[str]]:
    if not tokens:
        raise GeneratorError(f"{where}: a type is missing")
    head, tokens = tokens[0], tokens[1:]
    expr: TypeExpr
    if head == "(":
        expr, tokens = _union(tokens, where)
        tokens = _expect(tokens, ")", where)
    elif head == "map":
        tokens = _expect(tokens, "<", where)
        value, tokens = _union(tokens, where)
        tokens = _expect(tokens, ">", where)
        expr = MapOf(value)
    elif head.startswith('"'):
        expr = Literal(head[1:-1])
    elif head in PRIMITIVES:
        expr = Primitive(head)
    elif head[0].isalpha() or head[0] == "_":
        expr = Ref(head)
    else:
        raise GeneratorError(f"{where}: unexpected {head!r} where a type was expected")
    while tokens and tokens[0] == "[]":
        expr, tokens = ListOf(expr), tokens[1:]
    return expr, tokens


def _expect(tokens: list[str], symbol: str, where: str) -> list[str]:
    if not tokens or tokens[0] != symbol:
        raise GeneratorError(f"{where}: expected {symbol!r}")
    return tokens[1:]


def load_shapes(path: Path) -> dict[str, Shape]:
    """The shapes file next to the schema; a schema without one has no shapes."""
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise GeneratorError(f"{path.name}: {error}") from error
    shapes = {name: _shape(name, body) for name, body in raw.items()}
    for shape in shapes.values():
        for where, expr in _shape_types(shape):
            check_references(expr, shapes, where)
    definition_order(shapes)  # refuses a recursive shape now, not at render time
    return shapes


def _shape(name: str, body: object) -> Shape:
    where = f"json shape {name}"
    if not name.isidentifier() or name in PRIMITIVES or name == "map":
        raise GeneratorError(f"{where}: a shape's name must be an identifier other than a primitive")
    if not isinstance(body, dict) or set(body) - {"doc", "type", "fields"} or ("type" in body) == ("fields" in body):
        raise GeneratorError(f'{where}: give `doc` and either `type = "..."` or a [{name}.fields] table')
    doc = body.get("doc")
    if "type" in body:
        return Shape(name, doc, parse_type(str(body["type"]), where), ())
    fields = []
    for key, spec in body["fields"].items():
        field_where = f"{where}, field {key}"
        if isinstance(spec, dict):
            if set(spec) - {"type", "doc"} or "type" not in spec:
                raise GeneratorError(f'{field_where}: a field is "type" or {{ type = "...", doc = "..." }}')
            text, field_doc = spec["type"], spec.get("doc")
        else:
            text, field_doc = spec, None
        bare = key.removesuffix("?")
        if not bare.isidentifier():
            raise GeneratorError(f"{field_where}: a key must be an identifier (optionally ending in ?)")
        fields.append(ShapeField(bare, not key.endswith("?"), parse_type(str(text), field_where), field_doc))
    return Shape(name, doc, None, tuple(fields))


def _shape_types(shape: Shape) -> list[tuple[str, TypeExpr]]:
    if shape.alias is not None:
        return [(f"json shape {shape.name}", shape.alias)]
    return [(f"json shape {shape.name}, field {field.key}", field.type) for field in shape.fields]


def references(expr: TypeExpr) -> set[str]:
    match expr:
        case Ref(name):
            return {name}
        case ListOf(item):
            return references(item)
        case MapOf(value):
            return references(value)
        case Union(members):
            return set().union(*(references(member) for member in members))
    return set()


def check_references(expr: TypeExpr, shapes: dict[str, Shape], where: str) -> None:
    unknown = sorted(references(expr) - set(shapes))
    if unknown:
        known = ", ".join(sorted(shapes)) or "none"
        raise GeneratorError(f"{where}: no json shape named {', '.join(unknown)} in json-shapes.toml (known: {known})")


def definition_order(shapes: dict[str, Shape]) -> list[Shape]:
    """The shapes so that each comes after the shapes it uses, as Python needs them (the
    module is evaluated at import, so a TypedDict's keys read right at run time:
    `__required_keys__`, `__optional_keys__`). A shape that contains itself is refused."""
    ordered: list[Shape] = []
    visiting: set[str] = set()

    def visit(shape: Shape) -> None:
        if shape in ordered:
            return
        if shape.name in visiting:
            raise GeneratorError(f"json shape {shape.name}: it contains itself; the shapes cannot be recursive")
        visiting.add(shape.name)
        for _, expr in _shape_types(shape):
            for name in sorted(references(expr)):
                visit(shapes[name])
        visiting.discard(shape.name)
        ordered.append(shape)

    for shape in shapes.values():
        visit(shape)
    return ordered


# ------------------------------------------------------------------------------ Python

# Strict types: a value read back must already be what the TypeScript type says ("5" is
# not an integer, 1 is not a boolean), never coerced on the way out.
_PYTHON_PRIMITIVES = {
    "string": "StrictStr",
    "integer": "StrictInt",
    "number": "StrictInt | StrictFloat",
    "boolean": "StrictBool",
    "null": "None",
}


def python_type(expr: TypeExpr) -> str:
    match expr:
        case Primitive(name):
            return _PYTHON_PRIMITIVES[name]
        case Literal(value):
            return f"Literal[{value!r}]"
        case ListOf(item):
            return f"list[{python_type(item)}]"
        case MapOf(value):
            return f"dict[str, {python_type(value)}]"
        case Ref(name):
            return name
        case Union(members):
            literals = [member.value for member in members if isinstance(member, Literal)]
            rendered = [python_type(member) for member in members if not isinstance(member, Literal)]
            if literals:
                rendered.insert(0, "Literal[" + ", ".join(repr(value) for value in literals) + "]")
            return " | ".join(rendered)
    raise AssertionError(expr)


def render_python(shapes: dict[str, Shape], header: str) -> str:
    out = [
        header,
        '"""The shapes the Json fields hold (prisma/json-shapes.toml), as pydantic validates them',
        "when a resource is read: exactly the keys listed (another key is an error), the ones",
        'marked optional may be absent, and no value is coerced."""',
        "",
        "from typing import Annotated, Literal",
        "",
        "from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, with_config",
        "from typing_extensions import NotRequired, TypedDict",
        "",
    ]
    for shape in definition_order(shapes):
        if shape.alias is not None:
            alias = python_type(shape.alias)
            if shape.doc:
                alias = f"Annotated[{alias}, Field(description={shape.doc!r})]"
            out += ["", f"{shape.name} = {alias}", ""]
            continue
        out += ["", "@with_config(ConfigDict(extra='forbid'))", f"class {shape.name}(TypedDict):"]
        if shape.doc:
            out.append(f"    {json.dumps(shape.doc)}")
        for field in shape.fields:
            annotation = python_type(field.type)
            if field.doc:
                annotation = f"Annotated[{annotation}, Field(description={field.doc!r})]"
            if not field.required:
                annotation = f"NotRequired[{annotation}]"
            out.append(f"    {field.key}: {annotation}")
        out.append("")
    out += ["", "__all__ = [" + ", ".join(repr(name) for name in shapes) + "]", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------ TypeScript

_TS_PRIMITIVES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}


def ts_type(expr: TypeExpr) -> str:
    match expr:
        case Primitive(name):
            return _TS_PRIMITIVES[name]
        case Literal(value):
            return json.dumps(value)
        case ListOf(item):
            inner = ts_type(item)
            return f"({inner})[]" if isinstance(item, Union) else f"{inner}[]"
        case MapOf(value):
            return f"{{ [key: string]: {ts_type(value)} }}"
        case Ref(name):
            return name
        case Union(members):
            return " | ".join(ts_type(member) for member in members)
    raise AssertionError(expr)


def ts_doc(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}/** {text.replace('*/', '* /')} */"]


def render_ts_shapes(shapes: dict[str, Shape]) -> list[str]:
    out: list[str] = []
    for shape in shapes.values():
        out += ["", *ts_doc(shape.doc, "")]
        if shape.alias is not None:
            out.append(f"export type {shape.name} = {ts_type(shape.alias)};")
            continue
        out.append(f"export type {shape.name} = {{")
        for field in shape.fields:
            out += ts_doc(field.doc, "  ")
            out.append(f"  {field.key}{'' if field.required else '?'}: {ts_type(field.type)};")
        out.append("};")
    return out
