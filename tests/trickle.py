"""Slow clients: many connections that each send a request a byte at a time, all driven
by one thread with non-blocking sockets, noting when the server closed each one and
what it answered."""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time
from types import TracebackType


def raise_open_files(needed: int) -> None:
    """Let this process (and the servers it starts) hold ``needed`` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, f"the open-file limit {hard} is below {needed}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Tricklers:
    """``count`` connections to ``port``; each sends ``head`` at once, then ``drip`` one
    byte per ``interval`` seconds. ``drip=b""`` leaves them open and silent."""

    def __init__(self, port: int, count: int, drip: bytes, head: bytes = b"", interval: float = 1.0) -> None:
        self.port, self.count, self.drip, self.head, self.interval = port, count, drip, head, interval
        self.sockets: list[socket.socket] = []
        self.opened_at: list[float] = []
        self.closed_at: list[float | None] = [None] * count
        self.received: list[bytes] = [b""] * count
        self.sent = 0  # bytes of ``drip`` sent so far on every open connection
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="tricklers", daemon=True)

    def __enter__(self) -> Tricklers:
        raise_open_files(self.count + 1024)
        for index in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            if self.head:
                sock.sendall(self.head)
            sock.setblocking(False)
            self.sockets.append(sock)
            self.opened_at.append(time.monotonic())
            self.selector.register(sock, selectors.EVENT_READ, index)
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.selector.close()
        for sock in self.sockets:
            sock.close()

    def _run(self) -> None:
        next_drip = time.monotonic() + self.interval
        while not self.stopping.is_set():
            for key, _events in self.selector.select(timeout=max(0.0, min(next_drip - time.monotonic(), 0.2))):
                self._read(key.data)
            if time.monotonic() >= next_drip and self.sent < len(self.drip):
                byte = self.drip[self.sent : self.sent + 1]
                for index, sock in enumerate(self.sockets):
                    if self.closed_at[index] is None:
                        try:
                            sock.send(byte)
                        except BlockingIOError:
                            pass
                        except OSError:
                            self._closed(index)
                self.sent += 1
                next_drip += self.interval

    def _read(self, index: int) -> None:
        try:
            data = self.sockets[index].recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.received[index] += data
        else:
            self._closed(index)

    def _closed(self, index: int) -> None:
        with self.changed:
            self.closed_at[index] = time.monotonic()
            self.changed.notify_all()
        self.selector.unregister(self.sockets[index])

    def open_count(self) -> int:
        with self.changed:
            return sum(1 for closed in self.closed_at if closed is None)

    def wait_sent(self, count: int, timeout: float) -> None:
        """Until ``count`` bytes of the drip went out on every connection."""
        deadline = time.monotonic() + timeout
        while self.sent < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.sent >= count, f"only {self.sent} bytes dripped in {timeout} s"

    def wait_closed(self, timeout: float) -> bool:
        """Until the server closed every connection; False if it did not in time."""
        with self.changed:
            return self.changed.wait_for(lambda: None not in self.closed_at, timeout=timeout)

    def lifetimes(self) -> list[float]:
        """Seconds from connecting to being closed by the server, for those it closed."""
        with self.changed:
            return [
                closed - opened
                for opened, closed in zip(self.opened_at, self.closed_at, strict=True)
                if closed is not None
            ]
