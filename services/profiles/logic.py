"""What Profiles does, apart from HTTP."""

from __future__ import annotations

import peewee

from contracts import profiles as wire
from services.common.db import iso, load, utcnow, write_transaction
from services.common.errors import NotFound
from services.profiles import models
from services.profiles.models import Profile


def to_wire(row: Profile) -> wire.Profile:
    return wire.Profile(
        user_id=row.user_id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
    )


def put_profile(db: peewee.Database, user_id: str, data: wire.ProfileData) -> tuple[wire.Profile, bool]:
    """Create or replace; sending the same profile twice changes nothing. The write lock
    is taken first: a read-then-write transaction on SQLite fails at once ("database is
    locked") when another writer commits in between, instead of waiting its turn."""
    fields = {"email": data.email, "first_name": data.first_name, "last_name": data.last_name}
    with write_transaction(db):
        row = Profile.get_or_none(Profile.user_id == user_id)
        if row is None:
            try:
                with db.atomic():
                    now = utcnow()
                    row = Profile.create(user_id=user_id, created_at=now, updated_at=now, **fields)
                return to_wire(row), True
            except peewee.IntegrityError:
                row = Profile.get(Profile.user_id == user_id)
        if any(getattr(row, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            row.save()
        return to_wire(row), False


def get_profile(db: peewee.Database, user_id: str) -> wire.Profile:
    found = models.BY_USER.first(db, user_id)
    if found is None:
        raise NotFound("No profile for this user.")
    return to_wire(load(Profile, found))
