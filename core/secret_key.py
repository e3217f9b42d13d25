"""The server's secret key, from settings or generated once under the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.settings import Settings


def secret_key(settings: Settings) -> bytes:
    if settings.server.secret_key:
        return settings.server.secret_key.encode()
    path = Path(settings.data_dir) / "secret_key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48).encode()
        # Created with owner-only permissions before the key is written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key
