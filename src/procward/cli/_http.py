"""A minimal HTTP/1.1 client: one request per connection, JSON or streamed lines.

Written by hand rather than using ``http.client``: that module imports the
``email`` package to parse headers, which alone costs more start-up time than
the whole ``procward status`` budget. The daemon's answers are simple
(Content-Length, or chunked for follow streams), and only those are read.
"""

from __future__ import annotations

import _socket

from procward.errors import ProcwardError

TYPE_CHECKING = False  # mypy reads this as True; `typing` is not imported at run time

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

__all__ = ["HttpError", "Response", "request"]

_MAX_HEADER = 64 * 1024


class HttpError(ProcwardError, OSError):
    """The server's answer was not HTTP we understand."""


class Response:
    """Status, headers (lower-case names) and the body, read as it is needed."""

    def __init__(self, sock: _socket.socket, status: int, headers: dict[str, str],
                 rest: bytes) -> None:
        self.status = status
        self.headers = headers
        self._sock = sock
        self._buf = rest

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        self._buf += data
        return bool(data)

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise HttpError("the connection closed in the middle of an answer")
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise HttpError("the connection closed in the middle of an answer")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    return
                yield self._take(size)
                self._take(2)
        elif "content-length" in self.headers:
            yield self._take(int(self.headers["content-length"]))
        else:
            while True:
                if self._buf:
                    data, self._buf = self._buf, b""
                    yield data
                if not self._fill():
                    if self._buf:
                        yield self._buf
                    return

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self) -> Iterator[bytes]:
        partial = b""
        for chunk in self.chunks():
            data = partial + chunk
            *complete, partial = data.split(b"\n")
            for line in complete:
                yield line + b"\n"
        if partial:
            yield partial


def request(method: str, target: str, *, host: str, port: int, headers: dict[str, str],
            body: bytes | None, context: ssl.SSLContext | None, server_hostname: str,
            timeout: float | None) -> Response:
    sock = _connect(host, port, timeout, context, server_hostname)
    try:
        head = [f"{method} {target} HTTP/1.1", f"Host: {server_hostname}:{port}",
                "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise HttpError("the server closed the connection without answering")
            buf += data
            if len(buf) > _MAX_HEADER:
                raise HttpError("the answer's headers are too long")
        raw, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP answer: {status_line[:80]!r}")
        found: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
        return Response(sock, int(parts[1]), found, rest)
    except BaseException:
        sock.close()
        raise


def _connect(host: str, port: int, timeout: float | None, context: ssl.SSLContext | None,
             server_hostname: str) -> _socket.socket:
    """A connected socket (TLS when ``context`` is given).

    Plain HTTP uses the C module ``_socket`` directly: ``socket`` wraps its
    constants in enums at import, which costs ``procward status`` some 7 ms.
    TLS needs ``ssl``, which imports ``socket`` anyway.
    """
    if context is not None:
        import socket

        return context.wrap_socket(socket.create_connection((host, port), timeout=timeout),
                                   server_hostname=server_hostname)
    # socket.create_connection, without the module: each address in turn.
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0,
                                                                _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error or OSError(f"no address for {host}")
