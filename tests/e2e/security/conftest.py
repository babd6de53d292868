"""One stack for every attack test: it signs with a key generated here
(``signing_key_file``), so a token with every claim right can be made as well and is
accepted, the control that gives each refusal meaning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.keys import thumbprint
from tests.e2e.security.common import MAX_FAILURES, Door, Victim
from tests.harness import Customer, Gateway, start_stack


@pytest.fixture(scope="package")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    data = tmp_path_factory.mktemp("security")
    key = Ed25519PrivateKey.generate()
    pem = data / "signing-key.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    stack = start_stack(data, signing_key_file=str(pem), login_max_failures=MAX_FAILURES, login_window=120)
    yield Door(stack, Gateway(stack.urls["gateway"]), key, thumbprint(key.public_key()))
    stack.stop()


@pytest.fixture(scope="package")
def victim(door: Door) -> Victim:
    customer = door.gateway.customer(deposit=1_000)
    placed = door.gateway.order(customer, price=300)
    assert placed.status_code == 201, placed.text
    result = placed.json()
    assert result["order"]["status"] == "paid"
    return Victim(customer, result["order"]["id"], result["order"]["total"], result["letter_id"])


@pytest.fixture(scope="package")
def intruder(door: Door) -> Customer:
    return door.gateway.customer()
