"""A TCP proxy the tests control, to take a server away from a client and give it back.

``TcpProxy(target)`` listens on a free loopback port and forwards every connection to
``target`` (PostgreSQL at 127.0.0.1:5432 by default). :meth:`TcpProxy.cut` closes every
forwarded connection and refuses new ones (each is accepted and closed at once, as a server
that went away would answer), :meth:`TcpProxy.restore` forwards again. The port stays the
same throughout, so a client configured with it needs no change.

One thread runs everything (``selectors``): commands from other threads are queued and
acknowledged, so when :meth:`cut` returns, no byte crosses any more.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
from types import TracebackType

DEFAULT_TARGET = ("127.0.0.1", 5432)
_CHUNK = 65536


class TcpProxy:
    def __init__(self, target: tuple[str, int] = DEFAULT_TARGET, host: str = "127.0.0.1"):
        self.target = target
        self._listener = socket.create_server((host, 0))
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._commands: queue.Queue[tuple[str, threading.Event]] = queue.Queue()
        self._refusing = False
        self._stopped = False
        #: Connections forwarded and refused so far (for a script's report).
        self.forwarded = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        """Close every forwarded connection and refuse new ones, until :meth:`restore`."""
        self._command("cut")

    def restore(self) -> None:
        self._command("restore")

    def close(self) -> None:
        if self._thread.is_alive():
            self._command("stop")
            self._thread.join(10)
        self._close_all()
        self._selector.close()
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the loop ---------------------------------------------------------------------------

    def _command(self, name: str) -> None:
        done = threading.Event()
        self._commands.put((name, done))
        if not done.wait(10):
            raise RuntimeError(f"the proxy did not {name} within 10 s")

    def _loop(self) -> None:
        while not self._stopped:
            for key, _mask in self._selector.select(timeout=0.02):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._pump(sock)
            while not self._commands.empty():
                name, done = self._commands.get()
                if name in ("cut", "stop"):
                    self._refusing = True
                    self._close_all()
                    self._stopped = name == "stop"
                elif name == "restore":
                    self._refusing = False
                done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._refusing:
            self.refused += 1
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self.refused += 1
            client.close()
            return
        client.setblocking(True)
        client.settimeout(10)
        upstream.settimeout(10)
        self._peers[client] = upstream
        self._peers[upstream] = client
        self._selector.register(client, selectors.EVENT_READ, "client")
        self._selector.register(upstream, selectors.EVENT_READ, "upstream")
        self.forwarded += 1

    def _pump(self, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(_CHUNK)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()

    def _close_all(self) -> None:
        for sock in list(self._peers):
            self._drop(sock)
