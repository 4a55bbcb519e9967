"""The deployment's server secret (API.md §6.4): signs readTokens, encrypts the dashboard cookie.

``PRYVRT_SECRET_KEY`` gives it; when unset, 32 random bytes are generated once into
``<data dir>/secret_key`` (mode 0600) and read back at every start, so the workers of one
machine share it. Separate hosts must share it through ``PRYVRT_SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from pryvrt.config import ConfigError, Settings

KEY_FILE = "secret_key"
MIN_LENGTH = 32


def _from_text(text: str, origin: str) -> bytes:
    text = text.strip()
    if len(text) < MIN_LENGTH:
        raise ConfigError(f"{origin} must be at least {MIN_LENGTH} characters")
    # Any text of enough length works; hashing gives a key of fixed size and spread.
    return hashlib.sha256(text.encode()).digest()


def load_secret_key(settings: Settings) -> bytes:
    """The 32-byte secret: from the setting, else from (or created in) the data directory."""
    if settings.secret_key:
        return _from_text(settings.secret_key, "PRYVRT_SECRET_KEY")
    path = Path(settings.data_dir) / KEY_FILE
    try:
        return _from_text(path.read_text(), str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    text = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    # Written whole to a private temporary name, then linked into place: a worker starting
    # at the same moment either links first or reads the complete file of the one that did.
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        text = path.read_text()
    finally:
        tmp.unlink()
    return _from_text(text, str(path))
