"""OpenAPI 3.1 documents built from the contracts: one per service, never written by hand.

Each service's ``OPERATIONS`` table gives the paths, methods, callers, parameters and
statuses; the attrs classes give the JSON Schemas (their validators give the bounds);
:mod:`contracts.examples` gives the examples. ``python -m contracts.openapi`` writes the
documents to ``contracts/openapi/<service>.json``; ``--check`` only says whether the
committed ones are current. A test fails when they are not.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import re
import sys
import types as pytypes
import typing
from pathlib import Path
from typing import Any

import attrs

from contracts import auth, billing, examples, gateway, notifications, orders, profiles, types
from contracts.converter import Problem
from contracts.errors import ErrorBody
from contracts.operations import ANYONE, CLIENT, DEFAULT_PORTS, Operation, Query

SERVICES: dict[str, tuple[Operation, ...]] = {
    "gateway": gateway.OPERATIONS,
    "auth": auth.OPERATIONS,
    "profiles": profiles.OPERATIONS,
    "orders": orders.OPERATIONS,
    "billing": billing.OPERATIONS,
    "notifications": notifications.OPERATIONS,
}
DIRECTORY = Path(__file__).parent / "openapi"
JSON = "application/json"
REF = "#/components/schemas/"
LOWERCASE_UUID = types.UUID_RE.pattern
REQUEST_ID = r"^[A-Za-z0-9._:-]{1,64}$"
REQUEST_ID_HEADER = "#/components/headers/RequestId"
# Every integer on the wire (money, counts, pages) is a JSON integer literal.
INTEGER = {"type": "integer", "format": "int64"}
INTEGERS_NOTE = (
    "Integers (`format: int64`) are written as JSON integers: `100`, never `100.0` or `1e2`; "
    "a number with a fraction or an exponent is refused with 422."
)
# A negated character class in a Python pattern, such as ``[^@\s]``.
NEGATED_CLASS = re.compile(r"\[\^(?:\\.|[^\\\]])*\]")
EVERY_CODE_POINT = range(0x110000)
BMP = range(0x10000)
SURROGATES = range(0xD800, 0xE000)

TITLES = {
    "gateway": "syncorders API gateway",
    "auth": "syncorders Auth",
    "profiles": "syncorders Profiles",
    "orders": "syncorders Orders",
    "billing": "syncorders Billing",
    "notifications": "syncorders Notifications",
}
PURPOSES = {
    "gateway": "The only public door. Creates each order synchronously: the eleven steps of the order flow.",
    "auth": "Users, password hashes and the keys that sign access tokens.",
    "profiles": "Customers' contact data.",
    "orders": "Orders and their status.",
    "billing": "Wallets, wallet operations, and one payment decision per order.",
    "notifications": "Letters sent to customers.",
}

# Statuses that always say when to come back.
RETRY_AFTER_STATUS = frozenset({429, 503})
# Why each status is answered; the operation-specific line wins.
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "Done; no body",
    400: "Malformed JSON, or a required parameter missing",
    401: "Missing or invalid credential",
    403: "The credential may not make this call",
    404: "No such thing, or a path parameter that is not a UUID",
    406: "Declined",
    409: "Conflicts with what exists",
    413: "Request body too large",
    415: "The body is not JSON",
    422: "A field or parameter is missing or invalid; `errors` lists each with its path",
    429: "Too many attempts; see Retry-After",
    500: "Unexpected failure; the request ID is in the service's log",
    502: "A service behind this one answered wrongly",
    503: "A service behind this one, or this service's database, is unavailable",
    504: "A service behind this one timed out",
}
OPERATION_TEXT = {
    ("billing", "pay", 201): "Debited: the payment and its wallet operation",
    ("billing", "pay", 200): "Decided earlier: the same payment (a retry never debits twice)",
    ("billing", "pay", 406): "Insufficient funds (or the wallet holds another currency): declined, nothing debited",
    ("billing", "pay", 404): "No wallet for this user",
    ("billing", "pay", 409): "A payment with other terms exists for this order",
    ("gateway", "create_order", 201): "Created: `paid`, or `cancelled` with the reason (a cancelled order is created)",
    ("gateway", "create_order", 403): "The order is not in the token owner's name",
    ("gateway", "create_order", 502): "The flow stopped: `step`, `step_name`, `reason` and `order_id` say where",
    ("gateway", "create_order", 503): "The flow stopped: a service was unavailable; `step` says which call",
    ("gateway", "create_order", 504): "The flow stopped: a service timed out; `step` says which call",
    ("gateway", "login", 401): "Wrong login or password",
    ("gateway", "register", 409): "Login taken",
    ("auth", "login", 401): "Wrong login or password, or a missing or invalid service credential",
    ("auth", "register", 409): "Login taken",
    ("orders", "create_order", 200): "This idempotency key created the order before: the same order",
    ("orders", "create_order", 409): "Another run is creating this order (retry shortly), "
    "or this idempotency key made an order with other items",
    ("billing", "deposit", 409): "This idempotency key made a deposit of another amount",
    ("orders", "set_status", 409): "The order is already final with the other status",
    ("notifications", "send_letter", 200): "Sent before for this order and status: the same letter",
    ("notifications", "send_letter", 404): "Profiles has no contact data for the customer",
}


class UnknownValidator(Exception):
    """A contract validator the generator cannot express: teach it here."""


@functools.cache
def _all_code_points() -> str:
    return "".join(map(chr, EVERY_CODE_POINT))


def _escaped(low: int, high: int) -> str:
    return f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}"


@functools.cache
def ecma_class(one_character: str) -> str:
    """The characters a Python regex for one character matches, written so that
    ECMA-262 (with the ``u`` flag, as JSON Schema reads patterns), Python and Rust
    regexes all read the same set, and Schemathesis draws from all of it.

    The set is written as the characters it refuses, a negated class of ``\\uXXXX``
    ranges: every engine then takes any character beyond U+FFFF alike. Surrogates must be
    refused, yet a Rust regex cannot name one: the range from U+D7FF to U+E000 refuses
    them (and, for Rust, only its two ends), and the ends are admitted again when the
    set takes them.
    """
    refused: list[list[int]] = []
    previous = -1
    for taken in re.finditer(f"(?:{one_character})+", _all_code_points()):
        if taken.start() > previous + 1:
            refused.append([previous + 1, taken.start() - 1])
        previous = taken.end() - 1
    if previous < EVERY_CODE_POINT[-1]:
        refused.append([previous + 1, EVERY_CODE_POINT[-1]])
    if not any(low <= SURROGATES[0] and SURROGATES[-1] <= high for low, high in refused):
        raise UnknownValidator(f"{one_character!r} takes surrogates: refuse them all")
    if any(high > BMP[-1] for _low, high in refused):
        raise UnknownValidator(f"{one_character!r} refuses characters beyond U+FFFF")
    ends = (SURROGATES[0] - 1, SURROGATES[-1] + 1)
    readmitted = [end for end in ends if not any(low <= end <= high for low, high in refused)]
    widened: list[list[int]] = []
    for low, high in sorted([*refused, list(ends)]):
        if widened and low <= widened[-1][1] + 1:
            widened[-1][1] = max(widened[-1][1], high)
        else:
            widened.append([low, high])
    listed = f"[^{''.join(_escaped(low, high) for low, high in widened)}]"
    if not readmitted:
        return listed
    return f"(?:{listed}|[{''.join(_escaped(end, end) for end in readmitted)}])"


def ecma_pattern(python_pattern: str, refused: str = "") -> str:
    """A Python pattern for JSON Schema: each negated class becomes the explicit set of
    :func:`ecma_class`, less the characters of the class body ``refused``."""
    exclude = f"(?![{refused}])" if refused else ""
    return NEGATED_CLASS.sub(lambda found: ecma_class(exclude + found.group()), python_pattern)


def text_pattern() -> str:
    """What :func:`contracts.types.text` takes: no character of ``UNSAFE_TEXT_CHARS``."""
    return f"^{ecma_class(f'[^{types.UNSAFE_TEXT_CHARS}]')}*$"


def _known_validators() -> dict[Any, dict[str, Any]]:
    return {
        types.amount: {"minimum": 1, "maximum": types.MAX_AMOUNT},
        types.total: {"minimum": 1, "maximum": types.MAX_TOTAL},
        types.quantity: {"minimum": 1, "maximum": types.MAX_QUANTITY},
        types.currency: {"pattern": types.CURRENCY_RE.pattern},
        types.login: {"pattern": types.LOGIN_RE.pattern, "minLength": 3, "maxLength": 64},
        types.email: {"pattern": ecma_pattern(types.EMAIL_RE.pattern, types.UNSAFE_TEXT_CHARS), "maxLength": 254},
        types.identifier: {"format": "uuid", "pattern": LOWERCASE_UUID},
        types.items_count: {"minItems": 1, "maxItems": types.MAX_ITEMS},
    }


def validator_schema(validator: Any) -> dict[str, Any]:
    """JSON Schema keywords for what an attrs validator enforces."""
    if validator is None:
        return {}
    inner = getattr(validator, "validator", None)
    if inner is not None:  # attrs.validators.optional
        return validator_schema(inner)
    many = getattr(validator, "_validators", None)
    if many is not None:  # attrs.validators.and_
        merged: dict[str, Any] = {}
        for each in many:
            merged.update(validator_schema(each))
        return merged
    known = _known_validators()
    if validator in known:
        return dict(known[validator])
    # The factories in contracts.types close over their arguments.
    captured = inspect.getclosurevars(validator).nonlocals
    if validator.__qualname__ == "text.<locals>.check":
        return {"minLength": captured["min_len"], "maxLength": captured["max_len"], "pattern": text_pattern()}
    if validator.__qualname__ == "one_of.<locals>.check":
        return {"enum": list(captured["choices"])}
    raise UnknownValidator(f"no JSON Schema for validator {validator!r}")


class Builder:
    """Collects the component schemas one document needs while walking its operations."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, type] = {}

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is str:
            return {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return dict(INTEGER)
        if tp is type(None):
            return {"type": "null"}
        origin = typing.get_origin(tp)
        if origin in (typing.Union, pytypes.UnionType):
            return self._union(typing.get_args(tp))
        if origin is list:
            (item,) = typing.get_args(tp)
            return {"type": "array", "items": self.schema(item)}
        if origin is dict:
            key, value = typing.get_args(tp)
            assert key is str, "JSON object keys are strings"
            return {"type": "object", "additionalProperties": self.schema(value)}
        if attrs.has(tp):
            return {"$ref": REF + self.component(tp)}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def _union(self, members: tuple[Any, ...]) -> dict[str, Any]:
        rest = [m for m in members if m is not type(None)]
        nullable = len(rest) < len(members)
        if len(rest) == 1 and nullable:
            inner = self.schema(rest[0])
            if isinstance(inner.get("type"), str):
                return {**inner, "type": [inner["type"], "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
        return {"anyOf": [self.schema(m) for m in members]}

    def component(self, cls: type) -> str:
        name = cls.__name__
        if name in self.schemas:
            if self.owners[name] is not cls:
                raise ValueError(f"two wire classes are named {name}")
            return name
        self.owners[name] = cls
        self.schemas[name] = {}  # reserved first: classes may refer to each other
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            prop = self.schema(hints[field.name])
            constraints = validator_schema(field.validator)
            if constraints:
                prop = _constrain(prop, constraints)
            properties[field.name] = prop
            if field.default is attrs.NOTHING:
                required.append(field.name)
        body: dict[str, Any] = {"type": "object"}
        if cls.__doc__ and not cls.__doc__.startswith(name + "("):
            body["description"] = inspect.cleandoc(cls.__doc__)
        body["properties"] = properties
        if required:
            body["required"] = required
        # The converter refuses unknown keys.
        body["additionalProperties"] = False
        self.schemas[name] = body
        return name


def _constrain(prop: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """Constraints apply to the value, not to a ``null`` it may also be."""
    if "enum" in constraints and isinstance(prop.get("type"), list) and "null" in prop["type"]:
        # An enum names every value allowed: the null too.
        constraints = {**constraints, "enum": [*constraints["enum"], None]}
    if "anyOf" in prop:
        first, *others = prop["anyOf"]
        return {"anyOf": [{**first, **constraints} if "$ref" not in first else first, *others]}
    return {**prop, **constraints}


def _query_parameter(query: Query) -> dict[str, Any]:
    schema: dict[str, Any] = dict(INTEGER) if query.kind is int else {"type": "string"}
    schema.update(query.constraints)
    return {
        "name": query.name,
        "in": "query",
        "required": query.required,
        "description": query.description,
        "schema": schema,
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in re.findall(r"\{(\w+)\}", path)
    ]


def _header_parameter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": "Makes a retry of the same request land on the same result (1-128 printable ASCII)",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[\x21-\x7e]+$"},
    }


def _content(builder: Builder, cls: type, named: dict[str, Any]) -> dict[str, Any]:
    return {
        JSON: {
            "schema": builder.schema(cls),
            "examples": {name: {"value": examples.wire(value)} for name, value in named.items()},
        }
    }


def _operation(service: str, op: Operation, builder: Builder) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [service],
        "x-callers": sorted(op.callers),
    }
    params = [*_path_parameters(op.path), *(_query_parameter(q) for q in op.query)]
    params += [_header_parameter(h) for h in op.headers]
    params.append({"$ref": "#/components/parameters/RequestId"})
    doc["parameters"] = params
    if op.request is not None:
        doc["requestBody"] = {"required": True, "content": _content(builder, op.request, examples.bodies(op.request))}
    if op.internal:
        doc["security"] = [{"serviceToken": []}]
    elif ANYONE in op.callers:
        doc["security"] = []
    else:
        assert CLIENT in op.callers
        doc["security"] = [{"accessToken": []}]
    responses: dict[str, Any] = {}
    for status, cls in op.documented().items():
        text = OPERATION_TEXT.get((service, op.name, status)) or STATUS_TEXT[status]
        answer: dict[str, Any] = {
            "description": text,
            "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
        }
        if status in RETRY_AFTER_STATUS:
            answer["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
        if cls is not None:
            answer["content"] = _content(builder, cls, examples.response_examples(service, op.name, status, cls))
        responses[str(status)] = answer
    doc["responses"] = responses
    return doc


def _security_schemes(service: str) -> dict[str, Any]:
    if service == "gateway":
        return {
            "accessToken": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from `POST /auth/login`: a JWT signed by Auth with EdDSA "
                "(Ed25519); its keys are published at Auth's `/.well-known/jwks.json`.",
            }
        }
    return {
        "serviceToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A service token: an HS256 JWT signed with the shared service secret, `sub` the "
            f"calling service, `aud` `syncorders-service:{service}`, valid 5 minutes. Each operation's "
            "`x-callers` lists the services that may call it; any other caller gets 403.",
        }
    }


def build(service: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one service."""
    builder = Builder()
    builder.component(ErrorBody)
    builder.component(Problem)
    paths: dict[str, dict[str, Any]] = {}
    for op in SERVICES[service]:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(service, op, builder)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLES[service],
            "version": "1.0.0",
            "description": PURPOSES[service]
            + " Money is an integer of minor units plus a currency code. "
            + INTEGERS_NOTE
            + " Every error has the body `ErrorBody`.",
        },
        "servers": [{"url": f"http://127.0.0.1:{DEFAULT_PORTS[service]}"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": _security_schemes(service),
            "parameters": {
                "RequestId": {
                    "name": "X-Request-ID",
                    "in": "header",
                    "required": False,
                    "description": "Followed through every service's log. Kept when it is 1 to 64 of "
                    "`A-Z a-z 0-9 . _ : -`; any other value, like none, is replaced by a new ID, which the "
                    "answer's `X-Request-ID` names. Never a reason to refuse a request.",
                    "schema": {"type": "string"},
                }
            },
            "headers": {
                "RequestId": {
                    "description": "The request ID this request was logged under",
                    "schema": {"type": "string", "pattern": REQUEST_ID},
                },
                "RetryAfter": {
                    "description": "Seconds to wait before sending the request again",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
            },
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def path_of(service: str, directory: Path = DIRECTORY) -> Path:
    return directory / f"{service}.json"


def load(service: str, directory: Path = DIRECTORY) -> dict[str, Any]:
    """A committed document."""
    return json.loads(path_of(service, directory).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report documents that differ from the code")
    parser.add_argument("--out", type=Path, default=DIRECTORY, help="folder of the documents")
    args = parser.parse_args(argv)
    stale = []
    for service in SERVICES:
        target = path_of(service, args.out)
        text = render(build(service))
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(service)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m contracts.openapi", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
