"""Property-based provider checks with schemathesis: for every operation of every
service, requests generated from its document (valid ones, and ones the document
forbids) must never get a 5xx, nor a status, content type or body the document does
not give. Bounded: a handful of examples per operation, derandomized for repeatable
runs."""

from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from contracts import examples, openapi
from contracts.examples import wire
from orchestrator.supervisor import Stack
from tests.contract.documents import Contract
from tests.contract.providers import Provider, caller_of

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
POSITIVE_EXAMPLES = 6
NEGATIVE_EXAMPLES = 4
OPERATIONS = [
    (service, method, path) for service in openapi.SERVICES for method, path, _ in Contract(service).operations()
]


@pytest.fixture(scope="session")
def client_token(provider: Provider) -> str:
    """A registered customer's access token for the gateway's protected routes."""
    login = f"fuzz-{uuid.uuid4().hex[:8]}"
    body = {**wire(examples.REGISTRATION), "login": login, "email": f"{login}@example.com"}
    provider.expect(201, "gateway", "POST", "/auth/register", json=body)
    credentials = {"login": login, "password": examples.REGISTRATION.password}
    return provider.expect(200, "gateway", "POST", "/auth/login", json=credentials).json()["access_token"]


@pytest.fixture(scope="session")
def schemas(stack: Stack) -> dict[str, schemathesis.BaseSchema]:
    loaded = {}
    for service in openapi.SERVICES:
        schema = schemathesis.openapi.from_dict(openapi.load(service))
        schema.config.update(base_url=stack.urls[service])
        loaded[service] = schema
    return loaded


def credential(service: str, method: str, path: str, provider: Provider, client_token: str) -> dict[str, str]:
    if service != "gateway":
        return {"Authorization": provider.service_header(service, caller_of(service, method, path))}
    return {"Authorization": f"Bearer {client_token}"}


@pytest.mark.parametrize(("service", "method", "path"), OPERATIONS, ids=[f"{s}:{m}:{p}" for s, m, p in OPERATIONS])
def test_generated_requests_get_only_documented_answers(
    service: str,
    method: str,
    path: str,
    schemas: dict[str, schemathesis.BaseSchema],
    provider: Provider,
    client_token: str,
) -> None:
    operation = schemas[service][path][method]
    headers = credential(service, method, path, provider, client_token)
    session = requests.Session()
    session.trust_env = False
    sent: list[int] = []

    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(session=session, headers=headers, checks=CHECKS, timeout=30)
        sent.append(response.status_code)

    strategies = [
        (operation.as_strategy(generation_mode=GenerationMode.POSITIVE), POSITIVE_EXAMPLES),
        (operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), NEGATIVE_EXAMPLES),
    ]
    for strategy, count in strategies:

        @settings(
            max_examples=count,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            call(case)

        run()
    # The documented examples, as they stand in the document.
    documented = operation.get_strategies_from_examples()
    if documented:

        @settings(max_examples=len(documented), deadline=None, database=None, derandomize=True)
        @given(case=st.one_of(*documented))
        def run_examples(case: schemathesis.Case) -> None:
            call(case)

        run_examples()
    assert sent, "no request was sent"


def test_an_answer_the_document_does_not_give_fails_the_run(stack: Stack, provider: Provider) -> None:
    """The checks bite: with 406 struck from Billing's document, a declined payment fails."""
    document = openapi.load("billing")
    del document["paths"]["/payments"]["post"]["responses"]["406"]
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=stack.urls["billing"])
    operation = schema["/payments"]["POST"]
    user = str(uuid.uuid4())
    provider.expect(201, "billing", "PUT", f"/wallets/{user}", json={"currency": "RUB"})
    body = {"order_id": str(uuid.uuid4()), "user_id": user, "amount": 100, "currency": "RUB"}
    case = schema.make_case(operation=operation, body=body, media_type="application/json")
    headers = credential("billing", "POST", "/payments", provider, "")
    with pytest.raises(FailureGroup) as caught:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
    assert "Received: 406" in str(caught.value.exceptions[0])
