"""The shipped nginx configuration, ``deploy/nginx/gateway.conf``, in front of a test's
gateway. Only addresses, ports and paths are changed; the main configuration around it
sets what the file's header asks of ``/etc/nginx/nginx.conf``."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.balancer import NGINX, Balancer, _await_port, free_port

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "gateway.conf"


def gateway_conf(folder: Path, listen: int, gateway: int) -> str:
    """The shipped file, listening on ``listen`` and passing to the gateway on ``gateway``."""
    text = SHIPPED.read_text()
    for shipped, local in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{gateway};"),
        ("listen 80 default_server;", f"listen 127.0.0.1:{listen} default_server;"),
        ("access_log /var/log/nginx/", f"access_log {folder}/"),
    ):
        assert text.count(shipped) == 1, f"{SHIPPED} no longer has exactly one {shipped!r}"
        text = text.replace(shipped, local)
    return text


def main_conf(folder: Path) -> str:
    """Debian's nginx.conf as far as it matters here, with the worker limits raised as
    the shipped file's header says."""
    return f"""
worker_processes auto;
worker_rlimit_nofile 8192;
error_log {folder}/error.log warn;
pid {folder}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/gateway.conf;
}}
"""


class Proxy(Balancer):
    """nginx with the shipped configuration, on a free loopback port; stopped as the
    balancer is."""

    def __init__(self, folder: Path, gateway_port: int) -> None:
        assert NGINX is not None, "nginx is not installed (Debian's package 'nginx')"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "gateway.conf").write_text(gateway_conf(folder, self.port, gateway_port))
        (folder / "nginx.conf").write_text(main_conf(folder))
        self.process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _await_port(self.port, self.process)

    def access_log(self) -> str:
        path = self.folder / "syncorders-access.log"
        return path.read_text() if path.exists() else ""
