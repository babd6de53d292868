"""The gateway's token verifier against a fake Auth: which keys it trusts, and how often
it asks Auth for them. The clock is the test's, so no test waits."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator import tokens
from orchestrator.tokens import InvalidToken, TokenVerifier
from services.common.trust import ServiceTokens, TrustMiddleware
from tests.fakes import FakeAuth, kid

ISSUER, AUDIENCE, INTERVAL = "syncorders-auth", "syncorders", 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def raw_token(header: Any, claims: Any, sign: Callable[[bytes], bytes] | None = None) -> str:
    """A JWS put together by hand, for headers and signatures no library would make."""

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = sign(signing_input.encode()) if sign else b""
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def token(key: Ed25519PrivateKey, key_id: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": key_id or kid(key)})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(tokens.time, "monotonic", fake)
    return fake


def verifier(auth: FakeAuth) -> TokenVerifier:
    return TokenVerifier(auth, ISSUER, AUDIENCE, leeway=5, refresh_interval=INTERVAL)  # type: ignore[arg-type]


def test_a_token_signed_by_a_published_key_names_its_subject(clock: Clock) -> None:
    key = Ed25519PrivateKey.generate()
    user = str(uuid.uuid4())
    assert verifier(FakeAuth(key)).verify(token(key, sub=user)) == user


def test_many_unknown_kids_cost_one_fetch_per_refresh_interval(clock: Clock) -> None:
    auth = FakeAuth(Ed25519PrivateKey.generate())
    check = verifier(auth)
    stranger = Ed25519PrivateKey.generate()
    for _ in range(500):
        with pytest.raises(InvalidToken, match="unknown key ID"):
            check.verify(token(stranger, key_id=uuid.uuid4().hex))
    assert auth.fetches == 1
    clock.now += INTERVAL
    with pytest.raises(InvalidToken):
        check.verify(token(stranger, key_id=uuid.uuid4().hex))
    assert auth.fetches == 2


def test_a_new_key_is_trusted_once_the_interval_has_passed(clock: Clock) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    auth = FakeAuth(old)
    check = verifier(auth)
    check.verify(token(old))
    auth.keys.append(new)
    with pytest.raises(InvalidToken, match="unknown key ID"):
        check.verify(token(new))
    clock.now += INTERVAL
    check.verify(token(new))
    assert auth.fetches == 2


def test_a_key_auth_stops_publishing_stops_being_trusted(clock: Clock) -> None:
    retired, current = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    auth = FakeAuth(retired, current)
    check = verifier(auth)
    check.verify(token(retired))
    auth.keys.remove(retired)
    clock.now += INTERVAL
    with pytest.raises(InvalidToken, match="unknown key ID"):
        check.verify(token(retired))
    check.verify(token(current))


def test_auth_down_keeps_the_known_keys_and_is_asked_once_per_interval(clock: Clock) -> None:
    key = Ed25519PrivateKey.generate()
    auth = FakeAuth(key)
    check = verifier(auth)
    check.verify(token(key))
    auth.down = True
    clock.now += INTERVAL
    for _ in range(20):
        check.verify(token(key))
    assert auth.fetches == 2


def test_a_token_checked_while_keys_are_being_fetched_waits_for_them(clock: Clock) -> None:
    key = Ed25519PrivateKey.generate()
    auth = FakeAuth(key)
    auth.gate = threading.Event()
    check = verifier(auth)
    outcomes: list[object] = []

    def verify() -> None:
        try:
            outcomes.append(check.verify(token(key, sub=str(uuid.UUID(int=7)))))
        except InvalidToken as exc:
            outcomes.append(exc)

    first = threading.Thread(target=verify)
    first.start()
    assert auth.fetching.wait(10)
    second = threading.Thread(target=verify)
    second.start()
    second.join(0.2)
    assert second.is_alive(), f"did not wait for the fetch in flight: {outcomes}"
    auth.gate.set()
    first.join(10)
    second.join(10)
    assert outcomes == [str(uuid.UUID(int=7))] * 2
    assert auth.fetches == 1


@pytest.mark.parametrize(
    "hostile",
    ["x" * 65, "../../etc/passwd", "' OR '1'='1", "", "trailing\n", "kid with space", 7, ["a"], {"a": 1}, None],
)
def test_a_malformed_kid_is_refused_without_asking_auth(clock: Clock, hostile: Any) -> None:
    key = Ed25519PrivateKey.generate()
    auth = FakeAuth(key)
    forged = raw_token({"alg": "EdDSA", "kid": hostile}, {"sub": str(uuid.uuid4())}, key.sign)
    with pytest.raises(InvalidToken, match="malformed"):
        verifier(auth).verify(forged)
    assert auth.fetches == 0


def test_a_real_kid_with_a_trailing_newline_is_not_that_kid(clock: Clock) -> None:
    key = Ed25519PrivateKey.generate()
    auth = FakeAuth(key)
    with pytest.raises(InvalidToken, match="malformed key ID"):
        verifier(auth).verify(token(key, key_id=kid(key) + "\n"))
    assert auth.fetches == 0


@pytest.mark.parametrize("missing", tokens.REQUIRED_CLAIMS)
def test_each_required_claim_is_required(clock: Clock, missing: str) -> None:
    key = Ed25519PrivateKey.generate()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 300}
    del claims[missing]
    forged = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid(key)})
    with pytest.raises(InvalidToken, match=missing):
        verifier(FakeAuth(key)).verify(forged)


@pytest.mark.parametrize("subject", ["admin", str(uuid.uuid4()).upper(), "", 42])
def test_a_subject_that_is_not_a_user_id_is_refused(clock: Clock, subject: Any) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidToken):
        verifier(FakeAuth(key)).verify(token(key, sub=subject))


@pytest.mark.parametrize("claim", tokens.TIME_CLAIMS)
def test_a_time_claim_written_as_a_string_is_refused(clock: Clock, claim: str) -> None:
    key = Ed25519PrivateKey.generate()
    value = {"exp": "9999999999", "iat": str(int(time.time())), "nbf": str(int(time.time()))}[claim]
    with pytest.raises(InvalidToken, match="time claims"):
        verifier(FakeAuth(key)).verify(token(key, **{claim: value}))


@pytest.mark.parametrize(
    "start", [lambda secret: ServiceTokens(secret, "gateway"), lambda secret: TrustMiddleware("billing", secret, [])]
)
def test_a_service_secret_short_enough_to_guess_stops_the_start(start: Callable[[str], Any]) -> None:
    with pytest.raises(SystemExit, match="at least 32 bytes"):
        start("s" * 31)
    start("s" * 32)


def test_a_token_already_accepted_is_refused_once_its_key_is_withdrawn(clock: Clock) -> None:
    retired, current = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    auth = FakeAuth(retired, current)
    check = verifier(auth)
    same = token(retired)
    check.verify(same)
    check.verify(same)
    auth.keys.remove(retired)
    clock.now += INTERVAL
    with pytest.raises(InvalidToken, match="unknown key ID"):
        check.verify(same)


def test_a_token_already_accepted_is_refused_once_it_expires() -> None:
    key = Ed25519PrivateKey.generate()
    check = TokenVerifier(FakeAuth(key), ISSUER, AUDIENCE, leeway=0, refresh_interval=INTERVAL)  # type: ignore[arg-type]
    expires = int(time.time()) + 2
    short = token(key, exp=expires)
    check.verify(short)
    time.sleep(max(0.0, expires + 1 - time.time()))
    with pytest.raises(InvalidToken):
        check.verify(short)
