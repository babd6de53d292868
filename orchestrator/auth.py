"""The gateway's door check: a valid access token on every route but register and login."""

from __future__ import annotations

from typing import Any

import falcon

from contracts.operations import ANYONE, Operation
from orchestrator.console import ROUTES as CONSOLE_ROUTES
from orchestrator.tokens import InvalidToken, TokenVerifier
from services.common.errors import ApiError
from services.common.routes import plain_template

# Open to anyone, or checked by their own resources (the console signs its operators in).
OPEN_ROUTES = (
    frozenset({"/health", "/ready", "/metrics", "/docs", "/docs/static/{name}", "/openapi.json"}) | CONSOLE_ROUTES
)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="syncorders"'}


class ClientAuth:
    def __init__(self, verifier: TokenVerifier, operations: tuple[Operation, ...]) -> None:
        self.verifier = verifier
        self.public = {(op.method, op.path) for op in operations if ANYONE in op.callers}

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        if resource is None or req.uri_template in OPEN_ROUTES:
            return
        if (req.method, plain_template(req.uri_template)) in self.public:
            return
        if req.get_param("access_token") is not None:
            # Tokens in URLs end up in logs and browser history.
            raise ApiError(401, "token_in_query", "Send the token in the Authorization header", headers=_CHALLENGE)
        scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Access token required", headers=_CHALLENGE)
        try:
            req.context.user_id = self.verifier.verify(token.strip())
        except InvalidToken as exc:
            raise ApiError(401, "invalid_token", "Invalid access token", str(exc), headers=_CHALLENGE) from exc
