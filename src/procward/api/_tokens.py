"""API tokens: created, stored hashed, checked in constant time.

Tokens live in ``<state_dir>/tokens.json`` as SHA-256 digests with a name and
a role; the plain token is shown once, when made, and never stored — except
the local admin token, which is written to ``<state_dir>/admin.token``
readable only by its owner so the CLI on the same machine finds it by itself.

A plain hash, not a slow password hash: tokens are 256 random bits, so there
is nothing for a slow hash to protect against guessing, and every request
pays for the check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from procward._os import PLATFORM, Platform

__all__ = [
    "ADMIN_TOKEN_FILE",
    "LOCAL_ADMIN",
    "TOKENS_FILE",
    "Role",
    "TokenInfo",
    "TokenStore",
]

Role = Literal["read", "admin"]
TOKENS_FILE = "tokens.json"
ADMIN_TOKEN_FILE = "admin.token"
LOCAL_ADMIN = "local-admin"
_PREFIX = "pw_"


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: Role

    def allows(self, method: str) -> bool:
        # read: look only. admin: everything.
        return self.role == "admin" or method in ("GET", "HEAD")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenStore:
    """The tokens of one state dir. Re-reads the file when it changes on disk."""

    def __init__(self, state_dir: Path, platform: Platform = PLATFORM) -> None:
        self.state_dir = state_dir
        self.path = state_dir / TOKENS_FILE
        self.admin_path = state_dir / ADMIN_TOKEN_FILE
        self._platform = platform
        self._entries: list[dict[str, str]] = []
        self._stamp: tuple[int, int] | None = None

    def ensure_local_admin(self) -> None:
        """Create the local admin token on first start (or if its file was deleted)."""
        self._refresh()
        if self.admin_path.exists() and any(e["name"] == LOCAL_ADMIN for e in self._entries):
            return
        token = _PREFIX + secrets.token_urlsafe(32)
        self._platform.write_private(self.admin_path, (token + "\n").encode())
        self._save([e for e in self._entries if e["name"] != LOCAL_ADMIN]
                   + [self._entry(LOCAL_ADMIN, "admin", token)])

    def new(self, name: str, role: Role) -> str:
        """Make a token called ``name`` (replacing one of that name); return it, once."""
        if role not in ("read", "admin"):
            raise ValueError(f"role must be read or admin, not {role!r}")
        if not name or name == LOCAL_ADMIN:
            raise ValueError(f"token name {name!r} is reserved or empty")
        self._refresh()
        token = _PREFIX + secrets.token_urlsafe(32)
        self._save([e for e in self._entries if e["name"] != name]
                   + [self._entry(name, role, token)])
        return token

    def revoke(self, name: str) -> bool:
        self._refresh()
        kept = [e for e in self._entries if e["name"] != name]
        if len(kept) == len(self._entries):
            return False
        self._save(kept)
        return True

    def names(self) -> list[tuple[str, str]]:
        self._refresh()
        return [(e["name"], e["role"]) for e in self._entries]

    def check(self, token: str) -> TokenInfo | None:
        """The token's name and role, or None. Every stored digest is compared, in
        constant time, so neither timing nor position tells how close a guess was."""
        self._refresh()
        presented = _digest(token)
        found: dict[str, str] | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry["sha256"]):
                found = entry
        if found is None:
            return None
        role = found["role"]
        return TokenInfo(found["name"], "admin" if role == "admin" else "read")

    # -- the file ------------------------------------------------------------

    @staticmethod
    def _entry(name: str, role: str, token: str) -> dict[str, str]:
        return {"name": name, "role": role, "sha256": _digest(token),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._entries, self._stamp = [], None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = [e for e in data.get("tokens", [])
                       if isinstance(e, dict) and {"name", "role", "sha256"} <= e.keys()]
        except (OSError, ValueError, AttributeError):
            # A torn or hand-broken file locks everyone out rather than letting anyone in.
            entries = []
        self._entries, self._stamp = entries, stamp

    def _save(self, entries: list[dict[str, str]]) -> None:
        body = json.dumps({"tokens": entries}, indent=2) + "\n"
        self._platform.write_private(self.path, body.encode())
        self._stamp = None
        self._refresh()
