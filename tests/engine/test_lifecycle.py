"""The lifecycle of a service, with real child processes: starts, restarts, backoff, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from procward.engine import EventKind, State
from procward.testing import make_config, python, supervised

FAST = {"start_limit": {"burst": 50, "interval": "60s"}}


def _spawns(rec, service):  # type: ignore[no-untyped-def]
    """The events of ``service`` entering starting with a process (not a failed spawn)."""
    return [e for e in rec.matching(service, EventKind.STATE, state="starting") if e.payload.pid]


def test_crash_after_start_restarts_once_per_crash(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A program that dies after it had started is restarted at once, exactly once per death."""
    cfg = make_config(tmp_path, {"crash": {
        "command": python("import time, sys; time.sleep(0.3); sys.exit(1)"),
        "start_seconds": 0.1, **FAST}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.EXIT, count=4)
            exits = rec.matching("crash", EventKind.EXIT)
            await rec.wait_for(lambda e: e.kind is EventKind.STATE and e.payload.pid
                               and e.payload.state is State.STARTING, count=len(exits) + 1)
            spawns = _spawns(rec, "crash")
            # One new process per death, no backoff in between, the counter agrees.
            assert len(spawns) == len(exits) + 1
            assert not rec.matching("crash", EventKind.STATE, state="backoff")
            assert all(e.message == "starting: restart after exit code 1" for e in spawns[1:])
            assert [e.payload.restarts for e in spawns] == list(range(len(spawns)))
            assert sup.status(["crash"])[0].restarts >= len(exits)

    run(scenario())


def test_early_crash_backs_off_with_growing_delays(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A program that dies before start_seconds is retried after delays growing by factor."""
    cfg = make_config(tmp_path, {"early": {
        "command": python("import sys; sys.exit(2)"), "start_seconds": 5,
        "backoff": {"initial": "50ms", "factor": 2, "jitter": 0, "max": "10s"}, **FAST}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            backoffs = await rec.wait_state("early", "backoff", count=4)
            assert [e.payload.delay for e in backoffs] == [0.05, 0.1, 0.2, 0.4]
            # Each retry really waited its delay (load can only make the wait longer).
            spawns = _spawns(rec, "early")
            for backoff, retry in zip(backoffs[:3], spawns[1:4], strict=True):
                assert retry.time - backoff.time >= backoff.payload.delay - 0.01

    run(scenario())


def test_crash_loop_ends_failed(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """More restarts than start_limit.burst within the interval turn the service failed."""
    cfg = make_config(tmp_path, {"loop": {
        "command": python("import sys; sys.exit(1)"), "start_seconds": 2,
        "backoff": {"initial": "10ms", "jitter": 0},
        "start_limit": {"burst": 3, "interval": "60s"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("loop", "failed")
            assert len(_spawns(rec, "loop")) == 4  # the first start and 3 restarts
            status = sup.status(["loop"])[0]
            assert status.state is State.FAILED and status.exit_code == 1
            # failed stays failed: its lifecycle has ended, nothing is spawned on its own.
            assert not sup.select(["loop"])[0].is_active
            # a manual start clears it
            await sup.start_services(["loop"])
            await rec.wait_state("loop", "failed", count=2)
            assert len(_spawns(rec, "loop")) == 8

    run(scenario())


def test_restart_policies(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """on-failure leaves a success code alone; never leaves a failure alone; always restarts."""
    cfg = make_config(tmp_path, {
        "ok": {"command": python("raise SystemExit(3)"), "restart": "on-failure",
               "success_exit_codes": [0, 3], "start_seconds": 0},
        "never": {"command": python("raise SystemExit(1)"), "restart": "never",
                  "start_seconds": 0},
        "always": {"command": python("raise SystemExit(0)"), "restart": "always",
                   "start_seconds": 0, "start_limit": {"burst": 2, "interval": "60s"}},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("ok", "exited")
            await rec.wait_state("never", "exited")
            await rec.wait_state("always", "failed")
            assert len(_spawns(rec, "ok")) == 1
            assert len(_spawns(rec, "never")) == 1
            assert len(_spawns(rec, "always")) == 3
            by_name = {s.name: s for s in sup.status()}
            assert by_name["ok"].exit_code == 3 and by_name["never"].exit_code == 1

    run(scenario())


def test_backoff_resets_after_staying_up(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """After a run longer than backoff.reset_after the next early death starts from initial."""
    marker = tmp_path / "runs"
    # 1st and 2nd run die at once, the 3rd stays up 2s (> reset_after), then die at once.
    # reset_after is well above an interpreter's start on a busy machine, and every
    # run ends before start_seconds, so each death counts as early.
    code = f"""
        import pathlib, sys, time
        p = pathlib.Path({str(marker)!r})
        n = len(p.read_text()) if p.exists() else 0
        p.write_text('x' * (n + 1))
        if n == 2:
            time.sleep(2)
        sys.exit(1)
    """
    cfg = make_config(tmp_path, {"flaky": {
        "command": python(code), "start_seconds": 5,
        "backoff": {"initial": "20ms", "factor": 3, "jitter": 0, "reset_after": "1.5s"}, **FAST}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            backoffs = await rec.wait_state("flaky", "backoff", count=4)
            assert [e.payload.delay for e in backoffs] == [0.02, 0.06, 0.02, 0.06]

    run(scenario())


def test_missing_program_backs_off_then_fails_and_daemon_lives(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A program that does not exist is reported, retried with backoff, then failed."""
    cfg = make_config(tmp_path, {
        "ghost": {"command": [str(tmp_path / "no-such-program")],
                  "backoff": {"initial": "10ms"}, "start_limit": {"burst": 2, "interval": "1m"}},
        "fine": {"command": python("import time; time.sleep(60)"), "start_seconds": 0.1},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("ghost", "failed")
            failures = rec.matching("ghost", EventKind.SPAWN_FAILED)
            assert len(failures) == 3
            assert "no-such-program" in failures[0].message
            assert "No such file" in failures[0].message
            await rec.wait_state("fine", "running")
            assert sup.status(["fine"])[0].state is State.RUNNING

    run(scenario())


def test_grandchild_is_gone_after_stop(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Stopping a service ends its whole process tree, grandchildren included."""
    code = f"""
        import subprocess, sys, time
        g = subprocess.Popen([{os.sys.executable!r}, '-S', '-c', 'import time; time.sleep(600)'])
        print(g.pid, flush=True)
        time.sleep(600)
    """
    cfg = make_config(tmp_path, {"tree": {"command": python(code), "start_seconds": 0.1,
                                          "stop_timeout": "5s"}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("tree", "running")
            grandchild = await _pid_from_log(tmp_path / "logs" / "tree.out.log")
            child = sup.status(["tree"])[0].pid
            assert child is not None and psutil.pid_exists(grandchild)
            await sup.stop_services(["tree"])
            assert sup.status(["tree"])[0].state is State.STOPPED
            assert _gone_soon([child, grandchild])

    run(scenario())


@pytest.mark.parametrize("why", ["stop", "restart"])
def test_a_tree_ignoring_stop_signal_is_killed_after_stop_timeout(  # type: ignore[no-untyped-def]
        tmp_path: Path, run, why: str) -> None:
    """Stopped on request, or for a restart the daemon decided on (here: unhealthy), a
    tree that ignores stop_signal is killed once stop_timeout has passed, and says so."""
    code = """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        g = subprocess.Popen([sys.executable, '-S', '-c',
            'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])
        print(g.pid, flush=True)
        time.sleep(600)
    """
    sick = tmp_path / "sick"
    probe = [sys.executable, "-c", f"import os, sys; sys.exit(os.path.exists({str(sick)!r}))"]
    cfg = make_config(tmp_path, {"stubborn": {
        "command": python(code), "start_seconds": 0.1, "stop_timeout": "300ms", **FAST,
        "health": {"command": probe, "interval": "0.2s", "timeout": "5s", "failures": 1,
                   "start_period": "0s"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("stubborn", "running")
            # Printed once the program ignores SIGTERM.
            grandchild = await _pid_from_log(tmp_path / "logs" / "stubborn.out.log")
            if why == "stop":
                await sup.stop_services(["stubborn"])
            else:
                sick.touch()
                await rec.wait_state("stubborn", "stopping")
                sick.unlink()
                again = await rec.wait_state("stubborn", "running", count=2)
                assert again[1].payload.restarts == 1
            assert rec.matching("stubborn", EventKind.EXIT)[0].payload.signal == signal.SIGKILL
            notice = rec.matching("stubborn", EventKind.DAEMON)
            assert notice[0].message == "did not stop within 0.3s; killing its process tree"
            assert _gone_soon([grandchild])

    run(scenario())


def test_stop_signal_is_delivered(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """stop_signal = "INT" reaches the program, which can shut down cleanly."""
    code = """
        import signal, sys, time
        def bye(sig, frame):
            print('got', signal.Signals(sig).name, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGINT, bye)
        print('ready', flush=True)
        time.sleep(600)
    """
    cfg = make_config(tmp_path, {"polite": {"command": python(code), "start_seconds": 0.1,
                                            "stop_signal": "SIGINT"}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("polite", "running")
            # "running" comes after start_seconds, not after the handler is set: on a
            # busy machine the interpreter may still be starting.
            await asyncio.wait_for(_printed(tmp_path / "logs" / "polite.out.log", "ready"), 30)
            await sup.stop_services(["polite"])
            assert rec.matching("polite", EventKind.EXIT)[-1].payload.exit_code == 0
        assert (tmp_path / "logs" / "polite.out.log").read_text() == "ready\ngot SIGINT\n"

    run(scenario())


def test_depends_on_orders_start_and_reverses_stop(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A dependent starts only once its dependency runs, and stops before it."""
    sleeper = python("import time; time.sleep(600)")
    cfg = make_config(tmp_path, {
        "web": {"command": sleeper, "depends_on": ["api"], "start_seconds": 0.05},
        "api": {"command": sleeper, "depends_on": ["db"], "start_seconds": 0.05},
        "db": {"command": sleeper, "start_seconds": 0.3},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("web", "running")
            first_spawn = {n: _spawns(rec, n)[0].time for n in ("db", "api", "web")}
            running = {n: rec.matching(n, EventKind.STATE, state="running")[0].time
                       for n in ("db", "api")}
            assert first_spawn["api"] >= running["db"]
            assert first_spawn["web"] >= running["api"]
            waiting = rec.matching("web", EventKind.STATE, state="starting")[0]
            assert waiting.message == "starting: waiting for api"
            await sup.stop()
            stops = {n: rec.matching(n, EventKind.STATE, state="stopping")[0].time
                     for n in ("db", "api", "web")}
            stopped = {n: rec.matching(n, EventKind.STATE, state="stopped")[0].time
                       for n in ("db", "api", "web")}
            assert stopped["web"] <= stops["api"] and stopped["api"] <= stops["db"]

    run(scenario())


def test_nothing_is_restarted_once_the_daemon_stops(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """While dependents stop first, a dependency that dies stays down, and one in
    backoff is not retried: a system shutdown ends programs in any order."""
    stopping = tmp_path / "web-stopping"
    crash = tmp_path / "cache-crash"
    web = f"""
        import pathlib, signal, sys, time
        def bye(sig, frame):
            pathlib.Path({str(stopping)!r}).write_text('')
            time.sleep(1.5)  # a slow stop: the dependencies still run meanwhile
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('ready', flush=True)
        time.sleep(600)
    """
    # db dies once web has begun to stop; cache dies when told, then fails at
    # every start, so it waits in backoff when the stop begins.
    db = f"""
        import os, sys, time
        while not os.path.exists({str(stopping)!r}):
            time.sleep(0.02)
        sys.exit(1)
    """
    cache = f"""
        import os, sys, time
        if os.path.exists({str(crash)!r}):
            sys.exit(3)
        while not os.path.exists({str(crash)!r}):
            time.sleep(0.02)
        sys.exit(1)
    """
    cfg = make_config(tmp_path, {
        "web": {"command": python(web), "depends_on": ["db", "cache"], "start_seconds": 0.05,
                "stop_timeout": "10s"},
        "db": {"command": python(db), "start_seconds": 0.05, **FAST},
        "cache": {"command": python(cache), "start_seconds": 0.3, **FAST,
                  "backoff": {"initial": "500ms", "factor": 1, "jitter": 0}},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("web", "running")
            await asyncio.wait_for(_printed(tmp_path / "logs" / "web.out.log", "ready"), 30)
            crash.write_text("")
            await rec.wait_state("cache", "backoff")
            await sup.stop()
            began = rec.matching("web", EventKind.STATE, state="stopping")[0].time
            # db died (exit 1) during web's stop, before its own stop began.
            assert [e.payload.exit_code for e in rec.matching("db", EventKind.EXIT)] == [1]
            for name in ("db", "cache"):
                assert [e for e in _spawns(rec, name) if e.time >= began] == [], name
                assert sup.status([name])[0].state is State.STOPPED, name
            assert "procward is stopping" in sup.status(["db"])[0].reason

    run(scenario())


def test_instances_cwd_and_environment(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Each instance gets its index, the service's env and cwd, and PYTHONUNBUFFERED=1."""
    work = tmp_path / "work"
    work.mkdir()
    code = """
        import os
        print(os.getcwd(), os.environ['PROCWARD_SERVICE'], os.environ['PROCWARD_INSTANCE'],
              os.environ['GREETING'], os.environ.get('PYTHONUNBUFFERED'))
    """
    cfg = make_config(tmp_path, {
        "multi": {"command": python(code), "instances": 3, "cwd": work, "restart": "never",
                  "env": {"GREETING": "hello"}, "start_seconds": 0},
        "buffered": {"command": python("import os; print(os.environ['PYTHONUNBUFFERED'])"),
                     "env": {"PYTHONUNBUFFERED": "0"}, "restart": "never", "start_seconds": 0},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            for i in range(3):
                await rec.wait_state(f"multi:{i}", "exited")
            await rec.wait_state("buffered", "exited")
            assert [s.name for s in sup.status(["multi"])] == ["multi:0", "multi:1", "multi:2"]
        for i in range(3):
            line = (tmp_path / "logs" / f"multi@{i}.out.log").read_text()
            assert line == f"{work} multi {i} hello 1\n"
        assert (tmp_path / "logs" / "buffered.out.log").read_text() == "0\n"

    run(scenario())


async def _printed(log: Path, text: str) -> None:
    """Until the service has written ``text`` to its log."""
    while not log.exists() or text not in log.read_text():
        await asyncio.sleep(0.02)


async def _pid_from_log(log: Path) -> int:
    """The pid a service printed as its first output, once it has printed it."""
    while not log.exists() or not log.read_text().strip():
        await asyncio.sleep(0.02)
    return int(log.read_text().split()[0])


def _gone_soon(pids: list[int], timeout: float = 5.0) -> bool:
    """Every pid gone (or a zombie) within ``timeout``: SIGKILL lands asynchronously."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
