"""What the systemd and launchd backends do alike, as POSIX service managers.

Each writes a file its manager reads (a unit, a plist) and runs the manager's
tool; those are each backend's own. Shared here: a system service needs root;
its ``--account`` must reach what it runs (warned about at install, by mode
bits, see ``_reach``) and owns the folder it writes its logs and state in; the
tool's failures are reported in its own words; and ``--dry-run``'s account of
what ``install`` would do has one form.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from procward.oshost._base import NotPrivileged, OsHostError, ServiceSpec
from procward.oshost._reach import service_paths, unreachable

__all__ = ["PosixManager", "describe_install", "run_manager_command"]


class PosixManager:
    """The part of the ServiceManager interface the POSIX backends implement alike."""

    # What check_privileges says to a user who asked for a system service without root.
    needs_root: str

    def __init__(self, foreground: str = "procward run") -> None:
        # The command that runs the same thing in the foreground, advised where
        # this manager is missing (`procward run`, or an SDK program's `run`).
        self.foreground = foreground

    def check_privileges(self, user_scope: bool) -> None:
        """Raise NotPrivileged when a system service is wanted and this is not root."""
        if not user_scope and sys.platform != "win32" and os.geteuid() != 0:
            raise NotPrivileged(self.needs_root)

    def unreachable(self, spec: ServiceSpec) -> list[str]:
        """What a system service's --account cannot reach (warned about at install)."""
        if spec.user_scope or not spec.account or not spec.argv:
            return []
        return unreachable(spec.account, service_paths(spec.argv, spec.working_dir))

    def give_to(self, account: str, paths: Sequence[Path], *, check_only: bool = False) -> None:
        """Make ``paths`` the account's, which the service runs as and writes there.

        LookupError when there is no such user; ``check_only`` (a dry run) only
        makes sure there is one.
        """
        if sys.platform == "win32":  # for mypy: only the POSIX backends get here
            return
        import pwd

        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            raise LookupError(account) from None
        if check_only:
            return
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


def describe_install(path: Path, text: str, commands: list[list[str]]) -> str:
    """What ``install`` would do: the file it writes, then the commands it runs."""
    lines = "\n".join(" ".join(c) for c in commands)
    return f"# {path}\n{text}\n# then:\n{lines}\n"


def run_manager_command(command: list[str], *, check: bool = True
                        ) -> subprocess.CompletedProcess[str]:
    """Run a service manager's tool (systemctl, launchctl); OsHostError with its own
    words when it cannot run or, with ``check``, when it fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OsHostError(f"{' '.join(command)} failed: {e}") from None
    if check and done.returncode != 0:
        reason = (done.stderr or done.stdout).strip() or f"exit {done.returncode}"
        raise OsHostError(f"{' '.join(command)} failed: {reason}")
    return done
