"""An SDK service for the Wine tests: ``python.exe service_cli_sdk.py install|host|...``.

The test copies this script into a folder of its own, beside a JSON file of the
same stem (``service_cli_sdk.json``: ``{"name": ..., "out": ...}``), since the
command the SCM runs is ``python.exe SCRIPT host`` and Wine passes services no
environment of their own. Each run of the function appends to ``out``: ``started
PID`` when it begins, ``tick`` while it waits, ``stopped PID`` once ``stop`` is set.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import procward

SETTINGS = json.loads(Path(__file__).with_suffix(".json").read_text(encoding="utf-8"))
OUT = Path(SETTINGS["out"])

svc = procward.Service(SETTINGS["name"], display_name="SDK under test",
                       description="an SDK service the Wine tests install", stop_timeout=10)


def say(line: str) -> None:
    with OUT.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


@svc.main
def run(stop: threading.Event) -> None:
    say(f"started {os.getpid()}")
    while not stop.wait(0.2):
        say("tick")
    say(f"stopped {os.getpid()}")


if __name__ == "__main__":
    svc.cli()
