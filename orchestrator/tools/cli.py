"""``syncorders``: run the system, one service, the demo, recovery, key rotation, service
tokens and the sequence diagram, the benchmark, the prefill of a large history and the
measurement of what it costs."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from services.common import logs
from services.common.config import INTERNAL_SERVICES, SERVICES, Settings

APPS = {
    "gateway": "orchestrator.app",
    "auth": "services.auth.app",
    "profiles": "services.profiles.app",
    "orders": "services.orders.app",
    "billing": "services.billing.app",
    "notifications": "services.notifications.app",
}


def _leave_unloaded(service: str, settings: Settings) -> None:
    """Libraries a service has no use for but which its imports would load anyway, each
    costing every such process several MB: kept out of it."""
    unused = []
    if not settings.database(service).startswith("postgres"):
        # peewee imports every database driver it finds.
        unused += ["psycopg2", "psycopg"]
    if _without_cryptography(service):
        # PyJWT imports the cryptography package whenever it is installed, for the
        # asymmetric algorithms (8 MB); HS256 needs none of it.
        unused.append("cryptography")
    for name in unused:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.server import StopSignals, serve, tune_allocator
    from services.common.tracing import Tracing

    # Caught from the start: as a container's PID 1 an uncaught SIGTERM is ignored.
    stop = StopSignals().install()
    tune_allocator()
    logs.configure(args.service, settings.log_level)
    tracing = Tracing(args.service)
    app = importlib.import_module(APPS[args.service]).create_app(settings, tracing=tracing)
    finished = False
    try:
        finished = serve(app, args.service, settings, host=args.host, port=args.port, stop=stop)
    finally:
        # Spans still batched for export go out before the process does.
        tracing.shutdown()
    if not finished or settings.server == "granian":
        # Threads still inside cut requests, or granian's own threads (Rust's, which may
        # still reach for the interpreter: finalizing it under them aborted the process
        # now and then): leave without waiting for them or letting the interpreter shut
        # down under them. Every commit is already in the database. The stop was asked
        # for and done: 0.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    # The process is leaving: its objects need not be freed one by one at exit (up to half
    # a second of CPU on a busy machine). atexit handlers still run.
    gc.freeze()
    return 0


def _without_cryptography(service: str) -> bool:
    """Only Auth needs cryptography (it signs customers' tokens and makes keys): service
    tokens are HS256, and the gateway verifies signatures with the OpenSSL the
    interpreter has loaded, where it has Ed25519."""
    if service == "auth":
        return False
    if service == "gateway":
        from orchestrator import ed25519

        return ed25519.available()
    return True


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.tools.supervisor import Stack, StartFailed

    settings.secret()  # made once here, so all six agree on it
    operator_is_new = settings.operator_is_new()
    stack = Stack(settings)
    # Ctrl-C and SIGTERM stop everything, even when started with SIGINT ignored (nohup, &),
    # and so does a closed terminal unless nohup said otherwise. The services have a
    # process group of their own: each is stopped once, by this supervisor, and drains.
    stopper = _Stopper(stack)
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, stopper)
    try:
        stack.start()
        gateway = stack.urls["gateway"]
        print(f"all six services are up; the gateway is at {gateway} (Ctrl-C stops them all)", flush=True)
        password = _operator_password(settings, operator_is_new)
        print(f"the operator console is at {gateway}/console (user operator, {password})", flush=True)
        while True:
            crashed = stack.crashed()
            if crashed:
                for name, code in crashed:
                    print(
                        f"syncorders: {name} exited with code {code}; stopping the others", file=sys.stderr, flush=True
                    )
                return 1
            time.sleep(0.5)
    except StartFailed as exc:
        print(f"syncorders: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping all services (Ctrl-C again cuts requests still in flight)", flush=True)
        return 0
    finally:
        stack.stop()


class _Stopper:
    """``run``'s stop signals: the first stops the stack (the services drain), the
    second makes every service cut what it still has in flight, later ones change
    nothing. Never a traceback, however impatient the hand on Ctrl-C."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.count = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.count == 2:
            print("cutting requests still in flight", flush=True)
            self.stack.cut()


def _operator_password(settings: Settings, new: bool) -> str:
    """The console's password, shown the one time ``run`` made it; where it is kept after."""
    if settings.operator_secret:
        return "password: SYNCORDERS_OPERATOR_SECRET"
    kept = Path(settings.data_dir) / "operator-secret"
    return f"password: {settings.operator()}, kept in {kept}" if new else f"password in {kept}"


def cmd_diagram(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.tools.diagram import mermaid, steps_text

    sys.stdout.write(steps_text() if args.steps else mermaid())
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.tools.demo import run_demo

    return run_demo(args.gateway or settings.url("gateway"))


def cmd_recover(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.app import SERVICE
    from orchestrator.flow import Services
    from orchestrator.recovery import recover
    from services.common.clients import BillingClient, NotificationsClient, OrdersClient, make_client

    logs.configure("recovery", settings.log_level)
    services = Services(
        orders=make_client(OrdersClient, SERVICE, "orders", settings, pool_size=2),
        billing=make_client(BillingClient, SERVICE, "billing", settings, pool_size=2),
        notifications=make_client(NotificationsClient, SERVICE, "notifications", settings, pool_size=2),
    )
    older = settings.recovery_after if args.older_than is None else args.older_than
    report = recover(
        services, older_than=older, letters_since=args.letters_since * 3600, delivery_claim=settings.delivery_claim
    )
    print("\n".join(report.lines()))
    return 1 if report.failures else 0


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from services.auth import keys
    from services.auth.store import AuthStore

    store = AuthStore.open(settings, max_connections=1)
    try:
        with store.connection():
            kid = keys.rotate(store, publish_ahead=settings.jwks_refresh_interval + settings.token_leeway)
    finally:
        store.close()
    print(f"new signing key {kid} is published now and signs from {settings.jwks_refresh_interval:.0f} s on")
    return 0


def cmd_service_token(args: argparse.Namespace, settings: Settings) -> int:
    from services.common.trust import ServiceTokens

    header = ServiceTokens(settings.secret(create=False), args.caller).header(args.target)
    print(header.removeprefix("Bearer "))
    return 0


def cmd_prefill(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.tools import prefill

    return prefill.main(args, settings)


def cmd_growth(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.tools import growth

    return growth.main(args, settings)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from orchestrator.tools import bench

    return bench.main(args, settings)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="syncorders", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="start all six services; Ctrl-C stops them all").set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="start one service (to run each on its own host)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--host", default=None, help="address to bind (default: SYNCORDERS_BIND_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port to bind; 0 picks a free one")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="walk the order scenario against a running gateway")
    demo.add_argument("--gateway", default=None, help="gateway URL (default: SYNCORDERS_GATEWAY_URL)")
    demo.set_defaults(func=cmd_demo)

    diagram = sub.add_parser("diagram", help="print the flow's sequence diagram as Mermaid")
    diagram.add_argument("--steps", action="store_true", help="the flow's steps as the design words them, instead")
    diagram.set_defaults(func=cmd_diagram)

    recover = sub.add_parser("recover", help="finish orders and letters left behind by failures")
    recover.add_argument("--older-than", type=float, default=None, help="seconds a pending order must be idle")
    recover.add_argument("--letters-since", type=float, default=24.0, help="hours back to check final orders' letters")
    recover.set_defaults(func=cmd_recover)

    keys = sub.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="publish a new signing key").set_defaults(func=cmd_rotate)
    token = sub.add_parser(
        "service-token",
        help="print a service token for calling one internal service as another (valid 5 minutes)",
    )
    token.add_argument("target", choices=INTERNAL_SERVICES, help="the service to call")
    token.add_argument("--caller", required=True, choices=SERVICES, help="the service the token speaks for")
    token.set_defaults(func=cmd_service_token)

    from orchestrator.tools import sizes

    filling = sub.add_parser("prefill", help="write a long history of customers and orders straight into the databases")
    sizes.prefill_arguments(filling)
    filling.set_defaults(func=cmd_prefill)
    growing = sub.add_parser(
        "growth", help="measure the order flow, a list and recovery on a prefilled stack against an empty one"
    )
    sizes.growth_arguments(growing)
    growing.set_defaults(func=cmd_growth)

    from orchestrator.tools.bench import add_arguments

    bench = sub.add_parser("bench", help="benchmark the order flow against the stack's own ceiling")
    add_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return top


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    settings = Settings.from_env()
    if words[:1] == ["serve"] and len(words) > 1 and words[1] in SERVICES:
        # Before the parser is built: building it imports the benchmark's options, and
        # with them most of the system.
        _leave_unloaded(words[1], settings)
    args = parser().parse_args(argv)
    func: Any = args.func
    return int(func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
