"""Auth: users, password hashes, token signing keys."""

from __future__ import annotations

import attrs

from contracts import types
from contracts.errors import ErrorBody
from contracts.operations import GATEWAY, Operation


@attrs.frozen
class Registration:
    login: str = attrs.field(validator=types.login)
    password: str = attrs.field(validator=types.text(8, 128), repr=False)
    email: str = attrs.field(validator=types.email)
    first_name: str = attrs.field(validator=types.text(1, 100))
    last_name: str = attrs.field(validator=types.text(1, 100))


@attrs.frozen
class User:
    id: str
    login: str
    email: str
    first_name: str
    last_name: str
    created_at: str


@attrs.frozen
class Credentials:
    login: str = attrs.field(validator=types.text(1, 64))
    password: str = attrs.field(validator=types.text(1, 128), repr=False)


@attrs.frozen
class AccessToken:
    access_token: str
    token_type: str
    expires_in: int


@attrs.frozen
class Jwk:
    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


@attrs.frozen
class Jwks:
    keys: list[Jwk]


OPERATIONS = (
    Operation(
        "POST",
        "/users",
        "register",
        "Create a user, then its profile and its wallet",
        callers=frozenset({GATEWAY}),
        request=Registration,
        responses={201: User, 409: ErrorBody, 422: ErrorBody, 502: ErrorBody, 503: ErrorBody, 504: ErrorBody},
    ),
    Operation(
        "POST",
        "/tokens",
        "login",
        "Exchange a login and password for an access token",
        callers=frozenset({GATEWAY}),
        request=Credentials,
        responses={200: AccessToken, 401: ErrorBody, 409: ErrorBody, 422: ErrorBody, 429: ErrorBody},
    ),
    Operation(
        "GET",
        "/.well-known/jwks.json",
        "jwks",
        "Public keys that verify access tokens",
        callers=frozenset({GATEWAY}),
        responses={200: Jwks},
    ),
)
