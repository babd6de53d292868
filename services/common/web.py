"""The Falcon app every service starts from, and the helpers resources use.

``base_app`` installs, in order: the request's server span, the request context
(request ID, timing, access log), the metrics, the body-size limit, then what the service
adds (the service-trust check, the database connection).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import falcon
import falcon.media
from opentelemetry.trace import Tracer

from contracts.converter import printable, structure, unstructure
from contracts.operations import DEFAULT_PAGE, MAX_PAGE, Page
from contracts.types import UUID_RE
from services.common import errors
from services.common.logs import REQUEST_ID_HEADER, accept_request_id, request_id_var
from services.common.metrics import Metrics, MetricsResource
from services.common.tracing import NO_TRACING, CallLog, TraceRequests, outbound_var, timing_entries

log = logging.getLogger("access")
MAX_JSON_DEPTH = 16


def _json_depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return True


def _loads(text: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    if not _json_depth_ok(value):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RequestContext:
    """Request ID in and out, the service's own time as ``Server-Timing``, one access
    log line per request. With ``report_calls``, ``Server-Timing`` also lists the calls
    the service made while answering (an internal service's caller draws them)."""

    def __init__(self, service: str, report_calls: bool = False) -> None:
        self.service = service
        self.report_calls = report_calls

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        rid = accept_request_id(req.get_header(REQUEST_ID_HEADER))
        req.context.request_id = rid
        req.context.started = time.perf_counter()
        req.context.timings = []
        req.context.token = request_id_var.set(rid)
        if self.report_calls:
            req.context.calls_token = outbound_var.set(CallLog(req.context.started))
        resp.set_header(REQUEST_ID_HEADER, rid)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        entries = [*req.context.timings, f"app;dur={elapsed_ms:.2f}"]
        calls_token = getattr(req.context, "calls_token", None)
        if calls_token is not None:
            log_of_calls = outbound_var.get()
            if log_of_calls is not None:
                entries += timing_entries(log_of_calls.calls)
            outbound_var.reset(calls_token)
        resp.set_header("Server-Timing", ", ".join(entries))
        # The path is the client's text, decoded: a %0A in it must not start a log line.
        log.info("%s %s %s %.1fms", req.method, printable(req.path), resp.status_code, elapsed_ms)
        request_id_var.reset(req.context.token)


class BodyLimit:
    """Refuse an oversized body before reading it (waitress caps chunked bodies, at twice
    the limit: see ``services.common.server``)."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None and length > self.max_body:
            raise errors.ApiError(
                413, "payload_too_large", "Request body too large", f"At most {self.max_body} bytes are accepted."
            )


def base_app(
    service: str,
    *,
    max_body: int,
    middleware: Iterable[Any] = (),
    domain_errors: Mapping[type[Exception], errors.Mapped] | None = None,
    metrics: Metrics | None = None,
    tracer: Tracer = NO_TRACING,
    report_calls: bool = False,
) -> falcon.App:
    metrics = metrics or Metrics(service)
    app = falcon.App(
        middleware=[
            TraceRequests(tracer),
            RequestContext(service, report_calls),
            metrics,
            BodyLimit(max_body),
            *middleware,
        ]
    )
    handler = falcon.media.JSONHandler(dumps=_dumps, loads=_loads)
    app.req_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: handler})
    app.resp_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: handler})
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app, domain_errors)
    app.add_route("/health", Health(service))
    app.add_route("/metrics", MetricsResource(metrics.registry))
    return app


class Health:
    """Alive: the process answers. Readiness is a separate route."""

    def __init__(self, service: str) -> None:
        self.body = {"status": "ok", "service": service}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.body


def read_body(req: falcon.Request, cls: type[Any]) -> Any:
    """The request body structured into ``cls``; bad JSON is a 400, a wrong shape 422."""
    if req.content_type is None or not req.content_type.startswith(falcon.MEDIA_JSON):
        raise errors.ApiError(415, "unsupported_media_type", "Send JSON", "Content-Type must be application/json.")
    return structure(req.get_media(), cls)


def respond(resp: falcon.Response, obj: Any, status: int = 200) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = unstructure(obj)


def page(req: falcon.Request) -> Page:
    """``limit``, ``offset`` and ``before`` from the query string, within the bounds of
    ``contracts.operations.PAGE_QUERY``."""
    limit = _int_param(req, "limit", DEFAULT_PAGE)
    offset = _int_param(req, "offset", 0)
    if not 1 <= limit <= MAX_PAGE:
        raise errors.ApiError(422, "validation_failed", "Invalid query", f"limit must be 1 to {MAX_PAGE}.")
    return Page(limit, offset, id_param(req, "before"))


def _int_param(req: falcon.Request, name: str, default: int) -> int:
    raw = req.get_param(name)
    if raw is None:
        return default
    # str.isdigit() also says yes to "²" and "١", which int() refuses or reads.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise errors.ApiError(422, "validation_failed", "Invalid query", f"{name} must be a whole number.")
    return int(raw)


def id_param(req: falcon.Request, name: str) -> str | None:
    """An ID from the query string: a lowercase UUID, or ``422``. Only a well-formed ID
    reaches the database (PostgreSQL would fail on a NUL in it, for one)."""
    raw = req.get_param(name)
    if raw is not None and not UUID_RE.fullmatch(raw):
        raise errors.ApiError(422, "validation_failed", "Invalid query", f"{name} must be a lowercase UUID.")
    return raw
