"""``procward service``: the procward daemon as an OS service (SCM, systemd, launchd).

``install`` turns a configuration into a ``ServiceSpec`` whose command is
``python -m procward service host --name NAME -c ABS_CONFIG``; ``host`` is
what the OS manager runs: it loads the configuration and runs the daemon
inside ``manager().host``, reporting pending, ready, alive and stopping.
The helpers here (``install_spec``, ``spec_from_args``) are shared with ``wrap``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from procward.cli._common import add_config_options, load_or_report

if TYPE_CHECKING:
    from procward.oshost import ServiceManager, ServiceSpec

__all__ = ["add_install_options", "daemon_argv", "install_spec", "register", "reload_argv",
           "spec_from_args"]

DEFAULT_NAME = "procward"
# The keep-alive period an installed daemon must keep (systemd's WatchdogSec);
# the daemon proves it is alive every ALIVE_EVERY (procward._daemon).
WATCHDOG = 30.0

_SUB = "{install,uninstall,start,stop,restart,status}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "service", help="install the procward daemon as an OS service (SCM, systemd, launchd)",
        description="Register the procward daemon with the OS service manager (the Windows "
                    "Service Control Manager, systemd, launchd), and control it.",
    )
    verbs = p.add_subparsers(dest="verb", metavar=_SUB)
    p.set_defaults(func=lambda args: _usage(p))

    install = verbs.add_parser(
        "install", help="register the daemon for this configuration and start it",
        description="Register the procward daemon, running this configuration, as an OS "
                    "service, and start it (unless --start-type is manual or disabled).",
    )
    add_config_options(install)
    _add_scope(install)
    add_install_options(install)
    install.set_defaults(func=install_command)

    for verb, text in (("uninstall", "stop the service and remove it from the OS manager"),
                       ("start", "start the installed service"),
                       ("stop", "stop the service (its programs stop first)"),
                       ("restart", "stop, then start the service")):
        q = verbs.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        _add_scope(q)
        q.set_defaults(func=_control, verb=verb)

    status = verbs.add_parser("status", help="is the service installed, running, with which pid",
                              description="Ask the OS manager about the service.")
    _add_scope(status)
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.set_defaults(func=status_command)

    # What the OS manager runs; not for people (hence no help line).
    host = verbs.add_parser("host", description="Run the daemon inside the OS service manager "
                            "(the command an installed service runs).")
    host.add_argument("--name", required=True, help="the OS service name")
    add_config_options(host)
    host.set_defaults(func=host_command)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_scope(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULT_NAME,
                   help=f"the OS service name (default: {DEFAULT_NAME})")
    p.add_argument("--user", action="store_true",
                   help="a service of your own: systemd --user, a launchd LaunchAgent "
                        "(no root needed)")


def add_install_options(p: argparse.ArgumentParser) -> None:
    """Options ``service install`` and ``wrap`` share."""
    p.add_argument("--start-type", choices=["auto", "delayed", "manual", "disabled"],
                   default="auto",
                   help="auto: start at boot and now; delayed: auto, after boot settles "
                        "(Windows; same as auto elsewhere); manual: only when asked; "
                        "disabled: installed but off (Windows refuses to start it) (default: auto)")
    p.add_argument("--account", metavar="ACCOUNT",
                   help="run as this account: a user name on Linux/macOS; on Windows "
                        "LocalSystem (default), LocalService, NetworkService, "
                        r"'NT SERVICE\NAME' or DOMAIN\user")
    p.add_argument("--password", metavar="PASSWORD",
                   help="the password of a Windows user --account ('-' reads it from stdin)")
    p.add_argument("--depends-on", nargs="+", metavar="SVC", default=[],
                   help="OS services that must run before this one")
    p.add_argument("--display-name", default="", help="the name the OS shows (Windows)")
    p.add_argument("--description", default="", help="one line on what the service is for")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be registered (the unit, plist, or settings) and "
                        "the commands, and change nothing")


def daemon_argv(name: str, config_path: Path, profile: str | None = None) -> list[str]:
    """The command an OS manager runs for the daemon (the Windows backend relies on its shape)."""
    from procward.oshost import python_for_service

    argv = [python_for_service(), "-m", "procward", "service", "host", "--name", name,
            "-c", str(config_path)]
    if profile:
        argv += ["--profile", profile]
    return argv


def reload_argv(config_path: Path, profile: str | None = None) -> list[str]:
    """The command that makes the installed daemon re-read its file (systemd's ExecReload).

    It names the daemon's profile too: a profile may move state_dir or [api],
    and ``procward reload`` finds the daemon through them.
    """
    from procward.oshost import python_for_service

    argv = [python_for_service(), "-m", "procward", "reload", "-c", str(config_path)]
    if profile:
        argv += ["--profile", profile]
    return argv


def _read_password(value: str | None) -> str | None:
    if value == "-":
        return sys.stdin.readline().rstrip("\r\n")
    return value


def spec_from_args(args: argparse.Namespace, *, argv: list[str], reload_argv: list[str],
                   stop_budget: float, working_dir: Path, description: str) -> ServiceSpec:
    from procward.oshost import ServiceSpec

    return ServiceSpec(
        name=args.name, argv=argv, display_name=args.display_name or args.name,
        description=args.description or description, start_type=args.start_type,
        account=args.account, password=_read_password(args.password),
        depends_on=list(args.depends_on), working_dir=working_dir, user_scope=args.user,
        stop_budget=stop_budget, reload_argv=reload_argv, watchdog=WATCHDOG,
    )


def _manager() -> ServiceManager:
    from procward.oshost import manager

    return manager()


def _describe(mgr: ServiceManager, spec: ServiceSpec) -> str:
    from procward.oshost import Describes

    if isinstance(mgr, Describes):
        return mgr.describe(spec)
    fields = {k: v for k, v in vars(spec).items() if k != "password"}
    return "\n".join(f"{k} = {v!r}" for k, v in fields.items()) + "\n"


def install_spec(spec: ServiceSpec, *, dry_run: bool) -> int:
    """Install ``spec`` (or print it with ``dry_run``); an exit code, errors on stderr."""
    from procward.oshost import OsHostError, reach_warnings

    try:
        mgr = _manager()
        for warning in reach_warnings(mgr, spec):
            print(f"procward: {warning}", file=sys.stderr)
        if dry_run:
            print(_describe(mgr, spec), end="")
            return 0
        mgr.install(spec)
    except OsHostError as e:
        print(f"procward: {e}", file=sys.stderr)
        return 1
    started = spec.start_type in ("auto", "delayed")
    if started:
        # systemd (enable --now) and launchd (RunAtLoad) start an auto service as
        # they install it; the Windows SCM only registers it (an auto service
        # first starts at the next boot), so it is started here, as promised.
        try:
            # Only a service that never ran: one systemd started (or saw fail) is left be.
            if mgr.status(spec.name, user_scope=spec.user_scope).state == "stopped":
                mgr.start(spec.name, user_scope=spec.user_scope)
        except OsHostError as e:
            # A failed install leaves nothing behind: the service goes again.
            try:
                mgr.uninstall(spec.name, user_scope=spec.user_scope)
            except OsHostError:
                pass
            print(f"procward: {e}; the service was not left installed", file=sys.stderr)
            return 1
    scope = " --user" if spec.user_scope else ""
    print(f"installed the service {spec.name}" + (" and started it" if started else ""))
    print(f"  status:    procward service status --name {spec.name}{scope}")
    if not started:
        print(f"  start:     procward service start --name {spec.name}{scope}")
    print(f"  uninstall: procward service uninstall --name {spec.name}{scope}")
    return 0


def install_command(args: argparse.Namespace) -> int:
    from procward.config import find_config_path, stop_budget

    path = find_config_path(args.config).absolute()
    # The service does not get this shell's $PROCWARD_PROFILE: the profile validated
    # here is written into its commands.
    profile = args.profile or os.environ.get("PROCWARD_PROFILE") or None
    if not path.exists():
        print(f"procward: no configuration at {path}; write one with `procward init` "
              "or pass -c FILE", file=sys.stderr)
        return 2
    # Refuse now what the service would refuse at every start.
    config = load_or_report(path, profile, present=True)
    if config is None:
        return 2
    from procward.oshost import OsHostError

    try:
        spec = spec_from_args(
            args, argv=daemon_argv(args.name, path, profile),
            reload_argv=reload_argv(path, profile),
            stop_budget=stop_budget(config.services), working_dir=path.parent,
            description=f"procward supervising {path}",
        )
    except OSError as e:
        print(f"procward: cannot read the password: {e}", file=sys.stderr)
        return 2
    try:
        return install_spec(spec, dry_run=args.dry_run)
    except OsHostError as e:  # raised while rendering: bad --name, --account, ...
        print(f"procward: {e}", file=sys.stderr)
        return 2


def _control(args: argparse.Namespace) -> int:
    from procward.oshost import OsHostError

    try:
        mgr = _manager()
        if args.verb == "uninstall":
            mgr.uninstall(args.name, user_scope=args.user)
        elif args.verb == "start":
            mgr.start(args.name, user_scope=args.user)
        elif args.verb == "stop":
            mgr.stop(args.name, user_scope=args.user)
        else:
            mgr.stop(args.name, user_scope=args.user)
            mgr.start(args.name, user_scope=args.user)
    except OsHostError as e:
        print(f"procward: {e}", file=sys.stderr)
        return 1
    done = {"uninstall": "uninstalled", "start": "started", "stop": "stopped",
            "restart": "restarted"}[args.verb]
    print(f"{done} the service {args.name}")
    return 0


def status_command(args: argparse.Namespace) -> int:
    from procward.oshost import OsHostError

    try:
        status = _manager().status(args.name, user_scope=args.user)
    except OsHostError as e:
        print(f"procward: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"name": status.name, "installed": status.installed,
                          "state": status.state, "pid": status.pid, "detail": status.detail}))
    elif not status.installed:
        scope = " --user" if args.user else ""
        print(f"{status.name}: not installed (install it with `procward service install"
              f"{scope}`)")
    else:
        pid = f" (pid {status.pid})" if status.pid else ""
        detail = f"  {status.detail}" if status.detail else ""
        print(f"{status.name}: {status.state}{pid}{detail}")
    return 0 if status.installed else 1


def host_command(args: argparse.Namespace) -> int:
    from procward._daemon import HostedDaemon
    from procward.cli._render import EventPrinter
    from procward.config import find_config_path
    from procward.oshost import OsHostError

    path = find_config_path(args.config).absolute()
    # A Windows service has no console: sys.stdout is None there, and the
    # events are in the event log file anyway. Under systemd stdout is the
    # journal, where a line per event helps.
    printer = EventPrinter(colour=False) if sys.stdout is not None else None
    try:
        return _manager().host(args.name, HostedDaemon(path, args.profile, on_event=printer))
    except OsHostError as e:
        # Typed at a console (the SCM's error 1063): say so, and what does run here.
        profile = f' --profile "{args.profile}"' if args.profile else ""
        print(f"procward: {e}\nto run this configuration in the foreground: procward run "
              f'-c "{path}"{profile}', file=sys.stderr)
        return 1
