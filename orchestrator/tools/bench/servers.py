"""The benchmark's own servers, each a process started by it:

``python -m orchestrator.tools.bench.servers ping`` serves one trivial Falcon JSON route with
the gateway's server settings (``SYNCORDERS_SERVER`` chooses the server): the floor
under any request. ``python -m orchestrator.tools.bench.servers composed`` serves the gateway
with the five services composed into its process (:mod:`orchestrator.tools.bench.inprocess`).
Both print the supervisor's "listening on" line.
"""

from __future__ import annotations

import sys

import falcon

from services.common.config import Settings


class Ping:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


def serve_ping(settings: Settings) -> None:
    from services.common.server import serve

    app = falcon.App()
    app.add_route("/ping", Ping())
    serve(app, "gateway", settings, port=0)


def serve_composed(settings: Settings) -> None:
    from orchestrator.tools.bench.inprocess import compose
    from services.common import logs
    from services.common.server import StopSignals, serve, tune_allocator

    stop = StopSignals().install()
    tune_allocator()
    logs.configure("composed", settings.log_level)
    serve(compose(settings), "gateway", settings, port=0, stop=stop)


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    if argv == ["ping"]:
        serve_ping(settings)
    elif argv == ["composed"]:
        serve_composed(settings)
    else:
        print("usage: python -m orchestrator.tools.bench.servers ping|composed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
