"""Profiles' store: its database and every statement Profiles runs."""

from __future__ import annotations

from services.common.db import Store, load, select_statement
from services.profiles.models import MODELS, Profile

# The read every order's letter makes (see services.common.db.Statement).
BY_USER = select_statement(Profile, '"user_id" = ?')


class ProfileStore(Store):
    service = "profiles"
    models = MODELS

    def profile(self, user_id: str) -> Profile | None:
        found = BY_USER.first(self.db, user_id)
        return None if found is None else load(Profile, found)
