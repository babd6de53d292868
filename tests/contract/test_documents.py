"""The OpenAPI documents: current with the code, valid OpenAPI 3.1, examples that conform,
and the same set of routes as the apps really serve."""

from __future__ import annotations

import importlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import falcon.inspect
import jsonschema_rs
import pytest
from openapi_spec_validator import validate

from contracts import auth, examples, gateway, openapi, types
from contracts.converter import ClassValidationError, structure
from contracts.errors import ErrorBody
from contracts.operations import DEFAULT_PAGE, MAX_OFFSET, MAX_PAGE
from orchestrator.tools.cli import APPS
from services.common.config import Settings
from services.common.routes import plain_template
from tests.contract.documents import Contract

SERVICES = tuple(openapi.SERVICES)
# Served by every app but not part of any service's contract.
UNCONTRACTED = frozenset({"/health", "/ready", "/metrics", "/docs", "/openapi.json"})


@pytest.mark.parametrize("service", SERVICES)
def test_committed_document_is_what_the_contracts_generate(service: str) -> None:
    committed = openapi.path_of(service).read_text(encoding="utf-8")
    assert committed == openapi.render(openapi.build(service)), (
        f"contracts/openapi/{service}.json is out of date: run python -m contracts.openapi"
    )


def test_check_mode_reports_a_stale_document(tmp_path: Path) -> None:
    assert openapi.main(["--out", str(tmp_path)]) == 0
    assert openapi.main(["--check", "--out", str(tmp_path)]) == 0
    stale = openapi.path_of("billing", tmp_path)
    stale.write_text(stale.read_text().replace('"amount"', '"sum"'))
    assert openapi.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_document_is_valid_openapi_3_1(service: str) -> None:
    document = openapi.load(service)
    assert document["openapi"].startswith("3.1")
    validate(document)


@pytest.mark.parametrize("service", SERVICES)
def test_every_example_in_the_document_matches_its_schema(service: str) -> None:
    contract = Contract(service)
    checked = 0
    problems: list[str] = []
    for method, path, op in contract.operations():
        bodies = [("request", op.get("requestBody", {}).get("content", {}))]
        bodies += [(status, answer.get("content", {})) for status, answer in op["responses"].items()]
        for where, content in bodies:
            if openapi.JSON not in content:
                continue
            media = content[openapi.JSON]
            assert media["examples"], f"{method} {path} {where} has no example"
            for name, example in media["examples"].items():
                checked += 1
                problems += contract.schema_problems(
                    media["schema"], example["value"], f"{method} {path} {where} {name}"
                )
    assert checked > 0
    assert problems == []


def test_every_example_is_an_instance_that_survives_the_converter() -> None:
    named = [(cls, value) for cls, values in examples.EXAMPLES.items() for value in values.values()]
    named += [(ErrorBody, value) for values in examples.ERRORS.values() for value in values.values()]
    for cls, value in named:
        assert isinstance(value, cls)
        assert structure(examples.wire(value), cls) == value


def test_documents_carry_the_constraints_the_validators_enforce() -> None:
    schemas = openapi.load("gateway")["components"]["schemas"]
    item = schemas["Item"]["properties"]
    assert item["price"]["minimum"] == 1 and item["price"]["maximum"] == 10**12
    assert item["quantity"] == {"type": "integer", "format": "int64", "minimum": 1, "maximum": 10_000}
    assert schemas["OrderRequest"]["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert schemas["OrderRequest"]["properties"]["items"]["minItems"] == 1
    assert schemas["Registration"]["properties"]["password"]["minLength"] == 8
    assert all(schema["additionalProperties"] is False for schema in schemas.values())


def test_a_validator_the_generator_cannot_express_is_an_error() -> None:
    @attrs.frozen
    class Odd:
        value: int = attrs.field(validator=lambda _inst, _att, _value: None)

    with pytest.raises(openapi.UnknownValidator):
        openapi.Builder().component(Odd)


def test_insufficient_funds_is_documented_on_pay() -> None:
    answer = openapi.load("billing")["paths"]["/payments"]["post"]["responses"]["406"]
    assert "Insufficient funds" in answer["description"]
    assert answer["content"][openapi.JSON]["examples"]["insufficient_funds"]["value"]["title"] == "Insufficient funds"


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "gateway"])
def test_internal_routes_document_the_service_credential_check(service: str) -> None:
    document = openapi.load(service)
    for _method, path, op in Contract(service, document).operations():
        assert op["security"] == [{"serviceToken": []}], path
        assert {"401", "403"} <= set(op["responses"]), path


def served_routes(app: falcon.App) -> set[tuple[str, str]]:
    served = set()
    for route in falcon.inspect.inspect_routes(app):
        path = plain_template(route.path)
        if path in UNCONTRACTED or path.startswith(("/docs", "/console")):
            continue
        served |= {(method.method, path) for method in route.methods if not method.internal}
    return served


@pytest.mark.parametrize("service", SERVICES)
def test_the_app_serves_exactly_the_operations_of_its_contract(service: str, tmp_path: Path) -> None:
    # Its own settings: this suite's ``settings`` point at WireMock, which is not needed here.
    settings = Settings(data_dir=str(tmp_path), service_secret=secrets.token_hex(32))
    app = importlib.import_module(APPS[service]).create_app(settings)
    contracted = {(op.method, op.path) for op in openapi.SERVICES[service]}
    served = served_routes(app)
    assert served - contracted == set(), "served but not in the contract"
    assert contracted - served == set(), "in the contract but not served"


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.mark.parametrize("service", SERVICES)
def test_every_integer_is_an_int64_and_no_number_is_a_float(service: str) -> None:
    schemas = list(walk(openapi.load(service)))
    integers = [schema for schema in schemas if schema.get("type") in ("integer", ["integer", "null"])]
    assert integers and all(schema["format"] == "int64" for schema in integers)
    assert not [schema for schema in schemas if "number" in (schema.get("type") or ())]


def test_a_whole_float_breaks_the_documented_integer_as_the_service_refuses_it() -> None:
    contract = Contract("gateway")
    body = contract.document["paths"]["/wallet/deposits"]["post"]["requestBody"]["content"][openapi.JSON]["schema"]
    assert contract.schema_problems(body, {"amount": 100}, "deposit") == []
    assert contract.schema_problems(body, {"amount": 100.0}, "deposit") == ["deposit: amount: 100.0 is not a 'int64'"]
    with pytest.raises(ClassValidationError):
        structure({"amount": 100.0}, gateway.DepositRequest)


@pytest.mark.parametrize("service", SERVICES)
def test_pages_are_bounded_as_the_services_bound_them(service: str) -> None:
    for _method, path, op in Contract(service).operations():
        found = {param["name"]: param["schema"] for param in op["parameters"] if "name" in param}
        if "limit" in found:
            assert found["limit"] == {
                "type": "integer",
                "format": "int64",
                "minimum": 1,
                "maximum": MAX_PAGE,
                "default": DEFAULT_PAGE,
            }, path
            assert found["offset"] == {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "maximum": MAX_OFFSET,
                "default": 0,
            }, path


@pytest.mark.parametrize("service", SERVICES)
def test_an_unsafe_request_id_is_documented_as_replaced_not_refused(service: str) -> None:
    components = openapi.load(service)["components"]
    asked = components["parameters"]["RequestId"]
    assert asked["schema"] == {"type": "string"} and "replaced" in asked["description"]
    # What the service answers is always a safe one.
    assert components["headers"]["RequestId"]["schema"]["pattern"] == openapi.REQUEST_ID


# Each character, where the field takes one: the document's pattern must take exactly the
# characters the validator takes, read by Python's engine and by the Rust one Schemathesis
# validates with (which cannot hold a surrogate).
FIELDS = {
    "text": (lambda c: f"a{c}b", types.text(1, 10)),
    "email": (lambda c: f"a{c}b@example.com", types.email),
}


def taken_by_validator(validator: Any, value: str) -> bool:
    try:
        validator(None, attrs.fields(auth.Registration).first_name, value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("field", FIELDS)
def test_text_patterns_take_exactly_the_characters_the_validators_take(field: str) -> None:
    place, validator = FIELDS[field]
    schemas = openapi.load("gateway")["components"]["schemas"]["Registration"]["properties"]
    pattern = schemas["first_name" if field == "text" else "email"]["pattern"]
    python = re.compile(pattern)
    rust = jsonschema_rs.Draft202012Validator({"pattern": pattern})
    differ = []
    for point in range(0x110000):
        value = place(chr(point))
        taken = taken_by_validator(validator, value)
        if (python.fullmatch(value) is not None) != taken:
            differ.append(f"U+{point:04X} python")
        if not 0xD800 <= point <= 0xDFFF and rust.is_valid(value) != taken:
            differ.append(f"U+{point:04X} rust")
    assert differ == []


def test_the_unsafe_characters_and_only_they_are_refused_in_text() -> None:
    pattern = re.compile(openapi.text_pattern())
    for refused in ("\x00", "\n", "\x7f", "\x85", "\x9f", "\u2028", "\u2029", "\u202e", "\u2066", "\ud800", "\udfff"):
        assert pattern.fullmatch(f"a{refused}") is None, repr(refused)
    for taken in ("\u00a0", "\u200d", "\u202f", "\ud7ff", "\ue000", "\uffff", "\U0001f600", "\U0010ffff"):
        assert pattern.fullmatch(f"a{taken}") is not None, repr(taken)


def test_a_class_that_takes_surrogates_cannot_be_written_for_every_engine() -> None:
    with pytest.raises(openapi.UnknownValidator):
        openapi.ecma_class("[^a]")
    with pytest.raises(openapi.UnknownValidator):
        openapi.ecma_class(f"[^\U0001f600{types.UNSAFE_TEXT_CHARS}]")
