"""How a contract module describes its routes: one :class:`Operation` per method and path.

The table serves three readers: the service's trust check (who may call a route), the
OpenAPI documents, and the tests that hold the running services to the table.
"""

from __future__ import annotations

from typing import Any

import attrs

from contracts.errors import ErrorBody
from contracts.types import UUID_QUERY

# The six services, and the port each listens on unless configured otherwise.
SERVICES = ("gateway", "auth", "profiles", "orders", "billing", "notifications")
DEFAULT_PORTS = dict(zip(SERVICES, range(8000, 8006), strict=True))
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
    # JSON Schema keywords beyond the type: what the service checks in the value.
    constraints: dict[str, Any] = attrs.Factory(dict)


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

    @property
    def internal(self) -> bool:
        """Called by other services with a service token, not by clients."""
        return not self.callers & {ANYONE, CLIENT}

    def documented(self) -> dict[int, Any]:
        """Every status the route can answer: its own, then what the shared plumbing
        answers before or around it (see :data:`PLUMBING`)."""
        statuses = dict(self.responses)
        for applies, codes in PLUMBING:
            if applies(self):
                for code in codes:
                    statuses.setdefault(code, ErrorBody)
        return dict(sorted(statuses.items()))


# A page of a listing: ``services.common.web.page`` enforces these.
MAX_PAGE = 100
DEFAULT_PAGE = 20
# Offsets are written in at most nine digits.
MAX_OFFSET = 999_999_999
PAGE_QUERY = (
    Query(
        "limit",
        int,
        f"page size, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})",
        constraints={"minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    ),
    Query(
        "offset",
        int,
        f"items to skip, 0 to {MAX_OFFSET} (default 0); after `before` when both are given",
        constraints={"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
    ),
    # Keyset paging: a page starts after an item, not at a count, so it costs the same at
    # any depth, and items added or changed meanwhile neither repeat nor skip any.
    Query(
        "before",
        str,
        "only items older than this one, by its ID: the previous page's `next_before`"
        " (an ID not in the listing gives an empty page)",
        constraints=UUID_QUERY,
    ),
)


@attrs.frozen
class Page:
    """Which part of a newest-first listing :data:`PAGE_QUERY` asks for: up to ``limit``
    items older than the item whose ID is ``before`` (when given), less the first
    ``offset`` of them."""

    limit: int = DEFAULT_PAGE
    offset: int = 0
    before: str | None = None


# Statuses the shared plumbing (services/common/web.py, errors.py, trust.py) answers on
# a route's behalf. They are part of every document, but not of ``responses``: a typed
# client expects only a route's own answers and treats these as its own call failing
# (a gateway must not pass a refused service credential on to its client as a 401).
PLUMBING: tuple[tuple[Any, tuple[int, ...]], ...] = (
    # An unexpected failure, answered in the one error shape.
    (lambda op: True, (500,)),
    # The service-credential check on every internal route; their database unavailable
    # or busy (a 503 always carries Retry-After).
    (lambda op: op.internal, (401, 403, 503)),
    # Malformed JSON, a body over the size limit, a body that is not JSON.
    (lambda op: op.request is not None, (400, 413, 415)),
    # A required query parameter missing.
    (lambda op: any(q.required for q in op.query), (400,)),
    # A path parameter that is not a UUID matches no route.
    (lambda op: "{" in op.path, (404,)),
)
