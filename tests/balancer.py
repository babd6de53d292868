"""nginx as the load balancer in front of service replicas, on loopback ports.

Every service is reached through nginx, by the client and by the other services alike,
so a test can prove that nothing depends on which replica answers.
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


def config(folder: Path, listen: Mapping[str, int], upstreams: Mapping[str, list[int]]) -> str:
    blocks = []
    for service, port in listen.items():
        servers = "\n".join(f"        server 127.0.0.1:{backend} max_fails=0;" for backend in upstreams[service])
        blocks.append(f"""
    upstream {service} {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{service};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream off;
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
    def __init__(self, folder: Path, listen: Mapping[str, int], upstreams: Mapping[str, list[int]]) -> None:
        assert NGINX is not None, "nginx is not installed (Debian's package 'nginx')"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "nginx.conf").write_text(config(folder, listen, upstreams))
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
