"""The control plane end to end: a real daemon, the real CLI, a real HTTP client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from api_daemon import toml_list

from procward.testing import python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs POSIX daemons")

TICKER = """
import itertools, time
for i in itertools.count():
    print(f"line {i}", flush=True)
    time.sleep(0.05)
"""
# ~100-byte lines, fast: 600 of them fill a 4 KB log many times over.
PADDED = TICKER.replace('f"line {i}"', 'f"line {i} " + "x" * 90').replace("0.05", "0.002")
SLEEPER = python("import time; time.sleep(600)")


def _services(**extra: str) -> str:
    body = f"""
[services.ticker]
command = {toml_list(python(TICKER))}
start_seconds = 0.1

[services.sleeper]
command = {toml_list(SLEEPER)}
start_seconds = 0.1
instances = 2
"""
    for name, text in extra.items():
        body += f"\n[services.{name}]\n{text}\n"
    return body


def _running(*names: str) -> Any:
    return lambda rows: all(rows.get(n, {}).get("state") == "running" for n in names)


def test_status_table_and_json(start_daemon: Any) -> None:
    """`procward status` prints every instance as a table or JSON, one service's instances by
    name, and exits 2 for an unknown name."""
    d = start_daemon(_services())
    d.wait(_running("ticker", "sleeper:0", "sleeper:1"), "all running")
    table = d.cli("status")
    assert table.returncode == 0, table.stderr
    head, *rows = table.stdout.splitlines()
    for column in ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "HEALTH",
                   "CPU%", "MEM"):
        assert column in head
    assert {r.split()[0] for r in rows} == {"ticker", "sleeper:0", "sleeper:1"}
    assert all(r.split()[1] == "running" for r in rows)
    listed = json.loads(d.cli("status", "--json").stdout)["services"]
    by_name = {r["name"]: r for r in listed}
    assert by_name["ticker"]["pid"] == d.status()["ticker"]["pid"]
    assert by_name["ticker"]["memory_rss"] > 0
    one = json.loads(d.cli("status", "sleeper", "--json").stdout)["services"]
    assert [r["name"] for r in one] == ["sleeper:0", "sleeper:1"]
    missing = d.cli("status", "nosuch")
    assert missing.returncode == 2
    assert "nosuch" in missing.stderr


def test_start_stop_restart_by_name_and_all(start_daemon: Any) -> None:
    """Start, stop and restart act on the named services or instances, or on all, and each is an
    event naming the token that asked."""
    d = start_daemon(_services())
    rows = d.wait(_running("ticker", "sleeper:0", "sleeper:1"), "all running")
    first = {n: r["pid"] for n, r in rows.items()}

    out = d.cli("stop", "ticker")
    assert out.returncode == 0, out.stderr
    assert "ticker" in out.stdout
    rows = d.status()
    assert rows["ticker"]["state"] == "stopped"
    assert rows["sleeper:0"]["pid"] == first["sleeper:0"]

    assert d.cli("start", "ticker").returncode == 0
    d.wait(_running("ticker"), "ticker running again")

    assert d.cli("restart", "sleeper:1").returncode == 0
    rows = d.wait(_running("sleeper:1"), "sleeper:1 back")
    assert rows["sleeper:1"]["pid"] != first["sleeper:1"]
    assert rows["sleeper:0"]["pid"] == first["sleeper:0"]

    assert d.cli("stop", "--all").returncode == 0
    assert {r["state"] for r in d.status().values()} == {"stopped"}
    assert d.cli("start", "--all").returncode == 0
    d.wait(_running("ticker", "sleeper:0", "sleeper:1"), "all running again")

    assert d.cli("stop").returncode == 2  # neither names nor --all
    unknown = d.cli("restart", "ghost")
    assert unknown.returncode == 2 and "ghost" in unknown.stderr

    # Every control action is an event naming the token that asked.
    events = [json.loads(line) for line in
              (d.logs / "procward.events.jsonl").read_text().splitlines()]
    control = [e for e in events if e["kind"] == "control"]
    assert [e["action"] for e in control] == ["stop", "start", "restart", "stop", "start"]
    assert {e["by"] for e in control} == {"local-admin"}


def test_logs_last_lines_of_both_streams_or_one(start_daemon: Any) -> None:
    """`procward logs` sends the last N lines of a service's stdout and stderr, each line
    marked with its stream, or of one stream unmarked when asked; merged streams unmarked."""
    noisy = python("import sys, time\nprint('to out', flush=True)\n"
                   "print('to err', file=sys.stderr, flush=True)\ntime.sleep(600)")
    d = start_daemon(_services(
        noisy=f"command = {toml_list(noisy)}",
        merged=f"command = {toml_list(noisy)}\n[services.merged.logs]\nmerge_stderr = true"))
    log = d.logs / "ticker.out.log"
    deadline = time.monotonic() + 10
    while log.read_text().count("\n") < 12 if log.exists() else True:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = d.cli("logs", "ticker", "-n", "5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("stdout | line ") for line in lines)
    numbers = [int(line.split()[3]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert d.cli("logs", "ticker", "-n", "5", "--stdout").stdout.splitlines()[0].startswith(
        "line ")
    deadline = time.monotonic() + 10
    while "to err" not in d.cli("logs", "noisy", "--stderr").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "to err" not in d.cli("logs", "noisy", "--stdout").stdout
    assert d.cli("logs", "noisy").stdout.splitlines() == ["stdout | to out", "stderr | to err"]
    while "to err" not in d.cli("logs", "merged").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sorted(d.cli("logs", "merged").stdout.splitlines()) == ["to err", "to out"]


def test_logs_follow_goes_on_across_rotation(start_daemon: Any) -> None:
    """`logs -f` keeps every line, in order, marked stdout (both streams are followed),
    while the file is rotated under it."""
    d = start_daemon(f"""
[services.ticker]
command = {toml_list(python(PADDED))}
start_seconds = 0.1
[services.ticker.logs]
max_size = "4KB"
keep = 50
""")
    follower = subprocess.Popen(
        [sys.executable, "-m", "procward", "logs", "ticker", "-f", "-n", "0", "-c",
         str(d.config)], stdout=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    seen: list[int] = []
    try:
        while len(seen) < 600:
            line = follower.stdout.readline()
            assert line, "the follow stream ended"
            assert line.startswith("stdout | "), line
            seen.append(int(line.split()[3]))
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()
    rotated = list(d.logs.glob("ticker.out.log.*"))
    assert len(rotated) >= 3, "the test must cross several rotations"
    assert seen == list(range(seen[0], seen[0] + len(seen)))


def test_events_follow_streams_new_events(start_daemon: Any) -> None:
    """`procward events -f` streams events as they happen; without -f it prints the last N."""
    d = start_daemon(_services())
    d.wait(_running("ticker"), "ticker running")
    follower = subprocess.Popen(
        [sys.executable, "-m", "procward", "events", "-f", "--json", "-n", "0", "-c",
         str(d.config)], stdout=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    try:
        time.sleep(0.5)  # let the follower connect before the action it must see
        assert d.cli("restart", "ticker").returncode == 0
        kinds: list[tuple[str, Any]] = []
        while not any(k == "state" and e.get("state") == "running" for k, e in kinds):
            line = follower.stdout.readline()
            assert line
            event = json.loads(line)
            kinds.append((event["kind"], event))
        assert kinds[0][0] == "control"
        assert kinds[0][1]["action"] == "restart"
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()
    human = d.cli("events", "-n", "3")
    assert human.returncode == 0 and len(human.stdout.splitlines()) == 3


def test_reload_applies_only_the_difference(start_daemon: Any) -> None:
    """A reload starts what was added, stops what was removed, restarts what changed and leaves
    the rest running."""
    d = start_daemon(_services(gone=f"command = {toml_list(SLEEPER)}\nstart_seconds = 0.1"))
    before = d.wait(_running("ticker", "sleeper:0", "sleeper:1", "gone"), "all running")
    # ticker changes, gone goes, fresh comes, sleeper stays as it is.
    d.write(_services(fresh=f"command = {toml_list(SLEEPER)}\nstart_seconds = 0.1")
            .replace("start_seconds = 0.1\n\n[services.sleeper]",
                     "start_seconds = 0.2\n\n[services.sleeper]", 1))
    out = d.cli("reload", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    answer = json.loads(out.stdout)
    assert answer["ok"] is True
    assert answer["added"] == ["fresh"]
    assert answer["removed"] == ["gone"]
    assert answer["changed"] == ["ticker"]
    assert answer["unchanged"] == ["sleeper"]
    after = d.wait(_running("ticker", "fresh", "sleeper:0", "sleeper:1"), "reloaded")
    assert "gone" not in after
    assert after["sleeper:0"]["pid"] == before["sleeper:0"]["pid"]
    assert after["sleeper:1"]["pid"] == before["sleeper:1"]["pid"]
    assert after["ticker"]["pid"] != before["ticker"]["pid"]
    assert not psutil_alive(before["gone"]["pid"])
    human = d.cli("reload")
    assert "left running (unchanged): ticker, sleeper, fresh" in human.stdout


def test_a_bad_reload_changes_nothing_and_says_why(start_daemon: Any) -> None:
    """A reload of a bad file answers 422 with the problems and leaves every service as it was."""
    d = start_daemon(_services())
    before = d.wait(_running("ticker", "sleeper:0", "sleeper:1"), "all running")
    d.write(_services().replace('instances = 2', 'instances = "two"')
            + '\n[services.extra]\ncommand = "sleep 1"\n')
    out = d.cli("reload")
    assert out.returncode == 1
    assert "unchanged" in out.stdout
    assert "procward.toml:" in out.stdout and "services.sleeper.instances" in out.stdout
    code, answer = d.http("POST", "/v1/reload")
    assert code == 422 and answer["ok"] is False and answer["problems"]
    after = d.status()
    assert set(after) == set(before)
    assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in before.items()}


def test_sighup_reloads(start_daemon: Any) -> None:
    """SIGHUP to the daemon reloads its configuration file."""
    d = start_daemon(_services())
    d.wait(_running("ticker"), "ticker running")
    d.write(_services(fresh=f"command = {toml_list(SLEEPER)}\nstart_seconds = 0.1"))
    os.kill(d.proc.pid, signal.SIGHUP)
    d.wait(_running("fresh"), "the added service running after SIGHUP")


def psutil_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_tokens_and_roles(start_daemon: Any) -> None:
    """Every /v1 path needs a known token, a read token may only look, revoked tokens stop
    working, and refusals are counted events."""
    d = start_daemon(_services())
    assert d.http("GET", "/healthz", token=None) == (200, {"status": "ok"})
    code, body = d.http("GET", "/v1/services", token=None)
    assert code == 401 and "token" in body["error"]
    assert d.http("GET", "/v1/services", token="pw_not-a-real-token")[0] == 401
    assert d.http("POST", "/v1/stop", token=None, body={"all": True})[0] == 401
    # Refused before anything else is looked at: no parameter check, no service name.
    assert d.http("GET", "/v1/services/ticker/logs?n=x", token=None)[0] == 401
    assert d.http("GET", "/v1/services/nosuch", token=None)[0] == 401

    made = d.cli("token", "new", "grafana", "--role", "read")
    assert made.returncode == 0, made.stderr
    reader = made.stdout.strip()
    stored = (d.state / "tokens.json").read_text()
    assert reader not in stored, "tokens are kept only as hashes"
    assert oct((d.state / "tokens.json").stat().st_mode & 0o777) == "0o600"
    assert oct((d.state / "admin.token").stat().st_mode & 0o777) == "0o600"
    # The address holds no secret: another user, with a token of their own, finds it.
    assert (d.state / "api.json").stat().st_mode & 0o004
    assert d.http("GET", "/v1/services", token=reader)[0] == 200
    code, body = d.http("POST", "/v1/stop", token=reader, body={"names": ["ticker"]})
    assert code == 403 and "admin" in body["error"]
    denied = d.cli("stop", "ticker", "--token", reader)
    assert denied.returncode == 1 and "admin" in denied.stderr
    assert d.cli("status", "--token", reader).returncode == 0

    admin = d.cli("token", "new", "ops", "--role", "admin").stdout.strip()
    assert d.http("POST", "/v1/restart", token=admin, body={"names": ["ticker"]})[0] == 200
    assert d.cli("token", "revoke", "ops").returncode == 0
    assert d.http("GET", "/v1/services", token=admin)[0] == 401
    listed = d.cli("token", "list").stdout
    assert "grafana\tread" in listed and "ops" not in listed

    events = [json.loads(line) for line in
              (d.logs / "procward.events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["kind"] == "auth_failed"]
    assert len(failed) >= 4
    assert [e["attempts"] for e in failed][:3] == [1, 2, 3]  # counted per address
    restarted = [e for e in events if e["kind"] == "control" and e["action"] == "restart"]
    assert restarted[-1]["by"] == "ops"


def test_url_and_token_reach_a_daemon_without_the_config(start_daemon: Any,
                                                         tmp_path: Path) -> None:
    """PROCWARD_URL and PROCWARD_TOKEN reach a daemon from any folder; a URL without a token is a
    usage error."""
    d = start_daemon(_services())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PROCWARD_URL": d.url, "PROCWARD_TOKEN": d.token}
    out = subprocess.run([sys.executable, "-m", "procward", "status", "--json"],
                         check=False, capture_output=True, text=True, env=env, cwd=elsewhere,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert {r["service"] for r in json.loads(out.stdout)["services"]} == {"ticker", "sleeper"}
    no_token = subprocess.run([sys.executable, "-m", "procward", "status", "--url", d.url],
                              check=False, capture_output=True, text=True, cwd=elsewhere,
                              timeout=30,
                              env={k: v for k, v in os.environ.items()
                                   if k != "PROCWARD_TOKEN"})
    assert no_token.returncode == 2 and "--token" in no_token.stderr


def test_cli_says_when_no_daemon_runs(tmp_path: Path) -> None:
    """With no daemon at the configured or given address the CLI exits 3 and says so."""
    cfg = tmp_path / "procward.toml"
    cfg.write_text('[services.a]\ncommand = "sleep 1"\n')
    out = subprocess.run([sys.executable, "-m", "procward", "status", "-c", str(cfg)],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert "procward run" in out.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run([sys.executable, "-m", "procward", "status", "--url",
                          f"http://127.0.0.1:{port}", "--token", "x"],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 3 and "does not answer" in out.stderr


def test_a_port_in_use_fails_the_start_before_any_service(tmp_path: Path) -> None:
    """An API port in use fails the start, naming the address, before any service is spawned."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        marker = tmp_path / "started"
        touch = f"open({str(marker)!r}, 'w')"
        cfg = tmp_path / "procward.toml"
        cfg.write_text(f'[api]\nlisten = "127.0.0.1:{port}"\n[services.a]\n'
                       f"command = {toml_list(python(touch))}\n")
        out = subprocess.run([sys.executable, "-m", "procward", "run", "-c", str(cfg)],
                             check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"127.0.0.1:{port}" in out.stderr and "listen" in out.stderr
    assert not marker.exists(), "no service may start when the API cannot"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("listen", ["[::1]:0", "[::]:0"])
def test_ipv6_listen_addresses(start_daemon: Any, listen: str) -> None:
    """The API listens on an IPv6 address, and on [::] on every address, IPv4 ones too."""
    d = start_daemon(_services(), api=f'listen = "{listen}"\nallow_insecure = true')
    assert d.url.startswith("http://[::1]:")
    out = d.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    if listen.startswith("[::]"):
        port = int(d.url.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as resp:
            assert resp.status == 200


def test_listening_beyond_loopback_needs_tls(tmp_path: Path) -> None:
    """Listening beyond loopback without TLS or allow_insecure is a configuration error."""
    cfg = tmp_path / "procward.toml"
    cfg.write_text('[api]\nlisten = "0.0.0.0:9771"\n[services.a]\ncommand = "sleep 1"\n')
    out = subprocess.run([sys.executable, "-m", "procward", "run", "-c", str(cfg)],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "procward.toml:1 api:" in out.stderr and "tls_cert" in out.stderr
    assert "allow_insecure" in out.stderr


def test_metrics(start_daemon: Any) -> None:
    """/metrics gives each instance's state, restarts, CPU, memory and log byte counters, and
    needs a token."""
    d = start_daemon(_services())
    d.wait(_running("ticker", "sleeper:0"), "running")
    time.sleep(0.3)
    code, text = d.http("GET", "/metrics")
    assert code == 200
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['procward_service_up{instance="ticker",service="ticker"}'] == 1.0
    assert samples['procward_service_memory_rss_bytes{instance="ticker",service="ticker"}'] > 0
    assert samples['procward_log_bytes_total{instance="ticker",service="ticker",'
                   'stream="stdout"}'] > 0
    assert 'procward_log_dropped_bytes_total{instance="ticker",service="ticker",' \
           'stream="stdout"}' in samples
    assert 'procward_service_cpu_seconds_total{instance="sleeper:1",service="sleeper"}' in samples
    assert 'procward_service_restarts_total{instance="sleeper:1",service="sleeper"}' in samples
    assert d.http("GET", "/metrics", token=None)[0] == 401


def test_concurrent_status_requests_all_answer(start_daemon: Any) -> None:
    """Fifty status requests at once are all answered."""
    d = start_daemon(_services())
    results: list[int] = []

    def ask() -> None:
        results.append(d.http("GET", "/v1/services")[0])

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 50


def test_status_shows_health(start_daemon: Any) -> None:
    """A service with a health check reports it in status (table and JSON); one without, none."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = python(f"import http.server as h; h.HTTPServer(('127.0.0.1', {port}), "
                    "h.SimpleHTTPRequestHandler).serve_forever()")
    d = start_daemon(_services(web=f"command = {toml_list(server)}\nstart_seconds = 0.1\n"
                                   f'[services.web.health]\nhttp = "http://127.0.0.1:{port}/"\n'
                                   'interval = "0.2s"\nstart_period = "5s"'))
    rows = d.wait(lambda r: r.get("web", {}).get("health") == "healthy", "web healthy")
    assert rows["ticker"]["health"] is None
    table = d.cli("status", "web").stdout.splitlines()
    assert "healthy" in table[1].split()


def test_the_cli_finds_its_daemon_where_the_file_says_each_time(start_daemon: Any) -> None:
    """The state dir is read from the file at every command, ${VAR} included: a change
    of the variable sends the CLI to another state dir, where no daemon runs."""
    d = start_daemon(_services())
    d.write(_services() + '\n[procward]\nstate_dir = "${WHERE:-state}"\n')
    assert d.cli("status", env={"WHERE": "state"}).returncode == 0
    moved = d.cli("status", env={"WHERE": "elsewhere"})
    assert moved.returncode == 3 and str(d.root / "elsewhere") in moved.stderr
