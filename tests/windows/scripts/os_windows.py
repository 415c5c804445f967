"""The Windows side of tests/windows/test_os_windows.py: run by a Windows python under Wine.

``python.exe os_windows.py CASE`` drives ``procward._os.windows.PLATFORM`` with
real processes and prints one JSON object, the result the Linux test asserts on.
It runs on a ProactorEventLoop, as the daemon does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from procward._os import PLATFORM, Leftover, SpawnSpec
from procward.errors import SpawnError, StateDirLocked

PY = sys.executable


class Sink:
    """Collects what a pipe delivered, and whether its end was reported."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ended = False
        self.changed = asyncio.Event()

    def feed(self, data: bytes) -> None:
        assert not self.ended, "feed after end_of_run"
        self.data += data
        self.changed.set()

    def end_of_run(self) -> None:
        self.ended = True

    async def line(self, prefix: str, timeout: float = 20) -> str:
        """The first whole line starting with ``prefix``, once it has arrived."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.data.decode(errors="replace").splitlines(keepends=True):
                    if line.startswith(prefix) and line.endswith("\n"):
                        return line.strip()
                self.changed.clear()
                await self.changed.wait()


def spec(code: str, **kw: Any) -> SpawnSpec:
    return SpawnSpec(argv=[PY, "-c", code], cwd=Path(tempfile.gettempdir()),
                     env=dict(os.environ), **kw)


def alive(pids: list[int], grace: float = 2.0) -> list[int]:
    """Which of ``pids`` still run after ``grace`` seconds (a killed process takes a moment)."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(procs, timeout=grace)
    return sorted(p.pid for p in still)


async def case_output() -> dict[str, Any]:
    """Lines on both streams reach both sinks; the exit code comes back; env and cwd apply."""
    code = (
        "import os, sys\n"
        "for i in range(200):\n"
        "    print(f'out {i}', flush=True)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
        "print('cwd', os.getcwd(), flush=True)\n"
        "print('only', os.environ.get('PROCWARD_ONLY'), os.environ.get('PROCWARD_NOT_PASSED'))\n"
        "sys.exit(3)\n"
    )
    workdir = Path(tempfile.mkdtemp(prefix="procward cwd "))
    env = {k: v for k, v in os.environ.items() if k.upper() in ("SYSTEMROOT", "PATH", "TEMP")}
    env["PROCWARD_ONLY"] = "yes"
    os.environ["PROCWARD_NOT_PASSED"] = "leaked"
    out, err = Sink(), Sink()
    child = PLATFORM.spawn(asyncio.get_running_loop(),
                           SpawnSpec(argv=[PY, "-c", code], cwd=workdir, env=env), out, err)
    status = await asyncio.wait_for(child.exited, 30)
    merged = Sink()
    child2 = PLATFORM.spawn(asyncio.get_running_loop(), spec(code, merge_stderr=True), merged,
                            Sink())
    status2 = await asyncio.wait_for(child2.exited, 30)
    return {
        "pid": child.pid, "create_time": child.create_time, "exit": status.code,
        "stdout": out.data.decode(), "stderr": err.data.decode(),
        "ended": [out.ended, err.ended], "workdir": str(workdir),
        "merged": merged.data.decode(), "merged_exit": status2.code,
    }


GRANDCHILD_TREE = (
    "import subprocess, sys, time\n"
    "gc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('grandchild', gc.pid, flush=True)\n"
    "time.sleep(60)\n"
)


async def stop_tree(code: str, signal_name: str, timeout: float) -> dict[str, Any]:
    out = Sink()
    child = PLATFORM.spawn(asyncio.get_running_loop(), spec(code), out, Sink())
    grandchild = int((await out.line("grandchild ")).split()[1])
    started = time.monotonic()
    child.stop(signal_name)
    ended_by = "stop"
    try:
        await asyncio.wait_for(asyncio.shield(child.exited), timeout)
    except TimeoutError:
        ended_by = "kill_tree"
        child.kill_tree()
        await asyncio.wait_for(child.exited, 10)
    return {
        "child": child.pid, "grandchild": grandchild, "ended_by": ended_by,
        "exit": child.exited.result().code, "seconds": round(time.monotonic() - started, 3),
        "alive": alive([child.pid, grandchild]), "output": out.data.decode(),
    }


async def case_stop_term() -> dict[str, Any]:
    """stop("TERM"), then kill_tree after a short timeout: nothing of the tree is left."""
    return await stop_tree(GRANDCHILD_TREE, "TERM", 1.0)


async def case_stop_graceful() -> dict[str, Any]:
    """A child that takes Ctrl+C ends by itself on stop("CTRL_C"); its helper goes with it."""
    code = (
        "import ctypes, signal, sys\n"
        # A new process group starts with Ctrl+C ignored; this program asks for it.
        "ctypes.windll.kernel32.SetConsoleCtrlHandler(None, False)\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
        + GRANDCHILD_TREE
    )
    return await stop_tree(code, "CTRL_C", 5.0)


async def case_stop_ignored() -> dict[str, Any]:
    """A child that ignores the console event is still ended, by kill_tree."""
    code = (
        "import ctypes, signal\n"
        "ctypes.windll.kernel32.SetConsoleCtrlHandler(None, False)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGBREAK, signal.SIG_IGN)\n"
        + GRANDCHILD_TREE
    )
    return await stop_tree(code, "CTRL_C", 1.0)


async def case_stop_window() -> dict[str, Any]:
    """A GUI child ignoring console events quits on the WM_CLOSE that stop() posts to it."""
    code = (
        "import signal, subprocess, sys, time, win32con, win32gui\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGBREAK, signal.SIG_IGN)\n"
        "def on_message(hwnd, msg, wparam, lparam):\n"
        "    if msg == win32con.WM_CLOSE:\n"
        "        print('WM_CLOSE', flush=True)\n"
        "        win32gui.PostQuitMessage(5)\n"
        "        return 0\n"
        "    return win32gui.DefWindowProc(hwnd, msg, wparam, lparam)\n"
        "wc = win32gui.WNDCLASS()\n"
        "wc.lpszClassName = 'procward-test'\n"
        "wc.lpfnWndProc = on_message\n"
        "win32gui.RegisterClass(wc)\n"
        "win32gui.CreateWindow('procward-test', 'procward test', win32con.WS_OVERLAPPEDWINDOW,"
        " 0, 0, 200, 100, 0, 0, 0, None)\n"
        "gc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', gc.pid, flush=True)\n"
        "win32gui.PumpMessages()  # returns on the WM_QUIT that PostQuitMessage(5) sends\n"
        "sys.exit(5)\n"
    )
    return await stop_tree(code, "TERM", 5.0)


async def case_missing() -> dict[str, Any]:
    """Programs that cannot be started raise SpawnError with the OS's reason."""
    results = {}
    loop = asyncio.get_running_loop()
    for label, argv, cwd in (
        ("absolute", [r"C:\procward\no-such-program.exe"], Path(tempfile.gettempdir())),
        ("bare", ["procward-no-such-program"], Path(tempfile.gettempdir())),
        ("cwd", [PY, "-c", "pass"], Path(r"C:\procward\no-such-folder")),
    ):
        try:
            PLATFORM.spawn(loop, SpawnSpec(argv=argv, cwd=cwd, env=dict(os.environ)),
                           Sink(), Sink())
            results[label] = "started"
        except SpawnError as e:
            results[label] = f"SpawnError: {e}"
    return results


async def case_lock() -> dict[str, Any]:
    """A state dir locked once cannot be locked again until released."""
    state = Path(tempfile.mkdtemp(prefix="procward-state-"))
    first = PLATFORM.lock_state_dir(state)
    try:
        PLATFORM.lock_state_dir(state)
        second = "locked again"
    except StateDirLocked as e:
        second = f"StateDirLocked: {e}"
    getattr(first, "release")()  # noqa: B009 - the Platform protocol types it as object
    third = PLATFORM.lock_state_dir(state)
    getattr(third, "release")()  # noqa: B009
    return {"second": second, "relocked": True}


async def case_reap() -> dict[str, Any]:
    """reap_leftover ends a recorded tree, and leaves a pid with another create time alone."""
    tree = subprocess.Popen([PY, "-c", GRANDCHILD_TREE], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert tree.stdout is not None
    grandchild = int(tree.stdout.readline().split()[1])
    created = psutil.Process(tree.pid).create_time()
    wrong = PLATFORM.reap_leftover(Leftover(tree.pid, created - 1000, "svc"))
    after_wrong = alive([tree.pid, grandchild], grace=0)
    ended = PLATFORM.reap_leftover(Leftover(tree.pid, created, "svc"))
    return {"wrong_time": wrong, "alive_after_wrong": after_wrong, "ended": ended,
            "alive": alive([tree.pid, grandchild]), "pids": sorted([tree.pid, grandchild])}


async def case_handlers() -> dict[str, Any]:
    """Ctrl+C and Ctrl+Break reach on_stop through the loop; undo restores the handlers."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    undo = PLATFORM.install_stop_handlers(loop, seen.append)
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGBREAK)
    await asyncio.sleep(0.1)
    undo()
    return {"seen": seen, "restored": signal.getsignal(signal.SIGINT) is before}


async def case_private_file() -> dict[str, Any]:
    """write_private writes and atomically replaces; the DACL it applies names only the
    owner, Administrators and SYSTEM, each with full control."""
    import win32con
    import win32security

    from procward._os.windows import private_dacl

    folder = Path(tempfile.mkdtemp())
    target = folder / "admin.token"
    PLATFORM.write_private(target, b"secret\n")
    PLATFORM.write_private(target, b"replaced\n")
    dacl = private_dacl()
    aces = []
    for i in range(dacl.GetAceCount()):
        (kind, _), mask, sid = dacl.GetAce(i)
        name, domain, _ = win32security.LookupAccountSid(None, sid)
        aces.append({"who": f"{domain}\\{name}" if domain else name,
                     "allowed": kind == win32security.ACCESS_ALLOWED_ACE_TYPE,
                     "full": mask == win32con.GENERIC_ALL})
    return {"content": target.read_text(), "aces": aces,
            "leftovers": sorted(p.name for p in folder.iterdir())}


async def main(case: str) -> None:
    result = await globals()[f"case_{case}"]()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
