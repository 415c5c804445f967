"""Where the configuration file is looked for, and the platform-dependent defaults.

Kept apart from the loader so that finding a file never imports pydantic, and
free of ``pathlib`` and ``typing`` at import: the CLI's client commands
(``procward status``) use it on their way to one request, and those two
modules would cost them a tenth of their start-up time.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # mypy reads this as True

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["CONFIG_NAME", "config_path_text", "default_config_path", "find_config_path",
           "user_cache_dir"]

CONFIG_NAME = "procward.toml"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the configuration lives when nothing else names it: the platform's system folder."""
    from pathlib import Path

    return Path(_default_text(os.environ if environ is None else environ))


def _default_text(environ: Mapping[str, str]) -> str:
    if sys.platform == "win32":
        program_data = environ.get("ProgramData") or environ.get("PROGRAMDATA") or r"C:\ProgramData"
        return os.path.join(program_data, "procward", CONFIG_NAME)
    return "/etc/procward/" + CONFIG_NAME


def config_path_text(explicit: str | os.PathLike[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> str:
    """The configuration file to use: ``explicit``, else ``$PROCWARD_CONFIG``, else
    ``./procward.toml`` if it exists, else the platform default.

    The path is returned as given (possibly relative), so messages show it the
    way the user wrote it; nothing but ``./procward.toml`` is checked for existence.
    """
    environ = os.environ if environ is None else environ
    if explicit:
        return os.fspath(explicit)
    if environ.get("PROCWARD_CONFIG"):
        return environ["PROCWARD_CONFIG"]
    if os.path.isfile(CONFIG_NAME):
        return CONFIG_NAME
    return _default_text(environ)


def find_config_path(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """``config_path_text`` as a ``Path``."""
    from pathlib import Path

    return Path(config_path_text(explicit, environ))


def user_cache_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """This user's cache folder for procward (``$XDG_CACHE_HOME/procward``,
    ``~/.cache/procward``; ``%LOCALAPPDATA%\\procward`` on Windows), or None."""
    environ = os.environ if environ is None else environ
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA")
    else:
        base = environ.get("XDG_CACHE_HOME") or None
        if base is None:
            home = os.path.expanduser("~")
            base = None if home == "~" else os.path.join(home, ".cache")
        if base is not None and not _owned_by_us(base):
            # sudo may keep the invoking user's HOME or XDG_CACHE_HOME: root's
            # cache written there would leave root-owned folders in another
            # user's home (~/.cache itself, if it did not exist yet), which that
            # user could then not write. The effective user's own home instead.
            base = _own_home_cache()
    return os.path.join(base, "procward") if base else None


def _owned_by_us(path: str) -> bool:
    """Whether ``path``, or the nearest folder above it that exists, is the effective user's."""
    if sys.platform == "win32":
        return True  # not asked there (the cache is in the user's profile); for mypy
    while True:
        try:
            owner: int = os.stat(path).st_uid
            return owner == os.geteuid()
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent
        except OSError:
            return False


def _own_home_cache() -> str | None:
    if sys.platform == "win32":
        return None
    import pwd

    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None
    cache = os.path.join(home, ".cache")
    return cache if home and _owned_by_us(cache) else None
