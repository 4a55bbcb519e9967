"""Throttling of guesses: failed logins (per username and per client address) and wrong
credentials (per client address) answer 429 TOO_MANY_REQUESTS for a while.

Each key counts its failures in a window that starts at its first failure and lasts
``block_seconds``; at ``limit`` failures the key is refused until the window ends. An
attempt is counted *before* it is checked (reserved), so concurrent guesses cannot all
slip in before the first failure is recorded, and taken back only when it succeeded.
A success never clears another key: a login clears its own username's failures, never
the address's, so guesses spread over accounts cannot be laundered by logging in to one.

Counts live in the worker's memory: with N workers, a client may get up to N times the
limit before every worker refuses it. Client addresses are counted per IPv4 address and
per IPv6 /64 (one host usually holds a whole /64).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pryvrt import errors

# Keys kept at most (memory under a spray of addresses); expired ones are dropped first.
MAX_KEYS = 100_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in trusted)


def is_trusted(ip: str | None, trusted: tuple[str, ...]) -> bool:
    """Whether ``ip`` is one of the trusted proxies (PRYVRT_TRUSTED_PROXIES)."""
    if not ip or not trusted:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in _networks(trusted))


def request_address(request: Any, trusted: tuple[str, ...]) -> str | None:
    """The client address of an aiohttp request (``None`` for no request)."""
    if request is None:
        return None
    peer: str | None = request.remote
    if not trusted:
        return peer
    return client_address(peer, request.headers.get("X-Forwarded-For"), trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]
) -> str | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the last
    address of ``X-Forwarded-For`` that is not a trusted proxy (the entries before it are
    whatever the client sent, so they are never believed)."""
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


@functools.lru_cache(maxsize=4096)  # asked at every authenticated call
def address_key(ip: str | None) -> str:
    """The throttling key of a client address: the IPv4 address, or the IPv6 /64."""
    if not ip:
        return "ip:?"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"ip:{ip}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.ip_network((address, 64), strict=False)}"
    return f"ip:{address}"


class FailureWindows:
    """Failures per key, in windows of ``block_seconds`` from each key's first failure, and
    the attempts in progress (pending) per key."""

    def __init__(self, block_seconds: float, max_keys: int = MAX_KEYS) -> None:
        self.block_seconds = block_seconds
        self.max_keys = max_keys
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (failures, window start)
        self._pending: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    @property
    def counting(self) -> bool:
        """Whether some key has failures in its window (or had: expired windows are
        dropped when their key is asked about)."""
        return bool(self._windows)

    def _failures(self, key: str, now: float) -> tuple[int, float]:
        count, since = self._windows.get(key, (0, now))
        if now - since >= self.block_seconds:
            self._windows.pop(key, None)
            return 0, now
        return count, since

    def retry_after(self, key: str, limit: int) -> float:
        """Seconds before ``key`` may try again; 0 when it is not refused."""
        now = time.monotonic()
        count, since = self._failures(key, now)
        return self.block_seconds - (now - since) if count >= limit else 0.0

    async def reserve(self, limits: Sequence[tuple[str, int]]) -> float:
        """Count one attempt in progress on every key and answer 0; or answer the seconds
        to wait when a key is refused. While the attempts in progress could still reach a
        key's limit, wait for them to end: never more than ``limit`` failures are checked
        in a window, and concurrent good attempts are delayed, not refused."""
        while True:
            wait = max(self.retry_after(key, limit) for key, limit in limits)
            if wait > 0:
                return wait
            now = time.monotonic()
            full = next(
                (
                    key
                    for key, limit in limits
                    if self._failures(key, now)[0] + self._pending.get(key, 0) >= limit
                ),
                None,
            )
            if full is None:
                break
            waiter = asyncio.get_running_loop().create_future()
            waiters = self._waiters.setdefault(full, [])
            waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        waiters.remove(waiter)
        for key, _ in limits:
            self._pending[key] = self._pending.get(key, 0) + 1
        return 0.0

    def end(self, keys: Iterable[str], *, failed: bool) -> None:
        """An attempt reserved on ``keys`` ended (a failure is counted); wake the waiters."""
        now = time.monotonic()
        for key in keys:
            left = self._pending.get(key, 0) - 1
            if left > 0:
                self._pending[key] = left
            else:
                self._pending.pop(key, None)
            if failed:
                count, since = self._failures(key, now)
                self._windows[key] = (count + 1, since)
            for waiter in self._waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(None)
        if len(self._windows) > self.max_keys:
            self._trim(now)

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    def _trim(self, now: float) -> None:
        for key, (_, since) in list(self._windows.items()):
            if now - since >= self.block_seconds:
                del self._windows[key]
        # Still full: drop the oldest windows (the first to end anyway).
        for key in list(self._windows)[: len(self._windows) - self.max_keys]:
            del self._windows[key]


def too_many(what: str, wait: float) -> errors.ApiError:
    """429 TOO_MANY_REQUESTS with ``Retry-After`` (and ``data.retryAfter``, whole seconds)."""
    seconds = max(1, math.ceil(wait))
    return errors.TooManyRequests(
        f"too many {what}; try again in {seconds} s",
        {"retryAfter": seconds},
        headers={"Retry-After": str(seconds)},
    )


class Attempt:
    """One attempt in progress, used as ``async with``: it counts as a failure unless
    ``succeeded()`` was called, or the block raised one of ``unchecked`` (nothing was
    checked: the database failed first)."""

    def __init__(
        self,
        windows: FailureWindows,
        limits: tuple[tuple[str, int], ...],
        what: str,
        *,
        clears: str | None = None,
        unchecked: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._windows = windows
        self._limits = limits
        self._what = what
        self._clears = clears
        self._unchecked = unchecked
        self._succeeded = False

    async def __aenter__(self) -> Attempt:
        wait = await self._windows.reserve(self._limits)
        if wait > 0:
            raise too_many(self._what, wait)
        return self

    def succeeded(self) -> None:
        self._succeeded = True

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        unchecked = kind is not None and issubclass(kind, self._unchecked)
        failed = not self._succeeded and not unchecked
        self._windows.end([key for key, _ in self._limits], failed=failed)
        if self._succeeded and self._clears is not None:
            self._windows.clear(self._clears)


class LoginThrottle:
    """Failed logins: at most ``per_user`` per username and ``per_ip`` per client address
    in ``block_seconds``. The username limit comes first and is low (a typing user blocks
    only that account); the address limit is much higher and catches guesses spread over
    many accounts. A success clears its own username's failures, never the address's."""

    def __init__(self, per_user: int, per_ip: int, block_seconds: float) -> None:
        self.per_user = per_user
        self.per_ip = per_ip
        self.windows = FailureWindows(block_seconds)

    def attempt(
        self, user_id: str, ip: str | None, unchecked: tuple[type[BaseException], ...] = ()
    ) -> Attempt:
        """``async with`` it around the password check (429 when refused)."""
        user_key = f"user:{user_id}"
        limits = ((user_key, self.per_user), (address_key(ip), self.per_ip))
        return Attempt(self.windows, limits, "failed logins", clears=user_key, unchecked=unchecked)


class CredentialThrottle:
    """Wrong credentials (401 INVALID_TOKEN): at most ``per_ip`` per client address in
    ``block_seconds``. While an address is refused, every credential it presents is
    refused too, valid ones included: answering those would tell a guesser it found one."""

    def __init__(self, per_ip: int, block_seconds: float) -> None:
        self.per_ip = per_ip
        self.windows = FailureWindows(block_seconds)

    def check(self, ip: str | None) -> None:
        """Raise 429 while the address is refused (no attempt is counted)."""
        if not self.windows.counting:
            return  # no failure anywhere in the window: nobody is refused
        wait = self.windows.retry_after(address_key(ip), self.per_ip)
        if wait > 0:
            raise too_many("wrong credentials", wait)

    def attempt(self, ip: str | None, unchecked: tuple[type[BaseException], ...] = ()) -> Attempt:
        """``async with`` it around the credential check (429 when refused)."""
        limits = ((address_key(ip), self.per_ip),)
        return Attempt(self.windows, limits, "wrong credentials", unchecked=unchecked)


class RequestRate:
    """At most ``limit`` requests per client address per ``window`` seconds (app access
    requests: each one stores a row until it expires). Counted in the worker's memory."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, window start)

    def check(self, ip: str | None, what: str) -> None:
        """Count one request of ``ip``, or refuse it (429) when its window is full."""
        now = time.monotonic()
        key = address_key(ip)
        count, start = self._windows.get(key, (0, now))
        if now - start >= self.window:
            count, start = 0, now
        if count >= self.limit:
            raise too_many(what, start + self.window - now)
        if key not in self._windows and len(self._windows) >= self.max_keys:
            self._windows = {
                k: v for k, v in self._windows.items() if now - v[1] < self.window
            } or {}
            if len(self._windows) >= self.max_keys:
                self._windows.clear()
        self._windows[key] = (count + 1, start)
