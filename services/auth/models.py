"""Auth's tables."""

from __future__ import annotations

import peewee


class User(peewee.Model):
    id = peewee.CharField(max_length=36, primary_key=True)
    login = peewee.CharField(max_length=64, unique=True)
    password_hash = peewee.CharField(max_length=255)
    email = peewee.CharField(max_length=254)
    first_name = peewee.CharField(max_length=100)
    last_name = peewee.CharField(max_length=100)
    # False until the profile and the wallet exist: such a user registers again, not in.
    complete = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField()


class SigningKey(peewee.Model):
    kid = peewee.CharField(max_length=64, primary_key=True)
    private_pem = peewee.TextField()
    created_at = peewee.DateTimeField()
    # A new key is published before it signs, so verifiers have fetched it by then.
    activates_at = peewee.DateTimeField()
    # Set when a newer key takes over; published until the last token it signed expires.
    superseded_at = peewee.DateTimeField(null=True)


class LoginFailure(peewee.Model):
    login = peewee.CharField(max_length=64, primary_key=True)
    failures = peewee.IntegerField(default=0)
    window_start = peewee.DateTimeField()


MODELS = (User, SigningKey, LoginFailure)
