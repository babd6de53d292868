"""Profiles: customers' contact data."""

from __future__ import annotations

import attrs

from contracts import types
from contracts.errors import ErrorBody
from contracts.operations import AUTH, GATEWAY, NOTIFICATIONS, Operation


@attrs.frozen
class ProfileData:
    email: str = attrs.field(validator=types.email)
    first_name: str = attrs.field(validator=types.text(1, 100))
    last_name: str = attrs.field(validator=types.text(1, 100))


@attrs.frozen
class Profile:
    user_id: str = attrs.field(validator=types.identifier)
    email: str = attrs.field(validator=types.email)
    first_name: str
    last_name: str
    created_at: str
    updated_at: str


OPERATIONS = (
    Operation(
        "PUT",
        "/profiles/{user_id}",
        "put_profile",
        "Create or replace a user's profile",
        callers=frozenset({AUTH}),
        request=ProfileData,
        responses={200: Profile, 201: Profile, 422: ErrorBody},
    ),
    Operation(
        "GET",
        "/profiles/{user_id}",
        "get_profile",
        "A user's contact data",
        callers=frozenset({GATEWAY, NOTIFICATIONS}),
        responses={200: Profile, 404: ErrorBody},
    ),
)
