"""The launchd backend: plists pinned by golden files and read back with plistlib.

launchctl exists only on macOS: here the plist, the launchctl command lines
and the parsing of `launchctl print` are tested as data, and on a machine
without launchctl the clear error is.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from pathlib import Path

import pytest

from procward.oshost import OsHostError, ServiceSpec
from procward.oshost.launchd import LaunchdManager, parse_print, render_plist

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PROCWARD_UPDATE_GOLDEN") == "1"
LOG = Path("/Library/Logs/procward/test.log")

SPECS = {
    "daemon": ServiceSpec(
        name="org.procward.daemon",
        argv=["/usr/local/bin/python3", "-m", "procward", "service", "host", "--name",
              "org.procward.daemon", "-c", "/etc/procward/procward.toml"],
        description="procward supervising /etc/procward/procward.toml",
        working_dir=Path("/etc/procward"), stop_budget=25.0, account="_procward",
    ),
    "agent-manual": ServiceSpec(
        name="ReportSync", argv=["/usr/local/bin/python3", "/Users/ann/report sync.py", "host"],
        user_scope=True, start_type="manual", env={"B": "2", "A": "<&>"}, restart_delay=2.4,
    ),
}


@pytest.mark.parametrize("key", sorted(SPECS))
def test_plist_matches_golden_file(key: str) -> None:
    """Each plist renders byte for byte as its reviewed golden file."""
    data = render_plist(SPECS[key], log_file=LOG)
    path = GOLDEN / f"{key}.plist"
    if UPDATE:
        path.write_bytes(data)
    assert data == path.read_bytes()


def test_plist_reads_back_as_launchd_needs() -> None:
    """The daemon's job starts at load, is restarted only after a failure, gets its stop
    time plus a margin before SIGKILL, and keeps its output in a log file."""
    job = plistlib.loads(render_plist(SPECS["daemon"], log_file=LOG))
    assert job["RunAtLoad"] is True
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    assert job["ExitTimeOut"] > 25
    assert job["StandardErrorPath"] == str(LOG)
    assert job["UserName"] == "_procward"
    manual = plistlib.loads(render_plist(SPECS["agent-manual"], log_file=LOG))
    assert manual["RunAtLoad"] is False and "UserName" not in manual


def test_refusals() -> None:
    """What launchd cannot express is refused with a message saying what to change."""
    with pytest.raises(OsHostError, match="no service dependencies"):
        render_plist(ServiceSpec(name="a", argv=["/bin/true"], depends_on=["b"]))
    with pytest.raises(OsHostError, match="launchd label"):
        render_plist(ServiceSpec(name="a b", argv=["/bin/true"]))


def test_commands_and_status_parsing() -> None:
    """A daemon is bootstrapped into the system domain; `launchctl print` output maps to a
    status with state and pid."""
    mgr = LaunchdManager()
    assert mgr.install_commands(SPECS["daemon"]) == [
        ["launchctl", "bootstrap", "system", "/Library/LaunchDaemons/org.procward.daemon.plist"]]
    status = parse_print("x", "x = {\n\tstate = running\n\tpid = 4242\n"
                         "\tlast exit code = 0\n}\n")
    assert (status.state, status.pid, status.installed) == ("running", 4242, True)


@pytest.mark.skipif(shutil.which("launchctl") is not None or sys.platform == "win32",
                    reason="launchctl is here")
def test_no_launchctl_is_a_clear_error() -> None:
    """Without launchctl, status says launchd is macOS's and what to do instead."""
    with pytest.raises(OsHostError, match="procward run"):
        LaunchdManager().status("x", user_scope=True)
