"""Profiles' tables."""

from __future__ import annotations

import peewee


class Profile(peewee.Model):
    user_id = peewee.CharField(max_length=36, primary_key=True)
    email = peewee.CharField(max_length=254)
    first_name = peewee.CharField(max_length=100)
    last_name = peewee.CharField(max_length=100)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()


MODELS = (Profile,)
