"""The OpenAPI documents: current with the code, valid OpenAPI 3.1, examples that conform,
and the same set of routes as the apps really serve."""

from __future__ import annotations

import importlib
import secrets
from pathlib import Path

import attrs
import falcon.inspect
import pytest
from openapi_spec_validator import validate

from contracts import examples, openapi
from contracts.converter import structure
from contracts.errors import ErrorBody
from orchestrator.cli import APPS
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
    assert item["quantity"] == {"type": "integer", "minimum": 1, "maximum": 10_000}
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
