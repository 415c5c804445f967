"""``procward status``: a table (or JSON) of every instance of the running daemon."""

from __future__ import annotations

import argparse
import json
from typing import Any

from procward.cli._client import ClientError, add_client_options, connect, fail, segment

__all__ = ["format_table", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status", help="show the state of the running services",
        description="Show each instance: state, pid, uptime, restarts, last exit, health, "
                    "CPU and memory of its main process.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="services or instances (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_client_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        client = connect(args)
        if args.names:
            rows: list[dict[str, Any]] = []
            for name in args.names:
                rows.extend(client.call("GET", f"/v1/services/{segment(name)}")["services"])
        else:
            rows = client.call("GET", "/v1/services")["services"]
    except ClientError as e:
        return fail(e)
    if args.json:
        print(json.dumps({"services": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n}B"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}GiB"


def _last_exit(row: dict[str, Any]) -> str:
    if row.get("exit_signal"):
        return f"signal {row['exit_signal']}"
    if row.get("exit_code") is not None:
        return f"code {row['exit_code']}"
    return "-"


_ALIVE = ("starting", "running", "stopping")


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "HEALTH", "CPU%", "MEM"]
    body = [[
        str(r["name"]), str(r["state"]),
        str(r["pid"]) if r["pid"] and r["state"] in _ALIVE else "-", _duration(r.get("uptime")),
        str(r.get("restarts", 0)), _last_exit(r), str(r.get("health") or "-"),
        "-" if r.get("cpu_percent") is None else f"{r['cpu_percent']:.1f}",
        _size(r.get("memory_rss")),
    ] for r in rows]
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [head, *body]]
    if not rows:
        lines.append("(no services)")
    return "\n".join(lines)
