"""Where a running server says where it listens: ``<data dir>/server.json``.

``pryvrt serve`` writes it once its port accepts connections and removes it when it stops,
so that the other commands run on the same data directory (``pryvrt user create``,
``pryvrt doctor``) print the server's real address, not the default port. A file left by a
process that died is ignored (its pid is gone).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FILE_NAME = "server.json"


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int


def local_url(host: str, port: int) -> str:
    """The address to open for a server bound to ``host``: a wildcard address is reached on
    the loopback; an IPv6 address needs brackets."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def bound_port(addresses: list[Any], default: int) -> int:
    """The port a site really listens on (``--port 0`` lets the system choose one)."""
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default


def announce(data_dir: Path, url: str) -> None:
    """Record this process as the server of ``data_dir`` (best effort: a read-only data
    directory only costs the other commands the address)."""
    with contextlib.suppress(OSError):
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / FILE_NAME
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps({"url": url, "pid": os.getpid()}))
        temporary.replace(path)


def withdraw(data_dir: Path) -> None:
    """Remove the record if it is this process's."""
    found = read(data_dir, check_alive=False)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(OSError):
            (data_dir / FILE_NAME).unlink()


def read(data_dir: Path, *, check_alive: bool = True) -> RunningServer | None:
    """The server running on ``data_dir``, if one says so and its process still exists."""
    try:
        raw = orjson.loads((data_dir / FILE_NAME).read_bytes())
        found = RunningServer(str(raw["url"]), int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive:
        try:
            os.kill(found.pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # another user's process: it exists
    return found
