"""A name that matches no service: the answer lists the names there are and the nearest."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from api_daemon import toml_list

from procward.testing import python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs POSIX daemons")

SLEEPER = toml_list(python("import time; time.sleep(600)"))


def test_a_misspelled_name_is_answered_with_the_names_and_the_nearest(start_daemon: Any) -> None:
    """`procward restart wbe` exits 2, starts nothing, and says which services there are and
    which one was probably meant; the API's 404 carries the same message."""
    d = start_daemon(f"""
[services.web]
command = {SLEEPER}
start_seconds = 0.1
[services.worker]
command = {SLEEPER}
start_seconds = 0.1
instances = 2
""")
    rows = d.wait(lambda r: all(r.get(n, {}).get("state") == "running"
                                for n in ("web", "worker:0", "worker:1")), "all running")
    done = d.cli("restart", "wbe")
    assert done.returncode == 2
    assert 'no service or instance named \'wbe\' (did you mean "web"?)' in done.stderr
    assert "the services are: web, worker" in done.stderr
    assert d.status()["web"]["pid"] == rows["web"]["pid"], "nothing was restarted"
    code, body = d.http("GET", "/v1/services/worker:3")
    assert code == 404
    assert '(did you mean "worker:0"?)' in body["error"] or \
        '(did you mean "worker:1"?)' in body["error"]
    code, body = d.http("POST", "/v1/stop", body={"names": ["wrker"]})
    assert code == 404 and '(did you mean "worker"?)' in body["error"]
