"""Is a listening address free? Checked before a server starts, so a busy port is a one-line error (exit 2)
instead of a "serving…" line followed by the server's raw ``[Errno 98]``."""

from __future__ import annotations

import errno
import socket

from mobile_ml.errors import UserError


class PortError(UserError):
    """The server cannot listen where it was asked to (exit 2)."""


def check_free(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go; raise ``PortError`` naming the address if that fails."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 0 <= port <= 65535:
        raise PortError(
            f"cannot serve on {where}: a port is 0–65535", hint="pick another with --port, e.g. --port 8000"
        )
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise PortError(
            f"cannot serve on {where}: unknown host ({e.strerror})",
            hint="pass --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every interface)",
        ) from None
    with socket.socket(family, kind, proto) as s:
        # As uvicorn binds: a port whose old connections linger in TIME_WAIT counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise _explain(e, where, host, port) from None


def _explain(e: OSError, where: str, host: str, port: int) -> PortError:
    if e.errno == errno.EADDRINUSE:
        return PortError(
            f"{where} is already in use by another process",
            hint=f"stop that process, or serve on another port with --port (e.g. --port {port + 1 if port else 8000})",
        )
    if e.errno == errno.EACCES:
        return PortError(
            f"not allowed to listen on {where}", hint="ports below 1024 need privileges: pick another with --port"
        )
    if e.errno == errno.EADDRNOTAVAIL:
        return PortError(f"{host} is not an address of this machine", hint="pass --host 127.0.0.1 or --host 0.0.0.0")
    return PortError(f"cannot listen on {where}: {e.strerror}", hint="pick another --port or --host")


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket ``serve`` hands to its worker(s), bound once; ``PortError`` as ``check_free``."""
    check_free(host, port)  # the same one-line errors for a bad port or host
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise _explain(e, f"[{host}]:{port}" if ":" in host else f"{host}:{port}", host, port) from None
    sock.set_inheritable(True)
    return sock
