"""Whether what a configuration names is there: each service's working folder and program.

``procward check``, ``wrap`` and ``service install`` ask this (``load(...,
present=True)``), so a typo in a program or a folder is found where it is
written, not at the first start. The daemon does not: a program installed
after the file was written is a start failure of that one service, not a
reason to refuse the whole file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from procward.config._lines import KeyPath
    from procward.config._models import Config

__all__ = ["absent"]


def absent(config: Config, environ: dict[str, str] | None = None) -> list[tuple[KeyPath, str]]:
    """What is missing, as (key, message): a working folder that is not there, a program
    not found as the service would start it. ``environ`` stands for ``os.environ``
    (its PATH is searched unless the service sets its own)."""
    environ = dict(os.environ) if environ is None else environ
    found: list[tuple[KeyPath, str]] = []
    for name, service in config.services.items():
        cwd = service.cwd
        if cwd is not None and not cwd.is_dir():
            what = "is not a folder" if cwd.exists() else "does not exist"
            found.append((("services", name, "cwd"),
                          f"the working folder {cwd} {what}; create it or change cwd"))
            continue  # a relative program would be looked for in it: nothing more to say
        message = _program_problem(service.command[0], cwd,
                                   service.env.get("PATH", environ.get("PATH", os.defpath)))
        if message is not None:
            found.append((("services", name, "command"), message))
    return found


def _program_problem(program: str, cwd: Path | None, search: str) -> str | None:
    if os.sep in program or (os.altsep is not None and os.altsep in program):
        # A path: the OS takes it from the service's working folder, not from PATH.
        path = Path(program) if cwd is None else cwd / program
        if not path.exists():
            where = "" if Path(program).is_absolute() else f" (looked for {path})"
            return f"the program {program} does not exist{where}; fix the path"
        if path.is_dir() or not os.access(path, os.X_OK):
            return (f"the program {path} is not executable; make it so (chmod +x) or "
                    "start it through its interpreter")
        return None
    if shutil.which(program, path=search) is None:
        return (f"the program {program!r} is not found on PATH; install it, or give its "
                "full path (PATH searched: " + search + ")")
    return None
