"""Where the configuration file is looked for, and the one platform-dependent default.

Kept apart from the loader so that finding a file never imports pydantic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CONFIG_NAME", "default_config_path", "find_config_path"]

CONFIG_NAME = "procward.toml"
def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the configuration lives when nothing else names it: the platform's system folder."""
    environ = os.environ if environ is None else environ
    if sys.platform == "win32":
        program_data = environ.get("ProgramData") or environ.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(program_data) / "procward" / CONFIG_NAME
    return Path("/etc/procward") / CONFIG_NAME


def find_config_path(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The configuration file to use: ``explicit``, else ``$PROCWARD_CONFIG``, else
    ``./procward.toml`` if it exists, else ``default_config_path()``.

    The path is returned as given (possibly relative), so messages show it the
    way the user wrote it; nothing but ``./procward.toml`` is checked for existence.
    """
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("PROCWARD_CONFIG"):
        return Path(environ["PROCWARD_CONFIG"])
    local = Path(CONFIG_NAME)
    if local.is_file():
        return local
    return default_config_path(environ)
