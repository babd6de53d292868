"""Times as the services store and send them: naive UTC in the database, ISO 8601 with
a ``Z`` on the wire."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def iso(moment: datetime.datetime) -> str:
    """Stored times are naive UTC; on the wire they say so."""
    return moment.isoformat(timespec="microseconds") + "Z"


def parse_iso(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=None)
