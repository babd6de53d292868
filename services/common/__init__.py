"""Plumbing every service shares: configuration, errors, HTTP app, database, clients."""
