"""``procward.Service``: a Python program as a native OS service in a few lines.

    import procward

    svc = procward.Service("ReportSync", display_name="Report sync", description="…")

    @svc.main
    def run(stop):            # stop: threading.Event set on stop/shutdown/Ctrl+C
        while not stop.wait(5):
            sync_once()

    if __name__ == "__main__":
        svc.cli()             # install | uninstall | start | stop | status | run

``install`` registers ``python SCRIPT host`` with the OS manager (the SCM,
systemd, launchd); ``host`` is what the manager runs. ``run`` runs in the
foreground, where Ctrl+C sets ``stop``. An uncaught exception is logged with its
traceback and exits 1, so the manager's recovery applies. Standard library
only (plus pywin32 on Windows, loaded when hosting there): importing this costs
a program milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from procward.oshost import (
    HostReporter,
    OsHostError,
    ServiceManager,
    ServiceSpec,
    ServiceStatus,
    StartType,
    StderrReporter,
    call_body,
    manager,
    python_for_service,
    stop_on_signals,
    stop_wait,
)

__all__ = ["MainFunction", "Service"]

# The decorated function: gets the stop event, returns an exit code (None is 0).
MainFunction = Callable[[threading.Event], int | None]


class Service:
    """One native service: its OS registration, and the function it runs."""

    def __init__(
        self,
        name: str,
        *,
        display_name: str = "",
        description: str = "",
        start_type: StartType = "auto",
        account: str | None = None,
        depends_on: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        working_dir: str | os.PathLike[str] | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        """``working_dir`` defaults to the script's folder (systemd would use ``/`` and the
        SCM ``C:\\Windows\\System32``, where relative paths rarely mean what was meant)."""
        if not name:
            raise ValueError("a service needs a name, e.g. Service('ReportSync')")
        self.name = name
        self.display_name = display_name or name
        self.description = description
        self.start_type: StartType = start_type
        self.account = account
        self.depends_on = list(depends_on)
        self.env = dict(env or {})
        self.working_dir = Path(working_dir) if working_dir is not None else None
        self.stop_timeout = stop_timeout
        self._main: MainFunction | None = None

    # ---- the program ---------------------------------------------------------------

    def main(self, function: MainFunction) -> MainFunction:
        """Decorator: ``function(stop)`` is the service; it returns when ``stop`` is set."""
        self._main = function
        return function

    def _function(self) -> MainFunction:
        if self._main is None:
            raise RuntimeError(f"{self.name}: decorate the service's function with @svc.main")
        return self._main

    def _body(self, stop: threading.Event, reporter: HostReporter) -> int:
        function = self._function()

        def relay() -> None:
            stop.wait()
            reporter.stopping(stop_wait(self.stop_timeout))

        # Started, as far as the manager is concerned, once the function runs.
        relayer = threading.Thread(target=relay, name="procward-stopping", daemon=True)
        relayer.start()
        reporter.ready()
        code = function(stop)
        if stop.is_set():
            # The function may return the moment `stop` is set, before the relay has
            # said "stopping": wait for it, or the host would close its channel (or
            # report STOPPED) first and the manager would never hear it.
            relayer.join(timeout=5)
        return int(code or 0)

    def run(self) -> int:
        """Run in the foreground: Ctrl+C (or SIGTERM) sets ``stop``; a second Ctrl+C
        interrupts the function. Returns the exit code."""
        self._function()  # fail before touching signals
        stop = threading.Event()
        prefix = f"{self.name}: "

        def said(signal_name: str) -> None:
            print(f"{prefix}{signal_name}: stopping (press Ctrl+C again to interrupt)",
                  file=sys.stderr, flush=True)

        with stop_on_signals(stop, interactive=True, on_signal=said):
            return call_body(self._body, stop, StderrReporter(prefix))

    def host(self) -> int:
        """Run under the OS manager (the command ``install`` registers)."""
        self._function()
        return self._manager().host(self.name, self._body)

    # ---- registration --------------------------------------------------------------

    def _manager(self) -> ServiceManager:
        return manager(f"{self._invocation()} run")

    def _invocation(self) -> str:
        """How a person runs this program's command line: ``python -m module``, or the
        script as it was named (``report_sync.py``)."""
        argv = self.host_argv()
        if argv[1] == "-m":
            return f"python -m {argv[2]}"
        return os.path.basename(sys.argv[0]) or os.path.basename(argv[1])

    def host_argv(self) -> list[str]:
        """What the OS manager runs: this interpreter, this program, ``host``."""
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            # Started as `python -m package.module`: run it the same way, so
            # its relative imports keep working.
            module = spec.name.removesuffix(".__main__")
            return [python_for_service(), "-m", module, "host"]
        script = getattr(main, "__file__", None) or sys.argv[0]
        return [python_for_service(), os.path.abspath(script), "host"]

    def spec(self, *, user: bool = False, start_type: StartType | None = None,
             account: str | None = None, password: str | None = None) -> ServiceSpec:
        """The registration ``install`` would make."""
        argv = self.host_argv()
        script_dir = Path(argv[1]).parent if argv[1] != "-m" else Path.cwd()
        return ServiceSpec(
            name=self.name, argv=argv, display_name=self.display_name,
            description=self.description or self.display_name,
            start_type=start_type or self.start_type, account=account or self.account,
            password=password, depends_on=self.depends_on,
            working_dir=self.working_dir or script_dir, env=self.env, user_scope=user,
            stop_budget=self.stop_timeout,
            remover=f"{self._invocation()} uninstall" + (" --user" if user else ""),
        )

    def install(self, *, user: bool = False, start_type: StartType | None = None,
                account: str | None = None, password: str | None = None) -> None:
        """Register the service; an auto (or delayed) one is started now as well."""
        spec = self.spec(user=user, start_type=start_type, account=account, password=password)
        mgr = self._manager()
        mgr.install(spec)
        if spec.start_type not in ("auto", "delayed"):
            return
        # systemd (enable --now) and launchd (RunAtLoad) start it as they install it;
        # the Windows SCM only registers it until the next boot: start it here, so
        # `install` means the same everywhere. Only a service that never ran.
        try:
            if mgr.status(self.name, user_scope=user).state == "stopped":
                mgr.start(self.name, user_scope=user)
        except OsHostError as e:
            try:
                mgr.uninstall(self.name, user_scope=user)  # leave nothing half-done
            except OsHostError:
                pass
            raise OsHostError(f"{e}; the service was not left installed") from None

    def uninstall(self, *, user: bool = False) -> None:
        self._manager().uninstall(self.name, user_scope=user)

    def start(self, *, user: bool = False) -> None:
        self._manager().start(self.name, user_scope=user)

    def stop(self, *, user: bool = False) -> None:
        self._manager().stop(self.name, user_scope=user)

    def status(self, *, user: bool = False) -> ServiceStatus:
        return self._manager().status(self.name, user_scope=user)

    # ---- command line --------------------------------------------------------------

    def cli(self, argv: Sequence[str] | None = None) -> NoReturn:
        """``install | uninstall | start | stop | status | run`` from ``sys.argv``; exits."""
        raise SystemExit(self.command(argv))

    def command(self, argv: Sequence[str] | None = None) -> int:
        """What ``cli`` does, returning the exit code instead of exiting."""
        parser = self._parser()
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help(sys.stderr)
            return 2
        if self._main is None:
            print(f"{self.name}: no service function: decorate it with @svc.main before "
                  "calling svc.cli()", file=sys.stderr)
            return 2
        try:
            return int(args.func(args))
        except OsHostError as e:
            print(f"{self.name}: {e}", file=sys.stderr)
            return 1

    def _parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=os.path.basename(sys.argv[0]) or self.name,
            description=f"{self.display_name}: {self.description}" if self.description
            else self.display_name,
        )
        verbs = parser.add_subparsers(dest="verb",
                                      metavar="{install,uninstall,start,stop,status,run}")

        def scoped(verb: str, text: str) -> argparse.ArgumentParser:
            p = verbs.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
            p.add_argument("--user", action="store_true",
                           help="a service of your own (systemd --user, a launchd "
                                "LaunchAgent): no root needed")
            return p

        install = scoped("install", "register this program as an OS service (and start it)")
        install.add_argument("--start-type", choices=["auto", "delayed", "manual", "disabled"],
                             help=f"default: {self.start_type}")
        install.add_argument("--account", help="run as this account")
        install.add_argument("--password", help="the password of a Windows user --account")
        install.add_argument("--dry-run", action="store_true",
                             help="print what would be registered, change nothing")
        install.set_defaults(func=self._cli_install)
        for verb, text, done in (("uninstall", "stop and remove the OS service", "uninstalled"),
                                 ("start", "start the installed service", "started"),
                                 ("stop", "stop the service", "stopped")):
            scoped(verb, text).set_defaults(func=self._cli_control, done=done)
        scoped("status", "is the service installed and running").set_defaults(
            func=self._cli_status)
        verbs.add_parser("run", help="run in the foreground (Ctrl+C stops)",
                         description="Run in the foreground; Ctrl+C stops.").set_defaults(
            func=lambda a: self.run())
        # What the OS manager runs; no help line, it is not for people.
        verbs.add_parser("host").set_defaults(func=lambda a: self.host())
        return parser

    def _cli_control(self, args: argparse.Namespace) -> int:
        {"uninstall": self.uninstall, "start": self.start, "stop": self.stop}[args.verb](
            user=args.user)
        print(f"{args.done} the service {self.name}")
        return 0

    def _cli_install(self, args: argparse.Namespace) -> int:
        password = sys.stdin.readline().rstrip("\r\n") if args.password == "-" else args.password
        spec = self.spec(user=args.user, start_type=args.start_type, account=args.account,
                         password=password)
        from procward.oshost import Describes, reach_warnings

        mgr = self._manager()
        for warning in reach_warnings(mgr, spec):
            print(f"{self.name}: {warning}", file=sys.stderr)
        if args.dry_run:
            if isinstance(mgr, Describes):
                print(mgr.describe(spec), end="")
            else:
                print("\n".join(f"{k} = {v!r}" for k, v in vars(spec).items()
                                if k != "password"))
            return 0
        self.install(user=args.user, start_type=args.start_type, account=args.account,
                     password=password)
        started = spec.start_type in ("auto", "delayed")
        print(f"installed the service {self.name}" + (" and started it" if started else ""))
        return 0

    def _cli_status(self, args: argparse.Namespace) -> int:
        status = self.status(user=args.user)
        if not status.installed:
            print(f"{self.name}: not installed (install it with `install`)")
            return 1
        pid = f" (pid {status.pid})" if status.pid else ""
        print(f"{self.name}: {status.state}{pid}  {status.detail}".rstrip())
        return 0
