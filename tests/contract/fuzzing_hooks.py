"""Schemathesis hooks for fuzzing the services' documents, named by ``schemathesis.toml``
so that ``st run`` from the repository root and the contract suite fuzz alike.

An integer of ``format: int64`` is a JSON integer literal: the services refuse ``100.0``
for ``100`` (money is never a float). JSON Schema cannot tell the two apart, so
Schemathesis (4.3x) writes some generated integers of a JSON body as whole floats, which
the document means to forbid. Here every such value is written back as the integer it
is: the data stays what was generated, only its spelling follows the document.
"""

from __future__ import annotations

from typing import Any

import schemathesis

INT64 = "int64"
SCHEMAS = "#/components/schemas/"


def _resolved(schema: Any, components: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema and schema["$ref"].startswith(SCHEMAS):
        schema = components.get(schema["$ref"][len(SCHEMAS) :], {})
    return schema if isinstance(schema, dict) else {}


def _is_int64(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    integer = kind == "integer" or (isinstance(kind, list) and "integer" in kind)
    return integer and schema.get("format") == INT64


def integer_literals(value: Any, schema: Any, components: dict[str, Any]) -> Any:
    """``value`` with each whole float that ``schema`` declares an int64 integer written as an int."""
    schema = _resolved(schema, components)
    if isinstance(value, float) and value.is_integer() and _is_int64(schema):
        return int(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        value = {
            key: integer_literals(item, properties[key], components) if key in properties else item
            for key, item in value.items()
        }
    elif isinstance(value, list) and "items" in schema:
        value = [integer_literals(item, schema["items"], components) for item in value]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword, []):
            value = integer_literals(value, branch, components)
    return value


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    body = case.body
    if not isinstance(body, (dict, list)) or "json" not in (case.media_type or ""):
        return case
    request = case.operation.definition.raw.get("requestBody", {})
    schema = request.get("content", {}).get(case.media_type, {}).get("schema")
    if schema is not None:
        components = case.operation.schema.raw_schema.get("components", {}).get("schemas", {})
        case.body = integer_literals(body, schema, components)
    return case
