"""nginx as the load balancer in front of service replicas, on loopback ports.

Every service is reached through nginx, by the client and by the other services alike,
so a test can prove that nothing depends on which replica answers, and that replicas
restarted one at a time cost no request. nginx here has no health checks (as a
Kubernetes Service has none of its own): a replica that refuses connections is skipped
request by request.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# After an error, nginx sends a GET or PUT on to the other replica but not a POST that
# may have been received: a client's POST /orders without Idempotency-Key run twice is
# two orders. The POSTs Orders, Billing and Notifications take are all keyed (an order
# per user and key, a payment per order, a letter per order and status, a deposit per
# key), so a second delivery finishes the first: for them nginx may retry any request.
# Auth keeps the default: each login attempt counts towards the login throttle.
KEYED = frozenset({"orders", "billing", "notifications"})
# Shorter than the services' shutdown delay: nginx closes a kept-alive connection that
# has been idle this long itself, so none is left for a draining replica to close under
# it when its listener closes.
KEEPALIVE_TIMEOUT = 0.5


def config(
    folder: Path,
    listen: Mapping[str, int],
    upstreams: Mapping[str, list[int]],
    keepalive_timeout: float = KEEPALIVE_TIMEOUT,
) -> str:
    blocks = []
    for service, port in listen.items():
        servers = "\n".join(f"        server 127.0.0.1:{backend} max_fails=0;" for backend in upstreams[service])
        # A refused or failed connection, or no answer in time, goes to the next replica.
        next_upstream = "error timeout" + (" non_idempotent" if service in KEYED else "")
        blocks.append(f"""
    upstream {service} {{
{servers}
        keepalive 32;
        keepalive_timeout {int(keepalive_timeout * 1000)}ms;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{service};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream {next_upstream};
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}""")
    return f"""
worker_processes 1;
error_log {folder}/error.log warn;
pid {folder}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    client_max_body_size 1m;
{"".join(blocks)}
}}
"""


class Balancer:
    def __init__(
        self,
        folder: Path,
        listen: Mapping[str, int],
        upstreams: Mapping[str, list[int]],
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        assert NGINX is not None, "nginx is not installed (Debian's package 'nginx')"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        (folder / "nginx.conf").write_text(config(folder, listen, upstreams, keepalive_timeout))
        self.process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in listen.values():
            _await_port(port, self.process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _await_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.stderr.read().decode() if process.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {port}")
