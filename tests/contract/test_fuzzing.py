"""Schemathesis against the running services, as ``st run`` is run by hand (README,
"Contracts"): every check, every phase (the documents' examples, coverage, fuzzing with
valid and invalid data, and stateful sequences following the links between operations),
on the gateway's served document with a customer's token and on each internal service's
document with a service token for each service that calls it.

Each run must pass with no failure, error or warning: a request the document allows and
the service refuses, or one the document forbids and the service takes, fails it, as
does any 5xx or any answer outside the document. Bounded: ``MAX_EXAMPLES`` cases per
operation and phase, one fixed seed (``SYNCORDERS_TEST_FUZZ_SEED`` picks another)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contracts import examples, openapi
from contracts.examples import wire
from orchestrator.tools.supervisor import Stack
from tests.contract import fuzzing_hooks
from tests.contract.providers import Provider

ROOT = Path(__file__).resolve().parents[2]
# 25 cases per operation and phase keep the eight runs under a minute on two cores.
MAX_EXAMPLES = 25
SEED = int(os.environ.get("SYNCORDERS_TEST_FUZZ_SEED", "20261201"))
PHASES = ("examples", "coverage", "fuzzing", "stateful")
# Documents whose operations chain (create an order, then read it): the stateful phase must run.
STATEFUL = frozenset({"gateway", "orders", "notifications"})


def callers(service: str) -> list[str]:
    """One run per caller: the first service each operation lists may call it."""
    document = openapi.load(service)
    return sorted({op["x-callers"][0] for item in document["paths"].values() for op in item.values()})


RUNS = [("gateway", "client")] + [
    (service, caller) for service in openapi.SERVICES if service != "gateway" for caller in callers(service)
]


def st_run(location: str, base_url: str, token: str, report_dir: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """``st run --checks all`` from the repository root with ``schemathesis.toml``; its
    JSON report and its output. Without the cache of earlier runs, which would replay
    their cases: each run stands on its seed alone."""
    config = report_dir / "schemathesis.toml"
    config.write_text("cache.enabled = false\n" + (ROOT / "schemathesis.toml").read_text())
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        location,
        "--url",
        base_url,
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_dir / "report.json"),
        *extra,
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCHEMATHESIS_")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    path = report_dir / "report.json"
    assert path.exists(), f"st run wrote no report (exit {done.returncode}):\n{output[-4000:]}"
    return json.loads(path.read_text()), output


@pytest.fixture(scope="session")
def client_token(provider: Provider) -> str:
    """The documents' example customer (so the login example logs in), with money to
    pay for orders."""
    registered = provider.call("gateway", "POST", "/auth/register", json=wire(examples.REGISTRATION))
    assert registered.status_code in (201, 409), registered.text
    token = provider.expect(200, "gateway", "POST", "/auth/login", json=wire(examples.CREDENTIALS)).json()[
        "access_token"
    ]
    provider.expect(201, "gateway", "POST", "/wallet/deposits", token=token, json={"amount": 10**9})
    return token


@pytest.fixture(scope="session")
def example_wallet(provider: Provider) -> str:
    """The documents' example customer's wallet, with money, and the example payment made:
    Billing's example payment is then answered as the payment it is, whatever runs first
    (a recorded abandonment would decline it)."""
    user = examples.USER_ID
    opened = provider.call("billing", "PUT", f"/wallets/{user}", caller="auth", json=wire(examples.NEW_WALLET))
    assert opened.status_code in (200, 201), opened.text
    provider.expect(201, "billing", "POST", f"/wallets/{user}/deposits", json={"amount": 10**9})
    paid = provider.call("billing", "POST", "/payments", json=wire(examples.PAYMENT_REQUEST))
    assert paid.status_code in (200, 201) and paid.json()["outcome"] == "debited", paid.text
    return user


@pytest.mark.parametrize(("service", "caller"), RUNS, ids=[f"{service}-as-{caller}" for service, caller in RUNS])
def test_every_check_passes_in_every_phase(
    service: str, caller: str, stack: Stack, provider: Provider, client_token: str, example_wallet: str, tmp_path: Path
) -> None:
    if service == "gateway":
        location, token = stack.urls["gateway"] + "/openapi.json", client_token
        extra: tuple[str, ...] = ()
    else:
        location = str(openapi.path_of(service))
        token = provider.service_header(service, caller).removeprefix("Bearer ")
        extra = ("--include-by", f'/x-callers/0 == "{caller}"')
    report, output = st_run(location, stack.urls[service], token, tmp_path, *extra)

    where = f"{service} as {caller}, seed {SEED}:\n{output[-6000:]}"
    assert report["failures"] == [] and report["errors"] == [], where
    assert report["exit_code"] == 0 and report["complete"], where
    phases = {phase: report["phases"][phase] for phase in PHASES}
    # Operations that take no value from one another leave the stateful phase nothing to chain.
    unchained = {"status": "skip", "skip_reason": "not_applicable"}
    if service not in STATEFUL and phases["stateful"] == unchained:
        phases["stateful"]["status"] = "success"
    assert {phase: found["status"] for phase, found in phases.items()} == dict.fromkeys(PHASES, "success"), where
    assert report["operations"]["tested"] == report["operations"]["selected"] > 0, where
    assert report["test_cases"]["generated"] > 0, where
    raised = {name: found for name, found in report["warnings"].items() if found}
    assert raised == {}, where


def test_a_bound_the_document_leaves_out_fails_the_run(stack: Stack, provider: Provider, tmp_path: Path) -> None:
    """The runs bite: with `limit` unbounded in Billing's document, a valid-looking
    `limit` the service refuses is reported."""
    document = openapi.load("billing")
    listing = document["paths"]["/wallets/{user_id}/operations"]["get"]
    for parameter in listing["parameters"]:
        if parameter.get("name") == "limit":
            del parameter["schema"]["maximum"]
    changed = tmp_path / "billing.json"
    changed.write_text(json.dumps(document))
    token = provider.service_header("billing", "gateway").removeprefix("Bearer ")

    report, output = st_run(
        str(changed), stack.urls["billing"], token, tmp_path, "--include-operation-id", "list_operations"
    )

    assert report["exit_code"] == 1, output[-4000:]
    assert {failure["code"] for failure in report["failures"]} == {"ST202"}, output[-4000:]


def test_whole_floats_are_written_back_as_the_integers_the_document_declares() -> None:
    document = openapi.load("gateway")
    components = document["components"]["schemas"]
    schema = document["paths"]["/orders"]["post"]["requestBody"]["content"][openapi.JSON]["schema"]
    body = {
        "user_id": "3f2c8a4e-5b1d-4c6e-9a7f-2d8e1b0c4a51",
        "currency": "RUB",
        "items": [{"name": "7.0", "quantity": 3.0, "price": 250.0}, {"name": "Tea", "quantity": 1.5, "price": 2}],
    }

    written = fuzzing_hooks.integer_literals(body, schema, components)

    first, second = written["items"]
    assert (first["quantity"], first["price"]) == (3, 250)
    assert type(first["quantity"]) is int and type(first["price"]) is int
    # A fraction is no integer and a string is no number: both stay what they were.
    assert second["quantity"] == 1.5 and first["name"] == "7.0"


def test_the_repository_configuration_names_the_hooks_and_switches_no_check_off() -> None:
    import tomllib

    from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES

    config = tomllib.loads((ROOT / "schemathesis.toml").read_text())
    assert config["hooks"] == fuzzing_hooks.__name__
    assert set(config) == {"hooks", "project"}
    # Only a status more for valid data, and only where the document answers it so.
    (billing,) = config["project"]
    assert billing["title"] == openapi.load("billing")["info"]["title"] and set(billing) == {"title", "operations"}
    (pay,) = billing["operations"]
    statuses = pay["checks"]["positive_data_acceptance"]["expected-statuses"]
    assert sorted(set(statuses) - set(POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES)) == ["406"]
    assert set(POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES) <= set(statuses)
    assert pay == {"include-operation-id": "pay", "checks": pay["checks"]}
    answered = [op for op in openapi.SERVICES["billing"] if op.name == pay["include-operation-id"]]
    assert [406 in op.responses for op in answered] == [True]
