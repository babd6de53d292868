"""Orders' HTTP resources: parse, call the logic, respond."""

from __future__ import annotations

import datetime

import falcon

from contracts import orders as wire
from contracts.types import ORDER_STATUSES
from services.common.clock import parse_iso
from services.common.errors import ApiError
from services.common.web import id_param, page, read_body, respond
from services.orders import logic
from services.orders.store import OrderStore, Selection

EXAMPLE_TIME = "2026-01-31T09:30:00Z"


class OrdersResource:
    def __init__(self, store: OrderStore, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_body(req, wire.NewOrder)
        order, created = logic.create(self.store, data, self.lease_seconds)
        respond(resp, order, 201 if created else 200)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = page(req)
        status = req.get_param("status")
        if status is not None and status not in ORDER_STATUSES:
            raise ApiError(
                422, "validation_failed", "Invalid query", f"status must be one of {', '.join(ORDER_STATUSES)}."
            )
        before, after = _time_param(req, "updated_before"), _time_param(req, "updated_after")
        selection = Selection(id_param(req, "user_id"), status, updated_before=before, updated_after=after)
        respond(resp, logic.listing(self.store, selection, asked))


def _time_param(req: falcon.Request, name: str) -> datetime.datetime | None:
    raw = req.get_param(name)
    if raw is None:
        return None
    invalid = ApiError(422, "validation_failed", "Invalid query", f"{name} must be a UTC time such as {EXAMPLE_TIME}.")
    if not wire.UTC_TIME_RE.fullmatch(raw):
        raise invalid
    try:
        return parse_iso(raw)
    except ValueError as exc:  # a day the month does not have
        raise invalid from exc


class OrderResource:
    def __init__(self, store: OrderStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: object) -> None:
        respond(resp, logic.get(self.store, str(order_id)))


class StatusResource:
    def __init__(self, store: OrderStore) -> None:
        self.store = store

    def on_put(self, req: falcon.Request, resp: falcon.Response, order_id: object) -> None:
        change = read_body(req, wire.StatusChange)
        respond(resp, logic.set_status(self.store, str(order_id), change))


class RunResource:
    def __init__(self, store: OrderStore) -> None:
        self.store = store

    def on_delete(self, req: falcon.Request, resp: falcon.Response, order_id: object) -> None:
        run_id = req.get_param("run_id", required=True)
        logic.release(self.store, str(order_id), run_id)
        resp.status = falcon.HTTP_204
