"""The validated-configuration cache: a start whose configuration has not changed skips validation.

The daemon validates its file in a child Python process that imports pydantic;
for 500 services that child is about 0.4 s, most of the daemon's own start.
Its answer is kept in the user's cache folder, one entry per file path and
profile, and used again only while the file's bytes (SHA-256), procward's
version and configuration code, the installed pydantic and the Python
version are what they were when it was kept. A load that read an environment variable (``${VAR}``)
or an ``env_file`` is never kept: its answer can change while the file does
not, and it may hold secrets that have no business on disk.

An entry holds the commands the daemon will run, so one that another user
owns or could have written is ignored. Anything unreadable is a miss: this
is only a cache, and validation is always the fallback.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["ConfigCache"]

# Entries kept: enough for a few configurations and profiles per user.
KEEP = 16


class ConfigCache:
    """The cache entry for one configuration file and profile."""

    def __init__(self, folder: str, path: str, profile: str | None) -> None:
        self.path = path
        self.profile = profile
        name = hashlib.sha256(f"{path}\0{profile or ''}".encode()).hexdigest()[:40]
        self.folder = folder
        self.entry = os.path.join(folder, name + ".json")
        self._code = _code_stamp()

    @classmethod
    def open(cls, path: str | os.PathLike[str], profile: str | None) -> ConfigCache | None:
        """The entry for ``path``, or None when this user has no cache folder."""
        from procward.config._paths import user_cache_dir

        base = user_cache_dir()
        if base is None:
            return None
        return cls(os.path.join(base, "configs"), os.path.abspath(path), profile)

    def _header(self, sha256: str) -> dict[str, Any]:
        return {"path": self.path, "profile": self.profile, "sha256": sha256,
                "code": self._code}

    def lookup(self) -> dict[str, Any] | None:
        """The validated configuration's data, if kept for the file as it is now."""
        try:
            with open(self.entry, "rb") as f:
                if not _ours(os.fstat(f.fileno())):
                    return None
                header, _, answer = f.read().partition(b"\n")
            with open(self.path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            if json.loads(header) != self._header(digest):
                return None
            data = json.loads(answer)["config"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def store(self, sha256: str, answer: str) -> None:
        """Keep ``answer`` (the validating child's JSON) for the file whose bytes had ``sha256``."""
        tmp = f"{self.entry}.{os.getpid()}.tmp"
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self._header(sha256)) + "\n" + answer)
            os.replace(tmp, self.entry)
            self._prune()
        except OSError:
            # A read-only or full home costs only the speed-up.
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _prune(self) -> None:
        # The entry just written is never a candidate: file times are coarse
        # (a clock tick), so it can tie with older ones.
        with os.scandir(self.folder) as it:
            others = sorted((e.stat().st_mtime_ns, e.path) for e in it
                            if e.name.endswith(".json") and e.path != self.entry)
        for _, path in others[: max(0, len(others) - (KEEP - 1))]:
            os.unlink(path)


def _ours(st: os.stat_result) -> bool:
    if not hasattr(os, "geteuid"):
        return True  # Windows: the folder is in the user's own profile
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _code_stamp() -> list[Any]:
    """What the validated answer depends on besides the file: procward's version, the
    configuration package's sources and pydantic's (by size and modification time),
    and Python's (whose ``re`` judges the alert patterns)."""
    import importlib.util
    import sys

    from procward import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    stamp: list[Any] = [__version__, sys.version]
    folders = [here]
    spec = importlib.util.find_spec("pydantic")
    if spec is not None and spec.origin:
        folders.append(os.path.dirname(spec.origin))
    for folder in folders:
        with os.scandir(folder) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.endswith(".py"):
                    st = e.stat()
                    stamp.append([e.name, st.st_size, st.st_mtime_ns])
    return stamp
