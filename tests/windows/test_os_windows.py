"""procward._os.windows with real Windows processes, under Wine.

Each test runs one case of ``scripts/os_windows.py`` in the Windows python and
asserts on the JSON result it prints. Wine 8 delivers Ctrl+C but not Ctrl+Break
(its server answers "not implemented"), so ``stop("TERM")`` of a console
program finds no way to ask politely and ends the tree at once; the console
path is shown with Ctrl+C, and the window path with a GUI child on Xvfb.
"""

from __future__ import annotations

from typing import Any

import pytest
from wine import WinePython

pytestmark = pytest.mark.wine

# What a Windows process ended by TerminateJobObject/TerminateProcess reports.
KILLED = 1
# STATUS_CONTROL_C_EXIT: a console program ended by a Ctrl+C/Ctrl+Break it did not handle.
CONTROL_C_EXIT = 0xC000013A


def run_case(wine_python: WinePython, case: str, display: bool = False) -> dict[str, Any]:
    return wine_python.script("os_windows.py", case, display=display)


@pytest.fixture(scope="module")
def output(wine_python: WinePython) -> dict[str, Any]:
    """One run of the output case (three children) serves the three tests that read it."""
    return run_case(wine_python, "output")


def test_output_of_both_streams_reaches_the_sinks(output: dict[str, Any]) -> None:
    """Every line on stdout and stderr reaches its sink before `exited` gives the exit code."""
    result = output
    assert result["exit"] == 3
    assert result["stdout"].splitlines()[:200] == [f"out {i}" for i in range(200)]
    assert result["stderr"].splitlines() == [f"err {i}" for i in range(200)]
    assert result["ended"] == [True, True]
    assert result["pid"] > 0 and result["create_time"] > 0


def test_env_and_cwd_are_applied_exactly(output: dict[str, Any]) -> None:
    """The child sees exactly spec.env (nothing inherited from the daemon) and runs in spec.cwd."""
    result = output
    lines = result["stdout"].splitlines()
    assert f"cwd {result['workdir']}" in lines
    assert "only yes None" in lines


def test_merged_stderr_goes_into_the_stdout_sink(output: dict[str, Any]) -> None:
    """With merge_stderr both streams arrive, in order, in the one stdout sink."""
    result = output
    merged = result["merged"].splitlines()
    assert merged[:400] == [f"{s} {i}" for i in range(200) for s in ("out", "err")]
    assert result["merged_exit"] == 3


def test_stop_term_then_kill_tree_leaves_nothing(wine_python: WinePython) -> None:
    """stop("TERM") plus kill_tree after a short timeout: neither child nor grandchild lives."""
    result = run_case(wine_python, "stop_term")
    assert result["alive"] == []
    assert result["exit"] in (KILLED, CONTROL_C_EXIT)
    assert result["seconds"] < 5


def test_stop_reaches_a_child_that_takes_ctrl_c(wine_python: WinePython) -> None:
    """A console event ends a willing child by itself; the job takes its grandchild with it."""
    result = run_case(wine_python, "stop_graceful")
    assert result["ended_by"] == "stop"
    assert result["exit"] == 7  # the child's own SIGINT handler ran
    assert result["alive"] == []


def test_child_ignoring_the_console_event_ends_by_kill_tree(wine_python: WinePython) -> None:
    """A child that ignores the event outlives the timeout; kill_tree then ends the tree."""
    result = run_case(wine_python, "stop_ignored")
    assert result["ended_by"] == "kill_tree"
    assert result["exit"] == KILLED
    assert result["alive"] == []


def test_stop_closes_the_window_of_a_gui_child(wine_python: WinePython) -> None:
    """A GUI child deaf to console events quits on WM_CLOSE; its helper goes with it."""
    result = run_case(wine_python, "stop_window", display=True)
    assert result["ended_by"] == "stop"
    assert result["exit"] == 5  # it quit by itself, from its WM_CLOSE handler
    assert "WM_CLOSE" in result["output"]
    assert result["alive"] == []


def test_missing_program_raises_spawn_error(wine_python: WinePython) -> None:
    """A missing program raises SpawnError carrying the OS's reason; a missing working
    folder, one naming the folder."""
    result = run_case(wine_python, "missing")
    assert result["absolute"].startswith('SpawnError: cannot start "C:\\procward\\no-such-program')
    assert "not found" in result["absolute"].lower()
    assert result["bare"].startswith('SpawnError: cannot start "procward-no-such-program"')
    # A missing folder is named as the folder, not taken for a missing program.
    assert result["cwd"].startswith("SpawnError:")
    assert "working folder C:\\procward\\no-such-folder does not exist" in result["cwd"]


def test_state_dir_lock_is_exclusive(wine_python: WinePython) -> None:
    """A second lock of a locked state dir raises StateDirLocked; after release it locks again."""
    result = run_case(wine_python, "lock")
    assert result["second"].startswith("StateDirLocked: another procward is running")
    assert result["relocked"] is True


def test_reap_leftover_checks_create_time(wine_python: WinePython) -> None:
    """A recorded tree is ended; the same pid with another create time is left alone."""
    result = run_case(wine_python, "reap")
    assert result["wrong_time"] == 0
    assert result["alive_after_wrong"] == result["pids"]
    assert result["ended"] == 2
    assert result["alive"] == []


def test_stop_handlers_queue_the_request_and_undo(wine_python: WinePython) -> None:
    """Ctrl+C and Ctrl+Break call on_stop("INT"/"BREAK") from the loop; undo restores."""
    result = run_case(wine_python, "handlers")
    assert result["seen"] == ["INT", "BREAK"]
    assert result["restored"] is True


def test_private_files_are_readable_only_by_owner_admins_and_system(
        wine_python: WinePython) -> None:
    """The admin token's file gets a DACL of exactly three full-control entries.

    Checked on the ACL object procward builds and applies (SetNamedSecurityInfo with
    PROTECTED_DACL_SECURITY_INFORMATION): Wine keeps no DACLs on its Z: drive (it
    answers every query with one made from the Unix mode), so reading the file's
    ACL back under Wine would show Wine's, not ours.
    """
    result = run_case(wine_python, "private_file")
    assert result["content"] == "replaced\n"
    assert result["leftovers"] == ["admin.token"]
    who = [a["who"] for a in result["aces"]]
    assert len(who) == 3
    assert any(w.endswith("\\Administrators") for w in who), who
    assert any(w.endswith("\\SYSTEM") for w in who), who
    assert all(a["allowed"] and a["full"] for a in result["aces"])
