"""Fixtures of the control-plane tests (the daemon helper lives in api_daemon.py)."""

from api_daemon import start_daemon

__all__ = ["start_daemon"]
