"""Where procward's files live on this system when nothing else names them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_config_path"]


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The system-wide configuration: ``/etc/procward/procward.toml``, or
    ``%ProgramData%\\procward\\procward.toml`` on Windows."""
    if sys.platform == "win32":
        env = os.environ if environ is None else environ
        program_data = env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(program_data) / "procward" / "procward.toml"
    return Path("/etc/procward/procward.toml")
