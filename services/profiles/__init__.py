"""Profiles: customers' contact data (email, name)."""
