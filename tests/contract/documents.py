"""Holding HTTP messages to the committed OpenAPI documents, with jsonschema.

One :class:`Contract` per service: it finds the operation a method and path belong
to, and lists what is wrong with a request or a response, as readable lines (empty when
the message conforms).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs
import jsonschema

from contracts import openapi

FORMATS = jsonschema.FormatChecker(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
INT64 = range(-(2**63), 2**63)


@FORMATS.checks(openapi.INTEGER["format"])
def _integer_literal(value: object) -> bool:
    """``100.0`` is the integer 100 to JSON Schema, but the services take only ``100``."""
    return not isinstance(value, float) and (not isinstance(value, int) or value in INT64)


@attrs.frozen
class Found:
    path: str
    method: str
    operation: dict[str, Any]
    params: dict[str, str]


class Contract:
    def __init__(self, service: str, document: dict[str, Any] | None = None) -> None:
        self.service = service
        self.document = document if document is not None else openapi.load(service)
        self.routes = [
            (re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"), path)
            for path in self.document["paths"]
        ]

    def operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(METHOD, path, operation) for every documented operation."""
        return [
            (method.upper(), path, op) for path, item in self.document["paths"].items() for method, op in item.items()
        ]

    def find(self, method: str, path: str) -> Found | None:
        for pattern, template in self.routes:
            matched = pattern.match(path)
            if matched and method.lower() in self.document["paths"][template]:
                op = self.document["paths"][template][method.lower()]
                return Found(template, method.upper(), op, matched.groupdict())
        return None

    def schema_problems(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        # The document's components travel with the schema so "#/components/..." resolves.
        root = {**schema, "components": self.document["components"]}
        validator = jsonschema.Draft202012Validator(root, format_checker=FORMATS)
        return [
            f"{where}: {'/'.join(map(str, err.absolute_path)) or '$'}: {err.message}"
            for err in validator.iter_errors(value)
        ]

    def response_problems(
        self, method: str, path: str, status: int, content_type: str | None, body: bytes
    ) -> list[str]:
        found = self.find(method, path)
        if found is None:
            return [f"{self.service}: {method} {path} is not a documented operation"]
        where = f"{self.service} {method} {found.path} -> {status}"
        answer = found.operation["responses"].get(str(status))
        if answer is None:
            return [f"{where}: status not documented (documented: {', '.join(found.operation['responses'])})"]
        content = answer.get("content")
        if content is None:
            return [] if not body else [f"{where}: documented without a body, got {body[:80]!r}"]
        if not (content_type or "").startswith(openapi.JSON):
            return [f"{where}: content type {content_type!r}, documented {openapi.JSON}"]
        try:
            data = json.loads(body)
        except ValueError:
            return [f"{where}: body is not JSON: {body[:80]!r}"]
        return self.schema_problems(content[openapi.JSON]["schema"], data, where)

    def request_problems(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes | None
    ) -> list[str]:
        """What a provider holding to this document would refuse in a request."""
        found = self.find(method, path)
        if found is None:
            return [f"{self.service}: {method} {path} is not a documented operation"]
        where = f"request {method} {found.path}"
        problems: list[str] = []
        lowered = {key.lower(): value for key, value in headers.items()}
        for param in found.operation.get("parameters", []):
            if "$ref" in param:
                continue
            if param["in"] == "path":
                value: Any = found.params[param["name"]]
            elif param["in"] == "query":
                value = query.get(param["name"])
            else:
                value = lowered.get(param["name"].lower())
            if value is None:
                if param.get("required"):
                    problems.append(f"{where}: {param['in']} parameter {param['name']} missing")
                continue
            if param["schema"].get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    problems.append(f"{where}: {param['name']}={value!r} is not an integer")
                    continue
                value = int(value)
            problems += self.schema_problems(param["schema"], value, f"{where} {param['name']}")
        if found.operation.get("security") and not lowered.get("authorization", "").startswith("Bearer "):
            problems.append(f"{where}: no bearer credential")
        declared = found.operation.get("requestBody")
        if declared is None:
            if body:
                problems.append(f"{where}: a body the operation does not take")
            return problems
        if not lowered.get("content-type", "").startswith(openapi.JSON):
            problems.append(f"{where}: content type {lowered.get('content-type')!r}")
        try:
            data = json.loads(body or b"")
        except ValueError:
            return [*problems, f"{where}: body is not JSON: {(body or b'')[:80]!r}"]
        return problems + self.schema_problems(declared["content"][openapi.JSON]["schema"], data, where)
