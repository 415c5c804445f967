"""Schemathesis against the OpenAPI document a real daemon serves.

Every operation gets generated input, with the admin token and without one;
each answer must be no 5xx and must match the document (status code,
content type, body schema). ``follow`` is forced off: a followed stream never
ends, and the streaming code is tested on its own in test_control.py. With the
admin token, POST /v1/shutdown is left out (it would end the daemon under test);
test_shutdown.py holds its answer to the document.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import schemathesis
from api_daemon import RunningDaemon, toml_list
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import ignored_auth

from procward.testing import python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs POSIX daemons")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("schema")
    web = python("import time\nwhile True: print('hi', flush=True); time.sleep(0.2)")
    d = RunningDaemon(root, f"""
[services.web]
command = {toml_list(web)}
start_seconds = 0.1
[services.worker]
command = {toml_list(python("import time; time.sleep(600)"))}
start_seconds = 0.1
instances = 2
""")
    yield d
    d.stop()


def _operations(d: RunningDaemon, *, shutdown: bool) -> list[Any]:
    schema = schemathesis.openapi.from_url(d.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if shutdown or op.path != "/v1/shutdown"]


@pytest.mark.parametrize("authenticated", [True, False], ids=["admin-token", "no-token"])
def test_every_operation_keeps_its_contract(daemon: RunningDaemon, authenticated: bool) -> None:
    """Generated requests to every operation, with and without a token, get no 5xx and answers
    that match the document."""
    operations = _operations(daemon, shutdown=not authenticated)
    assert len(operations) >= 10, "the document lists every operation"
    headers = {"Authorization": f"Bearer {daemon.token}"} if authenticated else {}

    @settings(max_examples=60 if authenticated else 25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        op = data.draw(st.sampled_from(operations))
        case = data.draw(op.as_strategy())
        if case.query and "follow" in case.query:
            case.query["follow"] = "false"
        if not authenticated and case.headers:
            # Generated bearer values are wrong tokens, answered ever more slowly
            # (test_control.py checks that); "no token" means none at all.
            case.headers.pop("Authorization", None)
        # ignored_auth replays each request with a wrong token, which the daemon
        # answers ever more slowly; the admin pass keeps it, the no-token pass
        # (where every answer is already the 401 it checks for) leaves it out.
        excluded = [] if authenticated else [ignored_auth]
        response = case.call_and_validate(base_url=daemon.url, headers=headers, timeout=30,
                                          excluded_checks=excluded)
        assert response.status_code < 500

    check()
