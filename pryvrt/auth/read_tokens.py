"""readTokens (API.md §6.4): ``{accessId}-{signature}``, computed for each reader, never stored.

The signature is an HMAC-SHA256, keyed with the server secret, over (user, channel, event,
attachment id, accessId). It proves only that the credential with that accessId was shown
this file; whether the link still works is decided at download time, from the database:
the credential must still exist and still read the event, and the event must not be in
the trash. So deleting a token, ending a session, narrowing a token's permissions or
trashing the event ends every link handed out through it, with nothing to revoke.
A new attachment id (a file deleted and added again under the same name) changes every
signature too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# Never part of a user, channel, event or attachment id, nor of an accessId.
_SEPARATOR = "\n"
_PURPOSE = "pryvrt readToken v1"


def _signature(
    secret: bytes, user_id: str, channel_id: str, event_id: str, attachment_id: str, access_id: str
) -> str:
    message = _SEPARATOR.join((_PURPOSE, user_id, channel_id, event_id, attachment_id, access_id))
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(
    secret: bytes, user_id: str, channel_id: str, event_id: str, attachment_id: str, access_id: str
) -> str:
    """The readToken of one attachment for the credential with ``access_id``."""
    signature = _signature(secret, user_id, channel_id, event_id, attachment_id, access_id)
    return f"{access_id}-{signature}"


def verify(
    secret: bytes, read_token: str, user_id: str, channel_id: str, event_id: str, attachment_id: str
) -> str | None:
    """The accessId the readToken was made for, when its signature is right; else None.

    AccessIds contain no ``-``; the signature may (base64url), so the first one splits."""
    access_id, dash, given_signature = read_token.partition("-")
    if not dash or not access_id or not given_signature:
        return None
    signature = _signature(secret, user_id, channel_id, event_id, attachment_id, access_id)
    if not hmac.compare_digest(given_signature.encode(), signature.encode()):
        return None
    return access_id
