"""What the systemd and launchd backends share: where a service's files live, and
handing them to the account it runs as.

Neither needs its service manager for this: both run on any POSIX machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from procward.oshost.launchd import LaunchdManager
from procward.oshost.systemd import SystemdManager

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX backends")

MANAGERS = [SystemdManager(), LaunchdManager()]
HOME = Path(os.path.expanduser("~"))


@pytest.mark.parametrize(("mgr", "user_scope", "environ", "expected"), [
    (SystemdManager(), False, {}, Path("/var/lib/procward")),
    (SystemdManager(), True, {"XDG_STATE_HOME": "/s"}, Path("/s/procward")),
    (SystemdManager(), True, {}, HOME / ".local" / "state" / "procward"),
    (LaunchdManager(), False, {}, Path("/Library/Application Support/procward")),
    (LaunchdManager(), True, {}, HOME / "Library" / "Application Support" / "procward"),
], ids=["systemd", "systemd-user-xdg", "systemd-user", "launchd", "launchd-user"])
def test_data_folder_is_the_systems_or_the_users(
        mgr: SystemdManager | LaunchdManager, user_scope: bool, environ: dict[str, str],
        expected: Path) -> None:
    """A system service's files go where the OS keeps services' state, a user's own
    under the user's home (XDG_STATE_HOME where it is set)."""
    assert mgr.data_folder(user_scope=user_scope, environ=environ) == expected


@pytest.mark.parametrize("mgr", MANAGERS, ids=["systemd", "launchd"])
def test_give_to_an_unknown_user_is_a_lookup_error(mgr: SystemdManager | LaunchdManager,
                                                   tmp_path: Path) -> None:
    """An account the system does not know is LookupError, with or without check_only,
    before any file changes hands."""
    for check_only in (True, False):
        with pytest.raises(LookupError, match="no-such-user-pw"):
            mgr.give_to("no-such-user-pw", [tmp_path], check_only=check_only)
    assert tmp_path.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("mgr", MANAGERS, ids=["systemd", "launchd"])
def test_give_to_with_check_only_changes_no_owner(mgr: SystemdManager | LaunchdManager,
                                                  tmp_path: Path) -> None:
    """check_only (a dry run) checks that the account exists and leaves the files as they
    were (a chown as another user would fail, one as root would hand them over)."""
    mgr.give_to("nobody", [tmp_path], check_only=True)
    assert tmp_path.stat().st_uid == os.geteuid()
