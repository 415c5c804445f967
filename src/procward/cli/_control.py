"""``procward start|stop|restart NAME… | --all``, ``procward reload`` and ``procward shutdown``."""

from __future__ import annotations

import argparse
import json
import time

from procward.cli import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_UNREACHABLE
from procward.cli._client import ApiClient, ClientError, add_client_options, connect, fail

__all__ = ["register"]

# shutdown names at most this many of the services it stops.
_SHOWN = 20
_HELP = {"start": "start services (clears failed)", "stop": "stop services",
         "restart": "stop, then start services"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action, text in _HELP.items():
        p = sub.add_parser(action, help=text, description=f"{text.capitalize()} of the "
                           "running daemon, by service name (all copies) or instance (web:1).")
        p.add_argument("names", nargs="*", metavar="NAME")
        p.add_argument("--all", action="store_true", help="every service")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        add_client_options(p)
        p.set_defaults(func=act, action=action)
    p = sub.add_parser(
        "reload", help="re-read the configuration and apply only the difference",
        description="The daemon reads its file again: added services start, removed ones "
                    "stop, changed ones restart, unchanged ones keep running. A bad file "
                    "changes nothing. (SIGHUP does the same on Linux/macOS.)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_client_options(p)
    p.set_defaults(func=reload)
    p = sub.add_parser(
        "shutdown", help="stop every service, then the daemon itself",
        description="Stop every service in order (dependents first, each within its "
                    "stop_timeout), then the daemon, as SIGTERM or Ctrl+C would; wait until "
                    "it is gone. Needs an admin token. (supervisorctl shutdown does the same.)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_client_options(p)
    p.set_defaults(func=shutdown)


def act(args: argparse.Namespace) -> int:
    if bool(args.names) == args.all:
        print(f"procward {args.action}: name the services, or pass --all", flush=True)
        return EXIT_BAD_CONFIG
    body = {"all": True} if args.all else {"names": args.names}
    try:
        answer = connect(args).call("POST", f"/v1/{args.action}", body)
    except ClientError as e:
        return fail(e)
    if args.json:
        print(json.dumps(answer))
    else:
        done = answer["done"]
        past = {"start": "started", "stop": "stopped", "restart": "restarted"}[args.action]
        if done:
            print(f"{past}: {', '.join(done)}")
        else:
            print(f"nothing to do: already {'running' if args.action == 'start' else past}")
    return 0


def reload(args: argparse.Namespace) -> int:
    try:
        answer = connect(args).call("POST", "/v1/reload", accept=(200, 422))
    except ClientError as e:
        return fail(e)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0 if answer["ok"] else EXIT_FAILED
    if not answer["ok"]:
        print("reload refused; the running configuration is unchanged:")
        for problem in answer["problems"]:
            print(f"  {problem}")
        return EXIT_FAILED
    for key, label in (("added", "started (added)"), ("removed", "stopped (removed)"),
                       ("changed", "restarted (changed)"),
                       ("unchanged", "left running (unchanged)")):
        if answer[key]:
            print(f"{label}: {', '.join(answer[key])}")
    if not any(answer[k] for k in ("added", "removed", "changed", "unchanged")):
        print("no services before or after")
    if answer["needs_restart"]:
        print(f"changed, applied only when the daemon restarts: "
              f"[{'], ['.join(answer['needs_restart'])}]")
    return 0


def shutdown(args: argparse.Namespace) -> int:
    asked = time.time()
    try:
        client = connect(args)
        answer = client.call("POST", "/v1/shutdown")
    except ClientError as e:
        return fail(e)
    from procward.oshost import stop_wait

    pid, stopping = int(answer["pid"]), answer["stopping"]
    # The services' own budget, and the margin an OS manager is given for the rest.
    wait = stop_wait(float(answer["stop_budget"]))
    if not args.json:
        shown = ", ".join(stopping[:_SHOWN]) or "no services"
        if len(stopping) > _SHOWN:
            shown += f" and {len(stopping) - _SHOWN} more"
        print(f"stopping {shown}, then procward (pid {pid})", flush=True)
    gone = _gone(client, pid, since=asked, deadline=time.monotonic() + wait)
    if args.json:
        print(json.dumps({**answer, "stopped": gone}))
    elif gone:
        print("procward stopped" if client.local else "procward's API has closed")
    else:
        print(f"procward (pid {pid}) is still stopping after {wait:g} s; `procward status` "
              "or its events say which service holds it up", flush=True)
    return 0 if gone else EXIT_FAILED


def _gone(client: ApiClient, pid: int, *, since: float, deadline: float) -> bool:
    """Whether the daemon went away before ``deadline``: its process, when it runs here,
    else its API (which closes as the services stop)."""
    if client.local:
        import psutil

        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return True
        try:
            if process.create_time() > since:
                return True  # the pid is another program's now: the daemon is gone
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:
            pass  # another user's daemon: is_running() still tells

        def ended() -> bool:
            try:
                # An exited daemon its parent has not reaped yet is gone too (a zombie).
                return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True
            except psutil.AccessDenied:
                return not process.is_running()

        while not ended():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True
    while time.monotonic() < deadline:
        try:
            client.call("GET", "/healthz", timeout=1)
        except ClientError as e:
            if e.code == EXIT_UNREACHABLE:
                return True
        time.sleep(0.05)
    return False
