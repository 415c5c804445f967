"""``procward wrap NAME -- COMMAND ARGS…``: one program as an OS service, NSSM-style.

It writes a one-service configuration into a folder of its own (see
``wrap_folder``), with the folder's own logs, state and a free loopback API
port, loads it to be sure it is valid, and installs the procward daemon for it
exactly as ``procward service install`` does. ``--dry-run`` prints the
configuration and what would be registered, and writes nothing. ``--remove
NAME`` uninstalls the service and deletes the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from procward.cli._service import add_install_options

if TYPE_CHECKING:
    from procward.config import Config

__all__ = ["MARKER", "register", "render_config", "wrap_folder"]

# The first line of every configuration wrap writes: --remove deletes only such folders.
MARKER = "# Written by procward wrap"
CONFIG_NAME = "procward.toml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "wrap", help="run one program as an OS service (like `nssm install`)",
        usage="procward wrap NAME [options] -- COMMAND [ARGS ...]\n"
              "       procward wrap --remove NAME [--user] [--folder DIR]",
        description="Make COMMAND an OS service named NAME: procward keeps it running "
                    "(restart, logs, health, the control API) and the OS keeps procward "
                    "running. The generated configuration lives in the service's own folder.",
        epilog="example: procward wrap web --env PORT=8000 -- python -m http.server 8000",
    )
    p.add_argument("name", metavar="NAME", help="the OS service name (also the program's "
                   "name in procward)")
    p.add_argument("--remove", action="store_true",
                   help="uninstall the service NAME and delete its folder")
    p.add_argument("--user", action="store_true",
                   help="a service of your own (systemd --user, a launchd LaunchAgent)")
    p.add_argument("--restart", choices=["always", "on-failure", "never"], default="always",
                   help="when procward restarts the program after it exits (default: always, "
                        "as NSSM does)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="an environment variable for the program (repeatable)")
    p.add_argument("--cwd", metavar="DIR",
                   help="the program's working directory (default: the current directory)")
    p.add_argument("--stop-timeout", default="10s", metavar="DURATION",
                   help="how long the program gets to stop before it is killed (default: 10s)")
    p.add_argument("--health-url", metavar="URL",
                   help="an HTTP health check: restart the program when URL stops answering "
                        "2xx (e.g. http://127.0.0.1:8080/healthz)")
    p.add_argument("--folder", metavar="DIR",
                   help="keep the configuration, logs and state here (default: "
                        "/var/lib/procward/wrap/NAME, or ~/.local/state/procward/wrap/NAME "
                        r"with --user, or %%ProgramData%%\procward\wrap\NAME on Windows)")
    add_install_options(p)
    # argparse cannot mix options with a trailing command line (a `*` positional
    # after NAME is taken empty, then `-- COMMAND` is "unrecognized"): this
    # parser splits at the first `--` itself.
    p.__class__ = _WrapParser
    p.set_defaults(func=run, command=[])


class _WrapParser(argparse.ArgumentParser):
    """Parses what precedes the first ``--``; everything after it is ``command``."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        command: list[str] = []
        if "--" in words:
            at = words.index("--")
            words, command = words[:at], words[at + 1:]
        parsed, extras = super().parse_known_args(words, namespace)
        stray = next((w for w in extras if not w.startswith("-")), None)
        if stray is not None and not command:
            # `wrap web python3 app.py`: the program was meant, without the `--`
            # that keeps its own options from being read as wrap's.
            at = words.index(stray, 1) if stray in words[1:] else len(words)
            self.error("put -- before the program: procward wrap "
                       f"{shlex.join([*words[:at], '--', *words[at:]])}")
        parsed.command = command
        return parsed, extras


def wrap_folder(name: str, *, user_scope: bool, environ: dict[str, str] | None = None) -> Path:
    """Where ``wrap`` keeps service ``name``'s configuration, logs and state."""
    from procward.oshost import manager

    return manager().data_folder(user_scope=user_scope, environ=environ) / "wrap" / name


def _toml_string(value: str) -> str:
    # JSON's string escapes are TOML's; '$' is doubled because the loader
    # would read "${...}" as a variable to interpolate.
    return json.dumps(value.replace("$", "$$"), ensure_ascii=False)


def render_config(name: str, command: list[str], *, cwd: Path, port: int,
                  restart: str, env: dict[str, str], stop_timeout: str,
                  health_url: str | None = None) -> str:
    """The one-service configuration ``wrap`` writes (logs and state beside it)."""
    lines = [
        f"{MARKER} for the OS service {name}: the one program it runs.",
        f"# `procward wrap --remove {name}` uninstalls the service and deletes this folder.",
        "",
        "[procward]",
        'log_dir = "logs"',
        'state_dir = "state"',
        "",
        "[api]",
        f'listen = "127.0.0.1:{port}"',
        "",
        f"[services.{name}]",
        f"command = [{', '.join(_toml_string(a) for a in command)}]",
        f"cwd = {_toml_string(str(cwd))}",
        f"restart = {_toml_string(restart)}",
        f"stop_timeout = {_toml_string(stop_timeout)}",
    ]
    if env:
        pairs = ", ".join(f"{json.dumps(k)} = {_toml_string(v)}" for k, v in sorted(env.items()))
        lines.append(f"env = {{ {pairs} }}")
    if health_url:
        lines += ["", f"[services.{name}.health]", f"http = {_toml_string(health_url)}"]
    return "\n".join(lines) + "\n"


def _free_loopback_port() -> int:
    # The OS picks a port free right now; the daemon binds it at start.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parse_env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env expects K=V, got {item!r}")
        env[key] = value
    return env


def _load_unwritten(text: str) -> Config:
    """Load ``text`` as the service will load its file, from a scratch folder (--dry-run)."""
    from procward.config import load

    with tempfile.TemporaryDirectory(prefix="procward-wrap-") as scratch:
        path = Path(scratch) / CONFIG_NAME
        path.write_text(text, encoding="utf-8")
        return load(path, present=True)


def _is_ours(folder: Path) -> bool:
    config = folder / CONFIG_NAME
    try:
        return config.read_text(encoding="utf-8").startswith(MARKER)
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from procward.config import SERVICE_NAME

    if not SERVICE_NAME.match(args.name):
        print(f"procward: {args.name!r} cannot be a service name: use letters, digits, "
              "'_', '.', '-'", file=sys.stderr)
        return 2
    folder = Path(args.folder).absolute() if args.folder else wrap_folder(
        args.name, user_scope=args.user)
    if args.remove:
        if args.command:
            print("procward: --remove takes no command", file=sys.stderr)
            return 2
        return remove(args.name, folder, user_scope=args.user)
    command = list(args.command)
    if not command:
        print("procward: give the program after --, e.g. "
              f"`procward wrap {args.name} -- python -m http.server 8000`", file=sys.stderr)
        return 2
    return wrap(args, folder, command)


def wrap(args: argparse.Namespace, folder: Path, command: list[str]) -> int:
    from procward.cli._service import (
        daemon_argv,
        install_spec,
        reload_argv,
        spec_from_args,
    )
    from procward.config import load, stop_budget
    from procward.errors import ConfigError
    from procward.oshost import OsHostError, manager

    try:
        env = _parse_env(args.env)
    except ValueError as e:
        print(f"procward: {e}", file=sys.stderr)
        return 2
    # The OS starts services with its own PATH (and on Windows in System32):
    # a program found now is registered by its full path.
    found = shutil.which(command[0])
    if found and not os.path.isabs(command[0]):
        command[0] = os.path.abspath(found)
    if "WindowsApps" in Path(command[0]).parts:
        # The Microsoft Store's python.exe/winget aliases live in the user's
        # profile and do not run for a service account.
        print(f"procward: warning: {command[0]} is an app execution alias that a service "
              "cannot run; give the full path of the real program (e.g. "
              r"C:\Program Files\Python313\python.exe)", file=sys.stderr)
    cwd = Path(args.cwd).absolute() if args.cwd else Path.cwd()
    config_path = folder / CONFIG_NAME
    # A dry run refuses what the real wrap would refuse: it writes nothing itself.
    if config_path.exists():
        print(f"procward: {args.name} is already wrapped ({config_path}); remove it first "
              f"with `procward wrap --remove {args.name}`", file=sys.stderr)
        return 1
    if folder.exists() and any(folder.iterdir()) and not _is_ours(folder):
        print(f"procward: {folder} exists and is not a procward wrap folder; choose another "
              "--folder", file=sys.stderr)
        return 1
    # The topmost folder this run creates: undo removes it (and what is in it).
    created = next((p for p in reversed([folder, *folder.parents]) if not p.exists()), None)
    text = render_config(args.name, command, cwd=cwd, port=_free_loopback_port(),
                         restart=args.restart, env=env, stop_timeout=args.stop_timeout,
                         health_url=args.health_url)

    def undo() -> None:
        if args.dry_run:  # it wrote nothing
            return
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            config_path.unlink(missing_ok=True)

    try:
        # A dry run promises to change nothing: it writes no file and no folder.
        if not args.dry_run:
            folder.mkdir(parents=True, exist_ok=True)
            config_path.write_text(text, encoding="utf-8")
        if args.account:
            # The daemon runs as the account and writes its logs and state there.
            manager().give_to(args.account, [folder, config_path], check_only=args.dry_run)
    except LookupError:
        undo()
        print(f"procward: there is no user {args.account!r} on this system; create it "
              "first, or leave out --account", file=sys.stderr)
        return 2
    except OSError as e:
        undo()
        print(f"procward: cannot write {config_path}: {e}" + (
            "; run with sudo, or use --user" if isinstance(e, PermissionError) else ""),
            file=sys.stderr)
        return 1
    try:
        # The generated file must load exactly as the service will load it (the dry
        # run's text from a scratch folder: its relative logs and state resolve there).
        config = _load_unwritten(text) if args.dry_run else load(config_path, present=True)
    except ConfigError as e:
        undo()
        # The file is ours, made from the command line: its lines mean nothing to the user.
        for problem in e.problems:
            print(f"procward: {problem.message}", file=sys.stderr)
        return 2
    try:
        spec = spec_from_args(
            args, argv=daemon_argv(args.name, config_path),
            reload_argv=reload_argv(config_path),
            stop_budget=stop_budget(config.services), working_dir=folder,
            description=f"{' '.join(command)} (kept running by procward)",
        )
        if args.dry_run:
            # What would be written, headed by its path as the unit below is by its own.
            print(f"# {config_path} (--dry-run: not written)\n{text}")
        else:
            print(f"# configuration: {config_path}")
        code = install_spec(spec, dry_run=args.dry_run)
    except OsHostError as e:
        print(f"procward: {e}", file=sys.stderr)
        code = 2
    if code != 0:
        undo()  # a failed install leaves nothing behind
        return code
    if not args.dry_run:
        print(f"  logs:      {folder / 'logs'}")
        print(f"  remove:    procward wrap --remove {args.name}"
              + (" --user" if args.user else ""))
    return 0


def remove(name: str, folder: Path, *, user_scope: bool) -> int:
    """Uninstall the OS service (if installed), then delete the wrap folder."""
    from procward.oshost import OsHostError, manager

    if folder.exists() and not _is_ours(folder):
        print(f"procward: {folder} is not a procward wrap folder; leaving it alone",
              file=sys.stderr)
        return 1
    try:
        mgr = manager()
        if mgr.status(name, user_scope=user_scope).installed:
            mgr.uninstall(name, user_scope=user_scope)
            print(f"uninstalled the service {name}")
    except OsHostError as e:
        print(f"procward: {e}; {folder} was kept", file=sys.stderr)
        return 1
    if folder.exists():
        shutil.rmtree(folder)
        print(f"deleted {folder}")
    return 0
