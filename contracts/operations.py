"""How a contract module describes its routes: one :class:`Operation` per method and path.

The table serves three readers: the service's trust check (who may call a route), the
OpenAPI documents, and the tests that hold the running services to the table.
"""

from __future__ import annotations

from typing import Any

import attrs

GATEWAY = "gateway"
AUTH = "auth"
NOTIFICATIONS = "notifications"
# Public routes of the gateway: anyone, or any client holding a valid access token.
ANYONE = "anyone"
CLIENT = "client"


@attrs.frozen
class Query:
    name: str
    kind: type = str
    description: str = ""
    required: bool = False


@attrs.frozen
class Operation:
    method: str
    path: str
    name: str
    summary: str
    callers: frozenset[str]
    request: type | None = None
    responses: dict[int, Any] = attrs.Factory(dict)
    query: tuple[Query, ...] = ()
    headers: tuple[str, ...] = ()


PAGE_QUERY = (
    Query("limit", int, "page size, 1 to 100 (default 20)"),
    Query("offset", int, "items to skip (default 0)"),
)
