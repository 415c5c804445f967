"""Where procward's files live on this system when nothing else names them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_config_path", "running_dir"]


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The system-wide configuration: ``/etc/procward/procward.toml``, or
    ``%ProgramData%\\procward\\procward.toml`` on Windows."""
    if sys.platform == "win32":
        env = os.environ if environ is None else environ
        program_data = env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(program_data) / "procward" / "procward.toml"
    return Path("/etc/procward/procward.toml")


def running_dir(environ: Mapping[str, str] | None = None) -> Path:
    """This user's list of the daemons it runs (one small file each, removed at exit):
    ``$XDG_RUNTIME_DIR/procward/running`` (else ``$XDG_STATE_HOME``, else
    ``~/.local/state``), or ``%LOCALAPPDATA%\\procward\\running`` on Windows."""
    env = os.environ if environ is None else environ
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return Path(base) / "procward" / "running"
    base = (env.get("XDG_RUNTIME_DIR") or env.get("XDG_STATE_HOME")
            or os.path.join(os.path.expanduser("~"), ".local", "state"))
    return Path(base) / "procward" / "running"
