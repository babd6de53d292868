"""The six apps composed in one process: the price of distributing the flow.

The gateway serves its clients over HTTP as usual, but its calls to the five services,
and theirs to each other, go to those services' apps in the same process through WSGI:
the same handlers, middleware, contracts, JSON and databases, with no sockets, no HTTP
parsing and no server between them. The benchmark measures it beside the stacks of six
processes; the difference is what the internal hops cost.
"""

from __future__ import annotations

import importlib
import io
import sys
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from services.common.config import INTERNAL_SERVICES, Settings
from services.common.transports import TRANSPORTS, Fields, RawResponse, Timeouts

NAME = "inprocess"
# Internal services are reached at http://<service>.inprocess, which no DNS resolves.
DOMAIN = ".inprocess"


class InProcessTransport:
    """A transport that calls a WSGI app of this process instead of sending bytes."""

    schemes = ("http",)
    # By host name (``orders.inprocess``); filled in once the apps are made.
    apps: ClassVar[dict[str, Any]] = {}

    def __init__(self, timeouts: Timeouts, pool_size: int) -> None:
        pass

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], max_bytes: int) -> RawResponse:
        parts = urlsplit(url)
        host = parts.hostname or ""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(parts.path, encoding="latin-1"),
            "QUERY_STRING": parts.query,
            "SERVER_NAME": host,
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body or b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if body is not None:
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        answer: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer[:] = [int(status[:3]), response_headers]

        result = self.apps[host](environ, start_response)
        try:
            data = b"".join(result)
        finally:
            closer = getattr(result, "close", None)
            if closer is not None:
                closer()
        status, response_headers = answer
        return RawResponse(status, Fields({name.lower(): value for name, value in response_headers}), data)


def composed_settings(settings: Settings) -> Settings:
    """The settings of the composition: every internal service reached in process."""
    import attrs

    urls = {service: f"http://{service}{DOMAIN}" for service in INTERNAL_SERVICES}
    return attrs.evolve(settings, urls=urls, http_transport=NAME)


def compose(settings: Settings) -> Any:
    """The six apps, made as ``syncorders serve`` makes each, wired to one another in
    this process; the gateway's app, to be served."""
    from orchestrator.tools.cli import APPS
    from services.common.tracing import Tracing

    TRANSPORTS[NAME] = InProcessTransport
    settings = composed_settings(settings)
    gateway = None
    # Callees first, as the supervisor starts them; a client finds its callee by name
    # at call time.
    for service in ("profiles", "billing", "orders", "notifications", "auth", "gateway"):
        app = importlib.import_module(APPS[service]).create_app(settings, tracing=Tracing(service))
        if service == "gateway":
            gateway = app
        else:
            InProcessTransport.apps[f"{service}{DOMAIN}"] = app
    return gateway
