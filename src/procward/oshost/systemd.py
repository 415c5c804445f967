"""The systemd backend: a ``Type=notify`` unit, ``systemctl``, and the notify protocol.

It owns the unit text (``render_unit``, a pure function the golden tests
pin), where units live (``/etc/systemd/system``, ``~/.config/systemd/user``),
the ``systemctl`` command lines, and hosting: telling systemd READY, STATUS,
WATCHDOG and STOPPING through ``$NOTIFY_SOCKET`` with the standard library
only (the same datagrams ``sd_notify(3)`` sends).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from procward.oshost._base import HostBody, OsHostError, ServiceSpec, ServiceStatus
from procward.oshost._hosting import call_body, stop_on_signals
from procward.oshost._posix import PosixManager, describe_install, run_manager_command

__all__ = ["MARKER", "SystemdManager", "render_unit", "unit_dir"]

# How every unit we write begins (then the command that removes it): uninstall and
# reinstall touch only these.
MARKER = "# Written by procward"

_UNIT_TYPES = (".service", ".socket", ".target", ".mount", ".timer", ".path", ".device")
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


def _check_name(name: str) -> None:
    if not name or len(name) > 200 or not set(name) <= _NAME_OK or name.startswith("-"):
        raise OsHostError(
            f"{name!r} cannot be a systemd unit name: use letters, digits, '_', '.', '-' "
            "(for example --name my-service)"
        )


def _unit_name(name: str) -> str:
    return name if name.endswith(".service") else f"{name}.service"


def _dependency(name: str) -> str:
    # "postgresql" means postgresql.service; "network-online.target" stays as written.
    return name if name.endswith(_UNIT_TYPES) else f"{name}.service"


def _seconds(value: float) -> str:
    # systemd reads "90s" and "1.5s"; whole seconds print without a fraction.
    return f"{int(value)}s" if float(value).is_integer() else f"{value:g}s"


def _escape_specifiers(text: str) -> str:
    # '%' starts a unit specifier (%n, %h, ...) in almost every setting.
    return text.replace("%", "%%")


def _one_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise OsHostError(f"the {what} must be one line")
    return text


def _quote_word(word: str) -> str:
    """One argument of ExecStart= as systemd reads it back (systemd.service(5), "Command lines")."""
    _one_line(word, "command")
    # '$' would expand an environment variable, '%' a specifier.
    text = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t'\";") and text == word:
        return text
    return f'"{text}"'


def _exec_line(argv: list[str]) -> str:
    if not argv:
        raise OsHostError("the service has no command")
    if not os.path.isabs(argv[0]):
        raise OsHostError(f"the program must be an absolute path, got {argv[0]!r}")
    return " ".join(_quote_word(a) for a in argv)


def _environment_line(key: str, value: str) -> str:
    if not key or "=" in key or any(c.isspace() for c in key):
        raise OsHostError(f"{key!r} is not an environment variable name")
    _one_line(value, f"value of {key}")
    assignment = f"{key}={value}".replace("\\", "\\\\").replace('"', '\\"')
    return f'Environment="{_escape_specifiers(assignment)}"'


def render_unit(spec: ServiceSpec) -> str:
    """The unit file for ``spec``: Type=notify, watchdog, restart on failure, mixed kill.

    ``TimeoutStopSec`` is ``spec.stop_wait`` (its programs' stop budget plus the
    one margin), so the service always gets to stop its own children before
    systemd kills the whole control group.
    """
    _check_name(spec.name)
    if spec.user_scope and spec.account:
        raise OsHostError("a --user service runs as you; --account is for system services")
    description = spec.description or spec.display_name or spec.name
    unit = [
        f"{MARKER}; `{_one_line(spec.remover, 'remover')}` removes it.",
        "[Unit]",
        f"Description={_escape_specifiers(_one_line(description, 'description'))}",
    ]
    deps = [_dependency(d) for d in spec.depends_on]
    for d in deps:
        _check_name(d)
    if not spec.user_scope:
        # The user manager has no network-online.target; a system service
        # (an API listener, a program that talks to the network) waits for it.
        unit += ["Wants=network-online.target", "After=network-online.target"]
    if deps:
        unit += [f"Requires={' '.join(deps)}", f"After={' '.join(deps)}"]
    unit += [
        "",
        "[Service]",
        "Type=notify",
        # Only the main process may speak for the service: its children get
        # their own notify channel from procward, never systemd's.
        "NotifyAccess=main",
        f"ExecStart={_exec_line(spec.argv)}",
    ]
    if spec.reload_argv:
        unit.append(f"ExecReload={_exec_line(spec.reload_argv)}")
    if spec.working_dir is not None:
        if not spec.working_dir.is_absolute():
            raise OsHostError(f"the working directory must be absolute, got {spec.working_dir}")
        unit.append(f"WorkingDirectory={_escape_specifiers(str(spec.working_dir))}")
    unit += [_environment_line(k, v) for k, v in sorted(spec.env.items())]
    if spec.account:
        # A POSIX user name (or uid); a Windows-style DOMAIN\user means nothing here.
        if not set(spec.account) <= _NAME_OK - {":"} or spec.account.startswith("-"):
            raise OsHostError(f"{spec.account!r} is not a user name this system knows how "
                              "to run a service as; give a local user such as www-data")
        unit.append(f"User={spec.account}")
    unit += [
        # Restart after a crash or a non-zero exit, never after a clean stop.
        "Restart=on-failure",
        f"RestartSec={_seconds(spec.restart_delay)}",
        # SIGTERM to the main process only: it stops its children in order and
        # within their stop_timeout; SIGKILL reaches the rest only at the end.
        "KillMode=mixed",
        f"TimeoutStopSec={_seconds(spec.stop_wait)}",
    ]
    if spec.watchdog > 0:
        unit.append(f"WatchdogSec={_seconds(spec.watchdog)}")
    unit += [
        f"SyslogIdentifier={spec.name}",
        "",
        "[Install]",
        f"WantedBy={'default.target' if spec.user_scope else 'multi-user.target'}",
    ]
    return "\n".join(unit) + "\n"


def _xdg_home(variable: str, default: str, environ: Mapping[str, str] | None) -> Path:
    """The user's folder an XDG base directory variable names, or its default under ~."""
    env = os.environ if environ is None else environ
    return Path(env.get(variable) or os.path.join(os.path.expanduser("~"), default))


def unit_dir(user_scope: bool, environ: Mapping[str, str] | None = None) -> Path:
    """Where a unit is written: the administrator's folder, or the user's."""
    if not user_scope:
        return Path("/etc/systemd/system")
    return _xdg_home("XDG_CONFIG_HOME", ".config", environ) / "systemd" / "user"


def _systemctl(user_scope: bool, *args: str) -> list[str]:
    return ["systemctl", *(["--user"] if user_scope else []), *args]


class SystemdManager(PosixManager):
    """Install, control and host services under systemd (system or ``--user``)."""

    needs_root = ("a system service needs root: run the same command with sudo, or add "
                  "--user to install a service of your own (systemctl --user)")

    # ---- what would be done (pure) -------------------------------------------------

    def unit_path(self, name: str, *, user_scope: bool = False) -> Path:
        _check_name(name)
        return unit_dir(user_scope) / _unit_name(name)

    def install_commands(self, spec: ServiceSpec) -> list[list[str]]:
        """The systemctl calls ``install`` makes after writing the unit."""
        unit = _unit_name(spec.name)
        commands = [_systemctl(spec.user_scope, "daemon-reload")]
        if spec.start_type in ("auto", "delayed"):
            # systemd has no delayed start; "delayed" is enabled like "auto".
            commands.append(_systemctl(spec.user_scope, "enable", "--now", unit))
        return commands

    def uninstall_commands(self, name: str, *, user_scope: bool = False) -> list[list[str]]:
        unit = _unit_name(name)
        return [_systemctl(user_scope, "disable", "--now", unit),
                _systemctl(user_scope, "daemon-reload"),
                _systemctl(user_scope, "reset-failed", unit)]

    def describe(self, spec: ServiceSpec) -> str:
        return describe_install(self.unit_path(spec.name, user_scope=spec.user_scope),
                                render_unit(spec), self.install_commands(spec))

    def data_folder(self, *, user_scope: bool,
                    environ: Mapping[str, str] | None = None) -> Path:
        """``/var/lib/procward``, or the user's ``$XDG_STATE_HOME/procward``."""
        if not user_scope:
            return Path("/var/lib/procward")
        return _xdg_home("XDG_STATE_HOME", os.path.join(".local", "state"), environ) / "procward"

    # ---- checks ---------------------------------------------------------------------

    def check_systemd(self) -> None:
        """Raise OsHostError unless systemd is the running init system (sd_booted(3))."""
        if shutil.which("systemctl") is None:
            raise OsHostError(
                "systemctl is not installed: this system does not use systemd. Run "
                f"`{self.foreground}` from your init system's own service definition instead"
            )
        if not os.path.isdir("/run/systemd/system"):
            raise OsHostError(
                "systemd is not the init system here (no /run/systemd/system; a container "
                f"or another init?). Run `{self.foreground}` from whatever starts services here "
                "instead"
            )

    # ---- ServiceManager -------------------------------------------------------------

    def install(self, spec: ServiceSpec) -> None:
        text = render_unit(spec)  # bad input fails here, before anything is touched
        self.check_privileges(spec.user_scope)
        self.check_systemd()
        path = self.unit_path(spec.name, user_scope=spec.user_scope)
        if path.exists() and not path.read_text(errors="replace").startswith(MARKER):
            raise OsHostError(f"{path} exists and procward did not write it; choose another "
                              "--name, or remove that unit first")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: systemd never reads half a unit.
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
        for command in self.install_commands(spec):
            done = run_manager_command(command, check=False)
            if done.returncode != 0:
                journal = "journalctl --user" if spec.user_scope else "journalctl"
                raise OsHostError(
                    f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()}; "
                    f"the unit is at {path}; see `{journal} -u {_unit_name(spec.name)}`"
                )

    def uninstall(self, name: str, *, user_scope: bool = False) -> None:
        path = self.unit_path(name, user_scope=user_scope)
        self.check_privileges(user_scope)
        self.check_systemd()
        if not path.exists():
            raise OsHostError(f"{_unit_name(name)} is not installed (no {path})")
        if not path.read_text(errors="replace").startswith(MARKER):
            raise OsHostError(f"{path} was not written by procward; leaving it alone")
        disable, reload_, reset = self.uninstall_commands(name, user_scope=user_scope)
        run_manager_command(disable, check=False)  # it may be stopped or disabled already
        path.unlink()
        run_manager_command(reload_)
        run_manager_command(reset, check=False)  # fails when the unit never failed

    def start(self, name: str, *, user_scope: bool = False) -> None:
        self._control("start", name, user_scope)

    def stop(self, name: str, *, user_scope: bool = False) -> None:
        self._control("stop", name, user_scope)

    def _control(self, verb: str, name: str, user_scope: bool) -> None:
        self.check_privileges(user_scope)
        self.check_systemd()
        done = run_manager_command(_systemctl(user_scope, verb, _unit_name(name)), check=False)
        if done.returncode != 0:
            journal = "journalctl --user" if user_scope else "journalctl"
            raise OsHostError(f"systemctl {verb} {_unit_name(name)} failed: "
                              f"{(done.stderr or done.stdout).strip()}; see "
                              f"`{journal} -u {_unit_name(name)} -n 50`")

    def status(self, name: str, *, user_scope: bool = False) -> ServiceStatus:
        self.check_systemd()
        unit = _unit_name(name)
        done = run_manager_command(_systemctl(
            user_scope, "show", unit, "--property=LoadState,ActiveState,SubState,MainPID,"
            "Result,ExecMainStatus"))
        props = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        if props.get("LoadState") == "not-found":
            return ServiceStatus(name, installed=False, state="not installed")
        states = {"active": "running", "activating": "start_pending",
                  "deactivating": "stop_pending", "inactive": "stopped", "failed": "failed",
                  "reloading": "running"}
        active = props.get("ActiveState", "")
        pid = int(props.get("MainPID") or 0) or None
        detail = f"{active}/{props.get('SubState', '')}"
        if props.get("Result") not in (None, "", "success"):
            detail += f", last result {props['Result']} (exit {props.get('ExecMainStatus')})"
        return ServiceStatus(name, installed=True, state=states.get(active, active), pid=pid,
                             detail=detail)

    def host(self, name: str, body: HostBody) -> int:
        """Run ``body`` as the unit's main process, speaking sd_notify to systemd.

        Without ``$NOTIFY_SOCKET`` (started by hand) the notifications are
        skipped and the body runs all the same; SIGTERM or Ctrl+C stops it.
        """
        channel = NotifyChannel.from_environ()
        reporter = _NotifyReporter(channel)
        stop = threading.Event()
        feeder = _WatchdogFeeder(channel, reporter) if channel.watchdog > 0 else None
        if feeder is not None:
            feeder.start()
        try:
            with stop_on_signals(stop):
                return call_body(body, stop, reporter)
        finally:
            if feeder is not None:
                feeder.stop()
            channel.close()


class NotifyChannel:
    """The datagram socket systemd listens on, or nothing when not under systemd."""

    def __init__(self, address: str | None, watchdog: float = 0.0) -> None:
        self.address = address
        self.watchdog = watchdog
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        # (systemd is Linux-only; the platform test is for the type checker.)
        if address and sys.platform != "win32":
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # '@' names a socket in the abstract namespace (sd_notify(3)).
        self._target = "\0" + address[1:] if address and address.startswith("@") else (
            address or "")

    @classmethod
    def from_environ(cls) -> NotifyChannel:
        """Take systemd's variables out of ``os.environ``: the children this process
        starts must not inherit them, or they would speak for the service (or be
        held to its watchdog)."""
        address = os.environ.pop("NOTIFY_SOCKET", None)
        usec = os.environ.pop("WATCHDOG_USEC", None)
        pid = os.environ.pop("WATCHDOG_PID", None)
        watchdog = 0.0
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1_000_000
        return cls(address, watchdog)

    def send(self, *assignments: str) -> None:
        if self._sock is None:
            return
        with self._lock:
            try:
                self._sock.sendto("\n".join(assignments).encode(), self._target)
            except OSError as e:
                # systemd gone or restarting: the service itself carries on.
                print(f"<4>cannot notify systemd: {e}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _NotifyReporter:
    """HostReporter over sd_notify; ``log`` writes journal priority prefixes to stderr."""

    _PRIORITY = {"error": 3, "warning": 4, "info": 6}

    def __init__(self, channel: NotifyChannel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self.last_alive: float | None = None  # None: the body never reported

    def pending(self, wait_hint: float) -> None:
        # Extends the start (or stop) timeout instead of letting it expire.
        self._channel.send(f"EXTEND_TIMEOUT_USEC={int(wait_hint * 1_000_000)}",
                           "STATUS=starting")

    def ready(self) -> None:
        self._channel.send("READY=1", "STATUS=running")

    def stopping(self, wait_hint: float) -> None:
        self._channel.send("STOPPING=1", "STATUS=stopping",
                           f"EXTEND_TIMEOUT_USEC={int(wait_hint * 1_000_000)}")

    def alive(self) -> None:
        with self._lock:
            self.last_alive = time.monotonic()

    def log(self, level: Literal["info", "warning", "error"], message: str) -> None:
        # journald reads "<N>" at the start of each line as its priority.
        prefix = f"<{self._PRIORITY[level]}>"
        text = "\n".join(prefix + line for line in message.splitlines() or [""])
        print(text, file=sys.stderr, flush=True)


class _WatchdogFeeder:
    """Sends WATCHDOG=1 every half period from a thread.

    A body that never calls ``reporter.alive()`` is fed unconditionally (the
    watchdog then catches a hung process); one that has called it is held to
    it, so a stuck event loop in the procward daemon makes systemd restart it.
    """

    def __init__(self, channel: NotifyChannel, reporter: _NotifyReporter) -> None:
        self._channel = channel
        self._reporter = reporter
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procward-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        period = self._channel.watchdog
        while not self._done.wait(period / 2):
            last = self._reporter.last_alive
            if last is None or time.monotonic() - last < period:
                self._channel.send("WATCHDOG=1")
