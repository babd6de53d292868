"""What Profiles does, apart from HTTP."""

from __future__ import annotations

import peewee

from contracts import profiles as wire
from services.common.db import iso, utcnow
from services.common.errors import NotFound
from services.profiles.models import Profile
from services.profiles.store import ProfileStore


def to_wire(row: Profile) -> wire.Profile:
    return wire.Profile(
        user_id=row.user_id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
    )


def put_profile(store: ProfileStore, user_id: str, data: wire.ProfileData) -> tuple[wire.Profile, bool]:
    """Create or replace; sending the same profile twice changes nothing. The write lock
    is taken first: a read-then-write transaction on SQLite fails at once ("database is
    locked") when another writer commits in between, instead of waiting its turn."""
    fields = {"email": data.email, "first_name": data.first_name, "last_name": data.last_name}
    with store.write_transaction():
        row = store.profile(user_id)
        if row is None:
            try:
                now = utcnow()
                row = Profile(user_id=user_id, created_at=now, updated_at=now, **fields)
                with store.transaction():
                    store.add(row)
                return to_wire(row), True
            except peewee.IntegrityError:
                row = store.profile(user_id)
                assert row is not None, "the insert clashed with this profile"
        if any(getattr(row, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            store.save(row)
        return to_wire(row), False


def get_profile(store: ProfileStore, user_id: str) -> wire.Profile:
    row = store.profile(user_id)
    if row is None:
        raise NotFound("No profile for this user.")
    return to_wire(row)
