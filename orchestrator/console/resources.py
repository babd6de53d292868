"""The console's HTTP resources: the page, its files, and the runs as JSON.

Every one of them is for operators only (HTTP Basic, user ``operator``, the operator
secret) and answers with headers that keep a browser from running or loading anything
the page did not bring itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib.resources
from typing import Any

import falcon

from contracts.converter import unstructure
from orchestrator.console.runs import OUTCOMES, brief
from orchestrator.console.store import RunStore
from services.common.errors import ApiError

OPERATOR = "operator"
STATIC = importlib.resources.files("orchestrator.console") / "static"
# The page's own files, by suffix; anything else in the folder is not served.
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="syncorders console", charset="UTF-8"'}
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_LAST = 10_000
DEFAULT_LAST = 500
MAX_QUERY = 200


def _digest(text: str) -> bytes:
    # Equal lengths for compare_digest, whatever was sent.
    return hashlib.sha256(text.encode("utf-8")).digest()


class Operators:
    """HTTP Basic for one user, ``operator``, whose password is the operator secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the console needs an operator secret: an empty one would let anyone in")
        self._user = _digest(OPERATOR)
        self._secret = _digest(secret)

    def check(self, req: falcon.Request) -> None:
        scheme, _, value = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            # A customer's bearer token is not an operator's credential: same answer as none.
            raise ApiError(
                401,
                "unauthorized",
                "Operator sign-in required",
                "The console takes HTTP Basic credentials: user operator, the operator secret.",
                headers=_CHALLENGE,
            )
        try:
            user, colon, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, colon, password = "", "", ""
        # Both compared, always, so the time taken says nothing about which was wrong.
        right_user = hmac.compare_digest(_digest(user), self._user)
        right_secret = hmac.compare_digest(_digest(password), self._secret)
        if not (colon and right_user and right_secret):
            raise ApiError(401, "invalid_credentials", "Invalid operator credentials", headers=_CHALLENGE)


def operators_only(req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
    """Security headers on every answer, the refusals included; then the sign-in."""
    resp.set_headers(SECURITY_HEADERS)
    # Runs hold customers' data: no cache keeps them (the static files say otherwise).
    resp.cache_control = ["no-store"]
    resource.operators.check(req)


@falcon.before(operators_only)
class Page:
    def __init__(self, operators: Operators) -> None:
        self.operators = operators
        self.body = (STATIC / "index.html").read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = self.body


@falcon.before(operators_only)
class StaticFile:
    """The page's scripts, styles and icon; revalidated by ETag, so a new version of the
    package is picked up on the next load."""

    def __init__(self, operators: Operators) -> None:
        self.operators = operators
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for entry in STATIC.iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if entry.is_file() and suffix in CONTENT_TYPES:
                body = entry.read_bytes()
                self.files[entry.name] = (body, CONTENT_TYPES[suffix], hashlib.sha256(body).hexdigest()[:32])

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in self.files:
            raise ApiError(404, "not_found", "No such console file")
        body, content_type, tag = self.files[name]
        resp.cache_control = ["no-cache"]
        resp.etag = tag
        if req.if_none_match and any(match == tag for match in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = content_type
        resp.data = body


def _count(req: falcon.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 16 and low <= int(raw) <= high):
        raise ApiError(
            422, "validation_failed", "Invalid query", f"{name} must be a whole number from {low} to {high}."
        )
    return int(raw)


@falcon.before(operators_only)
class Runs:
    """``GET /console/api/runs``: the newest runs first, briefly (no calls or step
    times); ``last`` is the newest ``seq`` the store had, to poll ``?after=`` with."""

    def __init__(self, operators: Operators, store: RunStore) -> None:
        self.operators = operators
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        after = _count(req, "after", None, 0, 2**53)
        before = _count(req, "before", None, 0, 2**53)
        limit = _count(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        outcome = req.get_param("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise ApiError(422, "validation_failed", "Invalid query", f"outcome must be one of {', '.join(OUTCOMES)}.")
        query = (req.get_param("q") or "").strip() or None
        if query is not None and len(query) > MAX_QUERY:
            raise ApiError(422, "validation_failed", "Invalid query", f"q is at most {MAX_QUERY} characters.")
        # Read before the page: a run added meanwhile is either in the page or above it.
        last = self.store.last
        runs = self.store.page(after=after, before=before, outcome=outcome, query=query, limit=limit or DEFAULT_LIMIT)
        if runs:
            last = max(last, runs[0].seq)
        resp.media = {"runs": [brief(run) for run in runs], "last": last}


@falcon.before(operators_only)
class OneRun:
    def __init__(self, operators: Operators, store: RunStore) -> None:
        self.operators = operators
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        run = self.store.get(run_id)
        if run is None:
            raise ApiError(404, "not_found", "Run not found", "The console keeps the most recent runs only, in memory.")
        resp.media = unstructure(run)


@falcon.before(operators_only)
class RunSummary:
    def __init__(self, operators: Operators, store: RunStore) -> None:
        self.operators = operators
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        last = _count(req, "last", DEFAULT_LAST, 1, MAX_LAST)
        resp.media = unstructure(self.store.summary(last or DEFAULT_LAST))
