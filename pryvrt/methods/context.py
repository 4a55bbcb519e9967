"""CallContext: everything one method call sees, built fresh for every call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pryvrt.auth.cache import AccessCache
from pryvrt.notify import Change
from pryvrt.notify.coalesce import Coalescer
from pryvrt.notify.messages import ACCESS_REVOKED, EVENTS_CHANGED

if TYPE_CHECKING:
    from pryvrt.auth.permissions import Access
    from pryvrt.auth.throttle import CredentialThrottle, LoginThrottle, RequestRate
    from pryvrt.config import Settings
    from pryvrt.methods.scope import Scope
    from pryvrt.methods.uploads import Upload
    from pryvrt.notify import Bus
    from pryvrt.storage import Storage
    from pryvrt.storage.channels import Channel
    from pryvrt.storage.events import Event
    from pryvrt.storage.users import User


@dataclass(eq=False)
class Services:
    """The long-lived parts a call may use (one instance per worker)."""

    settings: Settings
    bus: Bus
    throttle: LoginThrottle
    credential_throttle: CredentialThrottle
    # username -> User, for the life of the worker: usernames and user ids never change and
    # users are never deleted; handlers that need fresh profile fields re-read them.
    user_cache: dict[str, User] = field(default_factory=dict)
    # Credentials and channels (off unless the app sets one up with the bus's liveness).
    cache: AccessCache = field(default_factory=lambda: AccessCache(0))
    # The deployment's server secret (pryvrt.auth.secret_key): readTokens, cookie sessions.
    secret_key: bytes = b""
    # App access requests opened per client address (pryvrt.methods.access).
    access_rate: RequestRate | None = None
    # user id -> uploads being received or stored by this worker (pryvrt.methods.uploads).
    uploads_in_progress: dict[str, int] = field(default_factory=dict)
    # seriesChanged throttled per series (pryvrt.notify.coalesce).
    coalescer: Coalescer = field(default_factory=Coalescer)
    _storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        """The database (opened at start-up: ``pryvrt.app.open_storage``)."""
        if self._storage is None:
            raise RuntimeError("the storage is not open: the app has not started")
        return self._storage

    def open(self, storage: Storage) -> None:
        self._storage = storage


@dataclass(eq=False, slots=True)
class CallContext:
    """One call: who calls (user, access), through which transport, and what it changed.

    Transports fill ``username``/``credential``; ``registry.call`` resolves ``user``,
    ``access`` and, for channel methods, ``channel`` and ``scope``. Handlers record changes with ``notify``; they are
    published after the handler returned (its transaction committed).
    """

    services: Services
    transport: str
    request_id: str
    username: str | None = None
    credential: str | None = None
    client_ip: str | None = None
    # Where the caller reached us, e.g. "http://127.0.0.1:3000" (for apiEndpoint).
    base_url: str = ""
    user: User | None = None
    access: Access | None = None
    # The credential was accepted on this connection before (a socket's, checked again):
    # not a guess, so the wrong-credential throttle leaves it alone.
    known_credential: bool = False
    channel: Channel | None = None
    # Channel methods: what ``scope.open_scope`` opened for the handler.
    scope: Scope | None = None
    # Transport-specific input a handler may read (e.g. multipart file parts over HTTP).
    uploads: Any = None
    # The uploads, received whole before the scope opened (``registry.call``).
    files: list[Upload] = field(default_factory=list)
    changes: set[Change] = field(default_factory=set)
    started: float = field(default_factory=time.time)

    @property
    def storage(self) -> Storage:
        return self.services.storage

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def user_id(self) -> str:
        assert self.user is not None, "method called without a user"
        return self.user.id

    def require_user(self) -> User:
        assert self.user is not None, "method called without a user"
        return self.user

    def require_access(self) -> Access:
        assert self.access is not None, "method called without a credential"
        return self.access

    @property
    def writer(self) -> str:
        """Who writes (API.md §12): the public accessId of the call's credential, recorded
        as ``createdBy``/``modifiedBy``; "system" for a call without one."""
        return self.access.access_id if self.access is not None else "system"

    def require_channel(self) -> Channel:
        assert self.channel is not None, "method called without a channel"
        return self.channel

    def require_scope(self) -> Scope:
        assert self.scope is not None, "method declared no channel need"
        return self.scope

    def notify(self, kind: str, channel_id: str | None = None) -> None:
        self.changes.add(Change(kind, channel_id))

    def events_changed(self, channel_id: str, *events: Event) -> None:
        """Events of the channel changed (each given before and after the change): sockets
        hear it when their credential reaches one of them (``notify.routing``)."""
        from pryvrt.methods.visibility import spot

        tree = self.require_scope().tree
        spots = tuple(dict.fromkeys(spot(tree, e) for e in events))
        self.changes.add(Change(EVENTS_CHANGED, channel_id, spots=spots))

    def revoke(self, credential: str) -> None:
        """Sockets using this credential must be disconnected once the write is committed."""
        self.changes.add(Change(ACCESS_REVOKED, credential))

    def child(self) -> CallContext:
        """A context for one call of a batch: same caller, own changes."""
        return CallContext(
            services=self.services,
            transport=self.transport,
            request_id=self.request_id,
            username=self.username,
            credential=self.credential,
            client_ip=self.client_ip,
            base_url=self.base_url,
            user=self.user,
            access=self.access,
            known_credential=self.known_credential,
            uploads=None,
        )
