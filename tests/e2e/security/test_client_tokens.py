"""Forged, tampered and misplaced client tokens: each refused, and nothing spent."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.keys import thumbprint
from tests.e2e.conftest import log_text
from tests.e2e.security.common import (
    Door,
    LocalServer,
    Victim,
    b64url,
    claims,
    hmac_signer,
    jwks_fetches,
    order_body,
    place_order,
    public_forms,
    refused,
    signed,
    state,
)
from tests.harness import Customer
from tests.unit.test_tokens import raw_token

# ---------------------------------------------------------------- forged client tokens


Forger = Callable[[Door, Victim, Customer], str]


def _alg_none(spelling: str) -> Forger:
    return lambda door, victim, _: raw_token(
        {"alg": spelling, "typ": "JWT", "kid": door.kid}, claims(door, victim.customer.user_id)
    )


def _hmac_with_public_key(form: str) -> Forger:
    return lambda door, victim, _: raw_token(
        {"alg": "HS256", "typ": "JWT", "kid": door.kid},
        claims(door, victim.customer.user_id),
        hmac_signer(public_forms(door)[form]),
    )


def _rs256(door: Door, victim: Victim, _: Customer) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(door, victim.customer.user_id), key, algorithm="RS256", headers={"kid": door.kid})


def _es256(door: Door, victim: Victim, _: Customer) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(door, victim.customer.user_id), key, algorithm="ES256", headers={"kid": door.kid})


def _ed25519_alg_name_on_the_real_key(door: Door, victim: Victim, _: Customer) -> str:
    # The right key and a good Ed25519 signature, under an algorithm name that is not pinned.
    return raw_token({"alg": "Ed25519", "kid": door.kid}, claims(door, victim.customer.user_id), door.key.sign)


def _rsa_pss(door: Door, victim: Victim, _: Customer) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return raw_token(
        {"alg": "PS256", "kid": door.kid},
        claims(door, victim.customer.user_id),
        lambda data: key.sign(data, pss, hashes.SHA256()),
    )


def _without(claim: str) -> Forger:
    return lambda door, victim, _: signed(door, claims(door, victim.customer.user_id, **{claim: None}))


def _with(**changes: Any) -> Forger:
    def forge(door: Door, victim: Victim, _: Customer) -> str:
        now = int(time.time())
        values = {name: value(now) if callable(value) else value for name, value in changes.items()}
        return signed(door, claims(door, victim.customer.user_id, **values))

    return forge


def _tampered(door: Door, victim: Victim, intruder: Customer) -> str:
    # The intruder's own genuine token, its payload rewritten to name the victim.
    header, payload, signature = intruder.token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = victim.customer.user_id
    return f"{header}.{b64url(json.dumps(body).encode())}.{signature}"


def _stranger_key(door: Door, victim: Victim, _: Customer) -> str:
    return signed(door, claims(door, victim.customer.user_id), key=Ed25519PrivateKey.generate())


def _embedded_jwk(door: Door, victim: Victim, _: Customer) -> str:
    # The token carries its own (the attacker's) public key and claims the real kid.
    stranger = Ed25519PrivateKey.generate()
    public = stranger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public)}
    return signed(door, claims(door, victim.customer.user_id), key=stranger, jwk=jwk)


def _unknown_critical_header(door: Door, victim: Victim, _: Customer) -> str:
    return signed(door, claims(door, victim.customer.user_id), crit=["x-bypass"], **{"x-bypass": True})


def _segments(shape: str) -> Forger:
    def forge(door: Door, victim: Victim, _: Customer) -> str:
        header, payload, signature = signed(door, claims(door, victim.customer.user_id)).split(".")
        return {
            "two": f"{header}.{payload}",
            "empty_signature": f"{header}.{payload}.",
            "four": f"{header}.{payload}.{signature}.{signature}",
            "not_base64": "%%%.@@@.!!!",
            "header_not_json": f"{b64url(b'not json')}.{payload}.{signature}",
            "header_an_array": f"{b64url(b'[1, 2]')}.{payload}.{signature}",
        }[shape]

    return forge


TOKEN_ATTACKS: dict[str, Forger] = {
    **{f"alg_{spelling}": _alg_none(spelling) for spelling in ("none", "None", "NONE", "nOnE")},
    **{f"hs256_with_public_key_{form}": _hmac_with_public_key(form) for form in ("raw", "pem", "jwk_x")},
    "hs256_with_a_guessed_secret": lambda door, victim, _: raw_token(
        {"alg": "HS256", "kid": door.kid}, claims(door, victim.customer.user_id), hmac_signer(b"secret")
    ),
    "rs256": _rs256,
    "es256": _es256,
    "ps256": _rsa_pss,
    "ed25519_alg_name_with_the_real_key": _ed25519_alg_name_on_the_real_key,
    **{f"missing_{claim}": _without(claim) for claim in ("exp", "iat", "nbf", "sub", "iss", "aud")},
    "expired": _with(exp=lambda now: now - 60, iat=lambda now: now - 400, nbf=lambda now: now - 400),
    "not_yet_valid": _with(nbf=lambda now: now + 3600),
    "issued_in_the_future": _with(iat=lambda now: now + 3600),
    "wrong_issuer": _with(iss="someone-else"),
    "wrong_audience": _with(aud="another-api"),
    "audience_list_without_ours": _with(aud=["another-api", "yet-another"]),
    "exp_as_a_string": _with(exp="9999999999"),
    "subject_not_a_user_id": _with(sub="admin"),
    "subject_not_a_string": _with(sub=7),
    "tampered_payload_old_signature": _tampered,
    "right_kid_stranger_key": _stranger_key,
    "embedded_jwk": _embedded_jwk,
    "unknown_critical_header": _unknown_critical_header,
    **{
        f"segments_{shape}": _segments(shape)
        for shape in ("two", "empty_signature", "four", "not_base64", "header_not_json", "header_an_array")
    },
}


def test_a_token_made_with_the_signing_key_and_every_claim_right_is_accepted(door: Door, victim: Victim) -> None:
    """The control: the forging helpers make tokens the gateway would accept, so the
    refusals below are refusals of the one thing each attack changes."""
    response = door.gateway.request("GET", "/wallet", signed(door, claims(door, victim.customer.user_id)))
    assert response.status_code == 200
    assert response.json()["user_id"] == victim.customer.user_id


@pytest.mark.parametrize("attack", list(TOKEN_ATTACKS))
def test_forged_token_is_refused_and_spends_nothing(
    door: Door, victim: Victim, intruder: Customer, attack: str
) -> None:
    forged = TOKEN_ATTACKS[attack](door, victim, intruder)
    before = state(door.gateway, victim.customer)
    response = place_order(door, forged, victim)
    refused(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert state(door.gateway, victim.customer) == before


@pytest.mark.parametrize(
    "kid",
    ["k" * 10_000, "../../../../etc/passwd", "' OR '1'='1' --", "", 12345, ["a", "b"], {"$ne": None}, None],
    ids=["very_long", "path_traversal", "sql", "empty", "number", "list", "object", "null"],
)
def test_hostile_kid_is_refused_without_asking_auth(door: Door, victim: Victim, kid: Any) -> None:
    forged = raw_token({"alg": "EdDSA", "kid": kid}, claims(door, victim.customer.user_id), door.key.sign)
    before, fetches = state(door.gateway, victim.customer), jwks_fetches(door)
    refused(place_order(door, forged, victim), 401, "invalid_token")
    assert jwks_fetches(door) == fetches
    assert state(door.gateway, victim.customer) == before


def test_real_kid_with_a_trailing_newline_is_refused_without_asking_auth(door: Door, victim: Victim) -> None:
    forged = raw_token({"alg": "EdDSA", "kid": door.kid + "\n"}, claims(door, victim.customer.user_id), door.key.sign)
    fetches = jwks_fetches(door)
    refused(place_order(door, forged, victim), 401, "invalid_token")
    assert jwks_fetches(door) == fetches


def test_missing_kid_is_refused(door: Door, victim: Victim) -> None:
    forged = raw_token({"alg": "EdDSA"}, claims(door, victim.customer.user_id), door.key.sign)
    before = state(door.gateway, victim.customer)
    refused(place_order(door, forged, victim), 401, "invalid_token")
    assert state(door.gateway, victim.customer) == before


def test_a_jku_header_is_never_fetched(door: Door, victim: Victim) -> None:
    stranger = Ed25519PrivateKey.generate()
    with LocalServer(lambda path: (200, {"Content-Type": "application/json"}, b'{"keys": []}')) as lure:
        forged = raw_token(
            {"alg": "EdDSA", "kid": thumbprint(stranger.public_key()), "jku": lure.url + "/jwks.json"},
            claims(door, victim.customer.user_id),
            stranger.sign,
        )
        refused(place_order(door, forged, victim), 401, "invalid_token")
    assert lure.hits == []


def test_flood_of_unknown_kids_fetches_keys_a_bounded_number_of_times(door: Door, victim: Victim) -> None:
    stranger = Ed25519PrivateKey.generate()
    flood = [
        signed(door, claims(door, victim.customer.user_id), key=stranger, kid=b64url(uuid.uuid4().bytes))
        for _ in range(300)
    ]
    fetches, started = jwks_fetches(door), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda forged: door.gateway.request("GET", "/wallet", forged).status_code, flood))
    elapsed = time.monotonic() - started
    assert statuses == [401] * len(flood)
    # One fetch per refresh interval at most, however many unknown kids arrive.
    assert jwks_fetches(door) - fetches <= 1 + int(elapsed // door.settings.jwks_refresh_interval)
    assert door.gateway.request("GET", "/wallet", victim.customer.token).status_code == 200


# ---------------------------------------------------------------- tokens in the wrong place


def test_token_in_the_query_string_is_refused_and_not_logged(door: Door, victim: Victim) -> None:
    token = victim.customer.token
    before = state(door.gateway, victim.customer)
    refused(door.gateway.request("GET", "/wallet", params={"access_token": token}), 401, "token_in_query")
    # Even alongside a good header: the token has already leaked into the URL.
    refused(door.gateway.request("GET", "/wallet", token, params={"access_token": token}), 401, "token_in_query")
    response = door.gateway.request(
        "POST", "/orders", params={"access_token": token}, json=order_body(victim.customer.user_id)
    )
    refused(response, 401, "token_in_query")
    assert state(door.gateway, victim.customer) == before
    for service in door.stack.processes:
        assert token not in log_text(door.stack, service)
