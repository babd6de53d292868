"""Errors, mapped in one place: one JSON body shape for every failure of every service.

Install with :func:`install`; a service passes the table of its own domain exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import falcon
from cattrs.errors import ClassValidationError, IterableValidationError

from contracts.converter import printable, problems, unstructure
from contracts.errors import ErrorBody
from contracts.vocabulary import STATUS_OF_FAILURE
from services.common.http import DownstreamError

log = logging.getLogger(__name__)

# What a caller is told to wait when the service it called gave no Retry-After, seconds.
DEFAULT_RETRY_AFTER = "1"


class ApiError(falcon.HTTPError):
    """An HTTP error whose body is :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(falcon.code_to_http_status(status), title=title, description=description, headers=headers)
        self.body = ErrorBody(code=code, title=title, description=description, **extra)

    def to_dict(self, obj_type: type = dict) -> dict[str, Any]:
        return _compact(unstructure(self.body))


class NotFound(Exception):
    """The thing asked for does not exist (or is not the caller's to see)."""


@attrs.frozen
class Mapped:
    """How a domain exception is answered."""

    status: int
    code: str
    title: str


# Falcon's own errors, named by status so every service answers them in our shape.
_FALCON_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    431: "headers_too_large",
}


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _serialize(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """JSON whatever the Accept header asks for: clients of this API read one shape."""
    if isinstance(exc, ApiError):
        body = exc.to_dict()
    else:
        code = _FALCON_CODES.get(exc.status_code, "error")
        if isinstance(exc, (falcon.MediaMalformedError, falcon.MediaNotFoundError)):
            code = "malformed_json"
        body = _compact({"code": code, "title": exc.title, "description": exc.description})
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON


def retry_after(status: int, callee: str | None = None) -> dict[str, str] | None:
    """A ``503`` says when to come back: what the service behind said, or a default."""
    if status != 503:
        return None
    return {"Retry-After": callee or DEFAULT_RETRY_AFTER}


def on_unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
    log.exception("unhandled error on %s %s", req.method, printable(req.path))
    raise ApiError(500, "internal_error", "Internal error", "The service failed; the request ID is in the logs.")


def install(app: falcon.App, domain_errors: Mapping[type[Exception], Mapped] | None = None) -> None:
    app.set_error_serializer(_serialize)

    def on_validation(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
        raise ApiError(
            422,
            "validation_failed",
            "Invalid request body",
            "One or more fields are missing or invalid.",
            errors=problems(exc),
        )

    def on_downstream(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
        assert isinstance(exc, DownstreamError)
        status = STATUS_OF_FAILURE[exc.reason]
        raise ApiError(
            status,
            f"{exc.service}_{exc.reason}",
            f"{exc.service.capitalize()} did not answer as expected",
            exc.detail[:300],
            headers=retry_after(status, exc.retry_after),
            service=exc.service,
        )

    app.add_error_handler(Exception, on_unexpected)
    app.add_error_handler(DownstreamError, on_downstream)
    app.add_error_handler(ClassValidationError, on_validation)
    app.add_error_handler(IterableValidationError, on_validation)

    table = {NotFound: Mapped(404, "not_found", "Not found"), **(domain_errors or {})}
    for exc_type, mapped in table.items():
        app.add_error_handler(exc_type, _domain_handler(mapped))


def _domain_handler(mapped: Mapped) -> Any:
    def handle(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
        raise ApiError(mapped.status, mapped.code, mapped.title, str(exc) or None)

    return handle
