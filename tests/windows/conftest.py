"""The ``wine_python`` session fixture: a Windows python.exe under a wineserver of our own.

Each test session works on a copy of the prefix ``scripts/setup-wine`` prepared
(the script is run first; it returns at once when all is done), under a
persistent ``wineserver`` and an Xvfb display of its own, so two sessions never
end each other's Windows processes, and ``wineserver -k`` at the end leaves
nothing running.

Tests marked ``wine`` are skipped when Wine cannot be set up, unless
``PROCWARD_REQUIRE_WINE=1`` (CI sets it): then they fail, saying why.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from wine import CACHE, SETUP, ServiceHost, WinePython


def _unavailable(reason: str) -> None:
    if os.environ.get("PROCWARD_REQUIRE_WINE") == "1":
        pytest.fail(f"Wine is required (PROCWARD_REQUIRE_WINE=1) but not usable: {reason}",
                    pytrace=False)
    pytest.skip(f"Wine not set up: {reason}")


def _ready() -> bool:
    return (all(shutil.which(cmd) for cmd in ("wine", "wineserver", "Xvfb"))
            and (CACHE / "ready.json").exists() and (CACHE / "cp313" / "python.exe").exists())


def _start_display() -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb of our own on a free display number, so Windows programs can open windows."""
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    os.close(write_fd)
    with os.fdopen(read_fd) as ready:
        number = ready.readline().strip() if select.select([ready], [], [], 30)[0] else ""
    if not number:
        xvfb.kill()
        xvfb.wait()
        _unavailable("Xvfb did not start")
    return xvfb, f":{number}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed service test's output ends with what its services and their files said:
    a timeout alone cannot tell a daemon that never ran from one stopped early."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ServiceHost):
                report.sections.append(("services under test", value.report()))


@pytest.fixture(scope="session")
def wine_python() -> Iterator[WinePython]:
    """A Windows python.exe under a private, persistent wineserver; all ended afterwards."""
    # setup-wine is quick when all is done, and also notices a changed dependency list.
    try:
        setup = subprocess.run([str(SETUP)], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=1200, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/setup-wine could not run: {exc}")
    else:
        if setup.returncode != 0 or not _ready():
            _unavailable(f"scripts/setup-wine failed:\n{(setup.stdout + setup.stderr)[-3000:]}")
    tmp = Path(tempfile.mkdtemp(prefix="procward-wine-"))
    prefix = tmp / "prefix"
    # A copy of the prepared prefix (a second): this session's wineserver -k cannot
    # touch another session's processes, nor a stale one from a crashed run.
    subprocess.run(["cp", "-a", str(CACHE / "prefix"), str(prefix)], check=True)
    env = dict(os.environ)
    env.update(
        WINEPREFIX=str(prefix),
        WINEDEBUG="-all",
        # No Mono or Gecko offers, and a crashing program ends instead of waiting in
        # Wine's debugger.
        WINEDLLOVERRIDES="mscoree,mshtml=;winedbg.exe=d",
    )
    xvfb, env["DISPLAY"] = _start_display()
    # Persistent: the server and Wine's own processes (services.exe, the SCM) live
    # for the whole session instead of ending when no Wine program runs.
    server = subprocess.Popen(["wineserver", "-p"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    # It forks, and the first process exits once the server holds its socket: only
    # then may a Wine program run. One run sooner starts a server of its own, not
    # persistent, and this one exits 2.
    try:
        code: int | None = server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        code = None
    if code != 0:
        xvfb.kill()
        xvfb.wait()
        _unavailable(f"the persistent wineserver did not start (exit {code})")
    try:
        # The first Wine program starts Wine's own system processes (services.exe,
        # explorer, ...), which keep the standard handles they were given: give them
        # /dev/null, or later pipes would never reach end-of-file.
        subprocess.run(["wine", "cmd", "/c", "exit"], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       check=False)
        yield WinePython(CACHE / "cp313" / "python.exe", env, tmp)
    finally:
        subprocess.run(["wineserver", "-k"], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=False)
        xvfb.terminate()
        xvfb.wait()
        shutil.rmtree(tmp, ignore_errors=True)
