"""What a service's account must reach, whether a POSIX account can, by mode bits,
and whether the interpreter a service starts lives where it will last.

A system service installed with ``--account`` starts this Python and imports
procward from where they are now. A venv in a home folder (mode 700 or 750)
is out of another user's reach, and such a service then fails at every start
with "Permission denied", long after the install said it was done. The
backends ask this at install and print what it finds as a warning, never a
refusal: an ACL or a capability may grant what the mode bits deny.

An interpreter in a temporary folder, in a git work tree (a clone's
``.venv``) or, for a system service, in a user's home works on the day of the
install and fails at every start once that folder is cleaned, moved or
rebuilt: the install says so too.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["impermanent_home", "service_paths", "unreachable"]

_READ, _RUN = 4, 1


def service_paths(argv: list[str], working_dir: Path | None) -> list[tuple[Path, int]]:
    """What a service's account must reach: the program it starts (read and run),
    procward's package and the service's folder (read and enter), and the files
    its command names (read: a configuration, a script)."""
    import procward

    wanted = [(Path(argv[0]), _READ | _RUN), (Path(procward.__file__).parent, _READ | _RUN)]
    if working_dir is not None:
        wanted.append((working_dir, _READ | _RUN))
    wanted += [(Path(arg), _READ) for arg in argv[1:] if os.path.isabs(arg) and
               os.path.isfile(arg)]
    return wanted


def unreachable(account: str, paths: Iterable[tuple[Path, int]]) -> list[str]:
    """One line per path ``account`` cannot reach, naming the folder or file in the way."""
    if sys.platform == "win32":  # for mypy: only the POSIX backends call this
        return []
    import grp
    import pwd

    def name(table: Callable[[int], Any], number: int) -> str:
        try:
            return str(table(number)[0])
        except KeyError:
            return str(number)

    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        return []  # the install itself says the account does not exist
    if entry.pw_uid == 0:
        return []
    groups = set(os.getgrouplist(account, entry.pw_gid))
    problems = []
    for path, need in paths:
        # A symlink (a venv's python) must be reachable as written and where it leads.
        for candidate in dict.fromkeys([Path(os.path.abspath(path)), path.resolve()]):
            blocked = _blocked(candidate, need, entry.pw_uid, groups)
            if blocked is not None:
                step, info = blocked
                kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
                problems.append(
                    f"the service runs as {account}, which cannot reach {path}: the {kind} "
                    f"{step} is {stat.filemode(info.st_mode)} {name(pwd.getpwuid, info.st_uid)}"
                    f":{name(grp.getgrgid, info.st_gid)}")
                break
    return problems


def _blocked(path: Path, need: int, uid: int,
             groups: set[int]) -> tuple[Path, os.stat_result] | None:
    """The first of ``path`` and the folders on its way that ``uid`` cannot pass, if any."""
    steps = [*reversed(path.parents), path]
    for at, step in enumerate(steps):
        try:
            info = step.stat()
        except OSError:
            return None  # missing or unreadable to us too: not this check's to say
        # Every folder on the way must let it through; the last must grant ``need``.
        bits = need if at == len(steps) - 1 else _RUN
        if not _allowed(info, uid, groups, bits):
            return step, info
    return None


def _allowed(info: os.stat_result, uid: int, groups: set[int], bits: int) -> bool:
    if info.st_uid == uid:
        granted = info.st_mode >> 6
    elif info.st_gid in groups:
        granted = info.st_mode >> 3
    else:
        granted = info.st_mode
    return granted & bits == bits


def impermanent_home(program: str, *, user_scope: bool, home: Path | None = None,
                     temp: Path | None = None) -> str | None:
    """Why the folder ``program`` (as the service will start it) lives in may not
    last, or None. ``home`` and ``temp`` stand for the user's home and temp folders."""
    # As written, not resolved: a venv's python is a symlink into the base
    # interpreter, and it is the venv's folder that goes away.
    path = Path(os.path.abspath(program))
    temp = Path(os.path.abspath(temp or tempfile.gettempdir()))
    if path.is_relative_to(temp):
        return f"the temporary folder {temp}"
    for folder in path.parents:
        if (folder / ".git").exists():
            return f"the git work tree {folder}"
    home = Path(os.path.abspath(home or Path.home()))
    if not user_scope and path.is_relative_to(home):
        return f"the home folder {home}"
    return None
