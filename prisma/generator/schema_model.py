"""The generator's view of a Prisma schema: the DMMF checked and resolved into tables,
columns, relations and indexes, with Postgres names exactly as Prisma Migrate would name
them. Anything the generator cannot represent faithfully stops generation with a message
that names the model and the field: never a silently wrong model.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from errors import GeneratorError
from json_shapes import Shape, TypeExpr, check_references, parse_type

POSTGRES_IDENTIFIER_MAX = 63


@dataclass(frozen=True)
class EnumDef:
    name: str
    db_name: str
    values: tuple[str, ...]
    documentation: str | None


@dataclass(frozen=True)
class Default:
    # literal | now | uuid | cuid | autoincrement
    kind: str
    value: object = None


@dataclass(frozen=True)
class ColumnDef:
    field_name: str
    attr_name: str
    column_name: str
    prisma_type: str
    # (native type name, args) after applying Prisma's Postgres defaults
    native_type: tuple[str, tuple[str, ...]]
    enum: EnumDef | None
    required: bool
    primary_key: bool
    default: Default | None
    updated_at: bool
    hidden: bool
    documentation: str | None
    # the `/// @json TYPE` of a Json field: the shape its values have (prisma/json-shapes.toml)
    json_type: TypeExpr | None


@dataclass(frozen=True)
class ForeignKeyDef:
    name: str
    columns: tuple[str, ...]
    target_table: str
    target_columns: tuple[str, ...]
    # the SQL action; SET NULL names its columns when some of the key's columns are required
    on_delete: str
    on_update: str
    # set when the foreign key closes a cycle of tables; created after both tables exist
    use_alter: bool


@dataclass(frozen=True)
class RelationDef:
    field_name: str
    attr_name: str
    target_model: str
    relation_name: str
    is_list: bool
    required: bool
    # attribute names of the foreign-key columns, on whichever side holds them
    foreign_key_model: str
    foreign_key_attrs: tuple[str, ...]
    # the model the key references and its attribute names, aligned with foreign_key_attrs
    referenced_model: str
    referenced_attrs: tuple[str, ...]
    # the key's columns that reference their namesake (organizationId -> organizationId)
    # next to others that do not: they scope the join but the relationship never writes
    # them (several keys of a row share them; the row sets them once)
    scope_attrs: tuple[str, ...]
    back_populates: str
    # on the referenced side, what SQLAlchemy leaves to the database when a row is deleted:
    # True (Cascade, SetNull: the database deletes or nulls the children), "all"
    # (Restrict, NoAction: the database refuses while children exist, as it does for
    # Prisma; SQLAlchemy would otherwise null their keys); None on the referencing side
    passive_deletes: bool | str | None


@dataclass(frozen=True)
class IndexDef:
    name: str
    unique: bool
    columns: tuple[str, ...]
    algorithm: str | None
    operator_classes: tuple[str | None, ...]


@dataclass
class ModelDef:
    name: str
    table: str
    domain: str
    documentation: str | None
    columns: list[ColumnDef] = field(default_factory=list)
    relations: list[RelationDef] = field(default_factory=list)
    foreign_keys: list[ForeignKeyDef] = field(default_factory=list)
    indexes: list[IndexDef] = field(default_factory=list)
    primary_key_name: str = ""
    primary_key: tuple[str, ...] = ()

    def column(self, field_name: str) -> ColumnDef:
        for column in self.columns:
            if column.field_name == field_name:
                return column
        raise GeneratorError(f"model {self.name}: no scalar field {field_name!r}")


@dataclass
class SchemaDef:
    enums: dict[str, EnumDef]
    models: dict[str, ModelDef]
    json_shapes: dict[str, Shape]

    def domains(self) -> dict[str, list[ModelDef]]:
        grouped: dict[str, list[ModelDef]] = {}
        for model in self.models.values():
            grouped.setdefault(model.domain, []).append(model)
        return grouped


# Prisma's default native type for each scalar on Postgres.
DEFAULT_NATIVE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "String": ("Text", ()),
    "Int": ("Integer", ()),
    "BigInt": ("BigInt", ()),
    "Float": ("DoublePrecision", ()),
    "Decimal": ("Decimal", ("65", "30")),
    "Boolean": ("Boolean", ()),
    "DateTime": ("Timestamp", ("3",)),
    "Json": ("JsonB", ()),
    "Bytes": ("ByteA", ()),
}

SUPPORTED_NATIVE_TYPES: dict[str, set[str]] = {
    "String": {"Text", "VarChar", "Char", "Uuid"},
    "Int": {"Integer", "SmallInt"},
    "BigInt": {"BigInt"},
    "Float": {"DoublePrecision", "Real"},
    "Decimal": {"Decimal"},
    "Boolean": {"Boolean"},
    "DateTime": {"Timestamp", "Timestamptz", "Date"},
    "Json": {"JsonB", "Json"},
    "Bytes": {"ByteA"},
}

REFERENTIAL_ACTIONS = {
    "Cascade": "CASCADE",
    "Restrict": "RESTRICT",
    "NoAction": "NO ACTION",
    "SetNull": "SET NULL",
    "SetDefault": "SET DEFAULT",
}


# Names a declarative model cannot use for a mapped attribute, plus Python's keywords.
RESERVED_ATTRIBUTE_NAMES = {"metadata", "registry", "query", "awaitable_attrs"} | set(keyword.kwlist)


def attribute_name(field_name: str) -> str:
    name = snake_case(field_name)
    return f"{name}_" if name in RESERVED_ATTRIBUTE_NAMES else name


def snake_case(name: str) -> str:
    step = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step).lower()


def constraint_name(table: str, columns: tuple[str, ...], suffix: str) -> str:
    """Prisma Migrate's default constraint and index names, trimmed to Postgres' limit."""
    base = "_".join((table, *columns))
    limit = POSTGRES_IDENTIFIER_MAX - len(suffix) - 1
    return f"{base[:limit]}_{suffix}"


def _doc_tags(documentation: str | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for line in (documentation or "").splitlines():
        line = line.strip()
        if line.startswith("@"):
            key, _, value = line[1:].partition(" ")
            tags[key] = value.strip()
    return tags


def _doc_text(documentation: str | None) -> str | None:
    lines = [line for line in (documentation or "").splitlines() if not line.strip().startswith("@")]
    text = "\n".join(lines).strip()
    return text or None


def _json_type(where: str, field: dict, tags: dict[str, str], json_shapes: dict[str, Shape]) -> TypeExpr | None:
    if "json" not in tags:
        return None
    if field["type"] != "Json":
        raise GeneratorError(f"{where}: `/// @json` names the shape of a Json field; this field is {field['type']}")
    if not tags["json"]:
        raise GeneratorError(f"{where}: `/// @json` needs a type, e.g. `/// @json Address`")
    json_type = parse_type(tags["json"], where)
    check_references(json_type, json_shapes, where)
    return json_type


def _default(model: str, field: dict) -> Default | None:
    if not field.get("hasDefaultValue"):
        return None
    value = field.get("default")
    where = f"model {model}, field {field['name']}"
    if isinstance(value, dict):
        name = value.get("name")
        if name in {"now", "uuid", "cuid", "autoincrement"}:
            if name == "uuid" and value.get("args") not in ([], [4]):
                raise GeneratorError(f"{where}: only uuid(4) is supported, got uuid({value['args']})")
            return Default(name)
        raise GeneratorError(f"{where}: the default @default({name}(...)) is not supported by the Python generator")
    if isinstance(value, list):
        raise GeneratorError(f"{where}: list defaults are not supported by the Python generator")
    if field["type"] == "Json" and isinstance(value, str):
        return Default("literal", value)
    return Default("literal", value)


def _native_type(model: str, field: dict) -> tuple[str, tuple[str, ...]]:
    scalar = field["type"]
    native = field.get("nativeType")
    if native is None:
        return DEFAULT_NATIVE_TYPES[scalar]
    name, args = native[0], tuple(str(arg) for arg in native[1])
    if name not in SUPPORTED_NATIVE_TYPES[scalar]:
        raise GeneratorError(
            f"model {model}, field {field['name']}: native type @db.{name} on {scalar} is not supported "
            f"by the Python generator (supported: {', '.join(sorted(SUPPORTED_NATIVE_TYPES[scalar]))})"
        )
    if name == "Decimal" and not args:
        args = DEFAULT_NATIVE_TYPES["Decimal"][1]
    if name in {"Timestamp", "Timestamptz"} and not args:
        args = ("6",)
    return name, args


def build_schema(datamodel: dict, json_shapes: dict[str, Shape]) -> SchemaDef:
    if datamodel.get("types"):
        names = ", ".join(t["name"] for t in datamodel["types"])
        raise GeneratorError(f"composite types are not supported by the Python generator: {names}")

    enums = {
        enum["name"]: EnumDef(
            name=enum["name"],
            db_name=enum.get("dbName") or enum["name"],
            values=tuple(_enum_value(enum, value) for value in enum["values"]),
            documentation=enum.get("documentation"),
        )
        for enum in datamodel["enums"]
    }

    models: dict[str, ModelDef] = {}
    raw_models = {model["name"]: model for model in datamodel["models"]}
    for raw in datamodel["models"]:
        models[raw["name"]] = _build_model(raw, enums, json_shapes)

    for raw in datamodel["models"]:
        _build_relations(models[raw["name"]], raw, models, raw_models)

    _mark_cycles(models)
    _build_indexes(models, datamodel["indexes"])
    return SchemaDef(enums=enums, models=models, json_shapes=json_shapes)


def _enum_value(enum: dict, value: dict) -> str:
    if value.get("dbName") not in (None, value["name"]):
        raise GeneratorError(f"enum {enum['name']}, value {value['name']}: @map on enum values is not supported")
    if not value["name"].isidentifier():
        raise GeneratorError(f"enum {enum['name']}, value {value['name']}: not a Python identifier")
    return value["name"]


def _build_model(raw: dict, enums: dict[str, EnumDef], json_shapes: dict[str, Shape]) -> ModelDef:
    name = raw["name"]
    if raw.get("schema"):
        raise GeneratorError(f"model {name}: multiple schemas (@@schema) are not supported")
    tags = _doc_tags(raw.get("documentation"))
    if "domain" not in tags or not tags["domain"].isidentifier():
        raise GeneratorError(f"model {name}: add a `/// @domain NAME` comment (the Python module for the model)")
    model = ModelDef(
        name=name,
        table=raw.get("dbName") or name,
        domain=tags["domain"],
        documentation=_doc_text(raw.get("documentation")),
    )
    for raw_field in raw["fields"]:
        if raw_field["kind"] == "object":
            continue
        where = f"model {name}, field {raw_field['name']}"
        if raw_field.get("isList"):
            raise GeneratorError(f"{where}: scalar lists are not supported by the Python generator; use Json")
        if raw_field["kind"] == "unsupported":
            raise GeneratorError(f"{where}: Unsupported(...) types are not supported by the Python generator")
        enum = enums.get(raw_field["type"]) if raw_field["kind"] == "enum" else None
        if raw_field["kind"] == "scalar" and raw_field["type"] not in DEFAULT_NATIVE_TYPES:
            raise GeneratorError(f"{where}: the scalar type {raw_field['type']} is not supported")
        field_tags = _doc_tags(raw_field.get("documentation"))
        model.columns.append(
            ColumnDef(
                field_name=raw_field["name"],
                attr_name=attribute_name(raw_field["name"]),
                column_name=raw_field.get("dbName") or raw_field["name"],
                prisma_type=raw_field["type"],
                native_type=("Enum", ()) if enum else _native_type(name, raw_field),
                enum=enum,
                required=raw_field["isRequired"],
                primary_key=raw_field.get("isId", False),
                default=_default(name, raw_field),
                updated_at=raw_field.get("isUpdatedAt", False),
                hidden="hidden" in field_tags,
                documentation=_doc_text(raw_field.get("documentation")),
                json_type=_json_type(where, raw_field, field_tags, json_shapes),
            )
        )
    primary = raw.get("primaryKey")
    if primary:
        model.primary_key = tuple(model.column(f).column_name for f in primary["fields"])
        model.primary_key_name = primary.get("name") or f"{model.table}_pkey"
    else:
        model.primary_key = tuple(c.column_name for c in model.columns if c.primary_key)
        model.primary_key_name = f"{model.table}_pkey"
    if not model.primary_key:
        raise GeneratorError(f"model {name}: no @id or @@id")
    return model


def _build_relations(model: ModelDef, raw: dict, models: dict[str, ModelDef], raw_models: dict[str, dict]) -> None:
    for raw_field in raw["fields"]:
        if raw_field["kind"] != "object":
            continue
        target = raw_field["type"]
        relation_name = raw_field["relationName"]
        partner = _relation_partner(raw, raw_field, raw_models[target])
        where = f"model {model.name}, field {raw_field['name']}"
        if raw_field.get("relationFromFields"):
            holder_model, holder_field = model, raw_field
        elif partner.get("relationFromFields"):
            holder_model, holder_field = models[target], partner
        else:
            raise GeneratorError(f"{where}: implicit many-to-many relations are not supported; model the join table")
        fk_attrs = tuple(holder_model.column(f).attr_name for f in holder_field["relationFromFields"])
        referenced_model = models[holder_field["type"]]
        referenced_attrs = tuple(referenced_model.column(f).attr_name for f in holder_field["relationToFields"])
        scope_attrs = tuple(
            holder_model.column(f).attr_name
            for f, to in zip(holder_field["relationFromFields"], holder_field["relationToFields"], strict=True)
            if f == to
        )
        if len(scope_attrs) == len(fk_attrs):
            # a key that is all namesakes (a one-to-one sharing its key) is written whole
            scope_attrs = ()
        on_delete = holder_field.get("relationOnDelete") or ("Restrict" if holder_field["isRequired"] else "SetNull")
        if raw_field.get("relationFromFields"):
            target_model = models[target]
            columns = tuple(model.column(f).column_name for f in raw_field["relationFromFields"])
            on_update = raw_field.get("relationOnUpdate") or "Cascade"
            for action in (on_delete, on_update):
                if action not in REFERENTIAL_ACTIONS:
                    raise GeneratorError(f"{where}: referential action {action} is not supported")
            model.foreign_keys.append(
                ForeignKeyDef(
                    name=constraint_name(model.table, columns, "fkey"),
                    columns=columns,
                    target_table=target_model.table,
                    target_columns=tuple(target_model.column(f).column_name for f in raw_field["relationToFields"]),
                    on_delete=_on_delete_sql(where, model, raw_field["relationFromFields"], on_delete),
                    on_update=REFERENTIAL_ACTIONS[on_update],
                    use_alter=False,
                )
            )
        model.relations.append(
            RelationDef(
                field_name=raw_field["name"],
                attr_name=attribute_name(raw_field["name"]),
                target_model=target,
                relation_name=relation_name,
                is_list=raw_field["isList"],
                required=raw_field["isRequired"],
                foreign_key_model=holder_model.name,
                foreign_key_attrs=fk_attrs,
                referenced_model=referenced_model.name,
                referenced_attrs=referenced_attrs,
                scope_attrs=scope_attrs,
                back_populates=attribute_name(partner["name"]),
                passive_deletes=None if holder_model is model else _passive_deletes(on_delete),
            )
        )


def _passive_deletes(on_delete: str) -> bool | str:
    """The referenced side leaves a delete's effect on the children to the database."""
    return True if on_delete in {"Cascade", "SetNull"} else "all"


def _on_delete_sql(where: str, model: ModelDef, fields: list[str], action: str) -> str:
    """SetNull on a key with required columns (a tenant-scoped key: organizationId, then
    the reference) nulls only the optional ones, Postgres 15's `SET NULL (column, ...)`:
    a plain SET NULL would null organization_id too and fail. With any column NULL the
    key is not checked (MATCH SIMPLE), so the row simply stops referencing."""
    sql = REFERENTIAL_ACTIONS[action]
    if action != "SetNull":
        return sql
    columns = [model.column(f) for f in fields]
    optional = [c.column_name for c in columns if not c.required]
    if not optional:
        raise GeneratorError(f"{where}: onDelete: SetNull needs an optional field in the relation")
    if len(optional) == len(columns):
        return sql
    return f"{sql} ({', '.join(_sql_identifier(c) for c in optional)})"


def _sql_identifier(name: str) -> str:
    """As Postgres needs it in SQL text: folded to lowercase unless quoted."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def _relation_partner(raw: dict, raw_field: dict, target_raw: dict) -> dict:
    candidates = [
        f
        for f in target_raw["fields"]
        if f["kind"] == "object" and f["relationName"] == raw_field["relationName"] and f is not raw_field
    ]
    if raw["name"] == target_raw["name"]:
        candidates = [f for f in candidates if f["name"] != raw_field["name"]]
    if len(candidates) != 1:
        raise GeneratorError(
            f"model {raw['name']}, field {raw_field['name']}: expected one opposite relation field "
            f"named {raw_field['relationName']!r} on {target_raw['name']}"
        )
    return candidates[0]


def _mark_cycles(models: dict[str, ModelDef]) -> None:
    """A foreign key whose target can reach back to its own table closes a cycle; Alembic
    then has to add it after both tables exist (use_alter). Only nullable keys can do that
    safely, so a cycle of required keys is refused. A key with one nullable column is
    nullable: with any column NULL the key is not checked."""
    by_table = {m.table: m for m in models.values()}
    edges: dict[str, set[str]] = {m.table: {fk.target_table for fk in m.foreign_keys} for m in models.values()}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            table = stack.pop()
            if table == goal:
                return True
            if table not in seen:
                seen.add(table)
                stack.extend(edges[table])
        return False

    for model in models.values():
        for index, fk in enumerate(model.foreign_keys):
            if fk.target_table == model.table or not reaches(fk.target_table, model.table):
                continue
            nullable = any(not c.required for c in model.columns if c.column_name in fk.columns)
            if nullable:
                model.foreign_keys[index] = ForeignKeyDef(**{**fk.__dict__, "use_alter": True})
    for model in models.values():
        for fk in model.foreign_keys:
            if fk.use_alter or fk.target_table == model.table:
                continue
            other = by_table[fk.target_table]
            back = [f for f in other.foreign_keys if f.target_table == model.table and not f.use_alter]
            if back and reaches(fk.target_table, model.table):
                raise GeneratorError(f"models {model.name} and {other.name}: a cycle of required foreign keys")


def _build_indexes(models: dict[str, ModelDef], raw_indexes: list[dict]) -> None:
    for raw in raw_indexes:
        model = models[raw["model"]]
        if raw["type"] == "id":
            continue
        if raw["type"] not in {"unique", "normal"}:
            raise GeneratorError(f"model {model.name}: index type {raw['type']} is not supported")
        columns = tuple(model.column(f["name"]).column_name for f in raw["fields"])
        for f in raw["fields"]:
            if f.get("sortOrder") or f.get("length"):
                raise GeneratorError(f"model {model.name}, field {f['name']}: index sort order/length is not supported")
        unique = raw["type"] == "unique"
        model.indexes.append(
            IndexDef(
                name=raw.get("dbName") or constraint_name(model.table, columns, "key" if unique else "idx"),
                unique=unique,
                columns=columns,
                algorithm=raw.get("algorithm"),
                operator_classes=tuple(_operator_class(model, f) for f in raw["fields"]),
            )
        )


OPERATOR_CLASSES = {"JsonbPathOps": "jsonb_path_ops", "JsonbOps": "jsonb_ops"}


def _operator_class(model: ModelDef, index_field: dict) -> str | None:
    op = index_field.get("operatorClass")
    if op is None:
        return None
    if op not in OPERATOR_CLASSES:
        raise GeneratorError(f"model {model.name}, field {index_field['name']}: operator class {op} is not supported")
    return OPERATOR_CLASSES[op]
