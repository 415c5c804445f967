"""A program the SCM runs under Wine: ``python.exe oshost_service.py NAME MODE [ARG]``.

It hosts the service NAME through ``procward.oshost.windows`` with one of these bodies:

- ``daemon CONFIG [CONTROL_FILE]``: the real procward daemon on CONFIG, stopped by
  the SCM's stop; with CONTROL_FILE, the control number written there is handed
  to the service's own control handler, as the SCM would hand it (Wine's SCM
  never sends SHUTDOWN or PRESHUTDOWN, and ControlService refuses both);
- ``env OUTFILE``: writes what the service sees (environment, working directory,
  interpreter, the file pywintypes was loaded from) as JSON to OUTFILE, says
  ready, and waits for the stop;
- ``gated GATE``: a slow start and stop: reports START_PENDING (wait hint 45 s)
  again and again until the file GATE exists, then says ready; once asked to
  stop, waits (at most a minute) for the file GATE.stop before it ends;
- ``raise``: raises at once, so the service must stop with an error;
- ``raise-slowly``: says it is stopping, waits 3 s, then raises (a body that fails
  as it starts and takes its time to clean up).

Run from a console instead of by the SCM, ``host()`` refuses: the message is
printed as JSON ({"error": ...}) and the exit code is 3.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from procward.oshost import HostReporter, OsHostError
from procward.oshost.windows import WindowsServiceManager


def deliver_control(control_file: str) -> None:
    """Have the hosted service's control handler receive the control CONTROL_FILE names."""
    import procward.oshost._windows_host as backend

    make = backend._service_class

    def with_delivery(*args: Any) -> Any:
        hosted = make(*args)

        class Delivered(hosted):
            def __init__(self, argv: list[str]) -> None:
                super().__init__(argv)
                threading.Thread(target=self.deliver, daemon=True).start()

            def deliver(self) -> None:
                while not os.path.exists(control_file):
                    time.sleep(0.2)  # a file the Linux test writes: nothing to await
                with open(control_file, encoding="utf-8") as f:
                    control = int(f.read())
                # What pywin32's C handler calls when the SCM sends a control.
                self.ServiceCtrlHandlerEx(control, 0, None)

        return Delivered

    backend._service_class = with_delivery


def daemon(config_path: str) -> int:
    from procward._daemon import HostedDaemon

    hosted = HostedDaemon(Path(config_path), None)

    def body(stop: threading.Event, reporter: HostReporter) -> int:
        try:
            return hosted(stop, reporter)
        except BaseException:
            # Wine's Event Log keeps nothing: leave the traceback beside the config.
            with open(os.path.join(os.path.dirname(config_path), "body-error.txt"), "w") as f:
                traceback.print_exc(file=f)
            raise

    return WindowsServiceManager().host(sys.argv[1], body)


def env(out: str) -> int:
    import pywintypes  # loaded already, by the backend: which DLL it is

    def body(stop: threading.Event, reporter: HostReporter) -> int:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"environ": dict(os.environ), "cwd": os.getcwd(),
                       "pywintypes": pywintypes.__file__,
                       "executable": sys.executable, "prefix": sys.prefix,
                       "path": sys.path, "pid": os.getpid()}, f)
        reporter.ready()
        stop.wait()
        return 0

    return WindowsServiceManager().host(sys.argv[1], body)


def gated(gate: str) -> int:
    def body(stop: threading.Event, reporter: HostReporter) -> int:
        # The test opens the gate once it has seen the checkpoint rise; each wait
        # here stands for a step of a slow start.
        while not os.path.exists(gate):
            reporter.pending(45)
            if stop.wait(0.3):
                return 0
        reporter.ready()
        stop.wait()
        deadline = time.monotonic() + 60
        while not os.path.exists(gate + ".stop") and time.monotonic() < deadline:
            time.sleep(0.2)  # a file written by another OS's process: nothing to await
        return 0

    return WindowsServiceManager().host(sys.argv[1], body)


def fail(slowly: bool) -> int:
    def body(stop: threading.Event, reporter: HostReporter) -> int:
        if slowly:
            reporter.stopping(10)
            time.sleep(3)
        raise RuntimeError("the body failed on purpose")

    return WindowsServiceManager().host(sys.argv[1], body)


def main() -> int:
    mode = sys.argv[2]
    try:
        if mode == "daemon":
            if len(sys.argv) > 4:
                deliver_control(sys.argv[4])
            return daemon(sys.argv[3])
        if mode == "env":
            return env(sys.argv[3])
        if mode == "gated":
            return gated(sys.argv[3])
        return fail(slowly=mode == "raise-slowly")
    except OsHostError as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}), flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
