"""A native service written with the procward SDK: the design's example, runnable.

    python report_sync.py run          # foreground; Ctrl+C stops it
    python report_sync.py install      # register with the SCM / systemd / launchd
    python report_sync.py status | stop | start | uninstall
"""

from __future__ import annotations

import datetime
import os
import threading

import procward

svc = procward.Service(
    "ReportSync",
    display_name="Report sync",
    description="Copies the day's reports every few seconds (a procward SDK example)",
)

INTERVAL = float(os.environ.get("REPORT_SYNC_INTERVAL", "5"))


def sync_once() -> None:
    # A real service would copy files or call an API here.
    print(f"{datetime.datetime.now():%H:%M:%S} synced", flush=True)
    if os.environ.get("REPORT_SYNC_FAIL"):
        raise RuntimeError("the report share is unreachable")


@svc.main
def run(stop: threading.Event) -> None:  # stop: set on stop/shutdown/Ctrl+C
    sync_once()
    while not stop.wait(INTERVAL):
        sync_once()
    print("stopped cleanly", flush=True)


if __name__ == "__main__":
    svc.cli()  # install | uninstall | start | stop | status | run
