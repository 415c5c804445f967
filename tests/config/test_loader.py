"""load(): every mistake reported at once with file, line and key; what a load resolves."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from procward._os import default_config_path
from procward.config import find_config_path, load
from procward.errors import ConfigError

Problem = tuple[int | None, str, str]


def write(folder: Path, text: str, name: str = "procward.toml") -> Path:
    """Write ``text`` (dedented; line 1 is the first line after the opening quotes)."""
    path = folder / name
    path.write_text(textwrap.dedent(text).removeprefix("\n"), encoding="utf-8")
    return path


def problems(path: Path, *, profile: str | None = None,
             environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(path, profile=profile, environ=environ or {})
    return [(p.line, p.key, p.message) for p in info.value.problems]


# -- a valid file ----------------------------------------------------------------


def test_valid_file_loads_with_defaults_resolved(tmp_path: Path) -> None:
    """A minimal file loads; the source, log_dir, state_dir and cwd become absolute paths."""
    path = write(tmp_path, """
        [services.web]
        command = "python -m http.server 8000"
    """)
    config = load(path, environ={})
    assert config.source == path
    assert config.procward.log_dir == tmp_path / "logs"
    assert config.procward.state_dir == tmp_path / "state"
    web = config.services["web"]
    assert web.command == ["python", "-m", "http.server", "8000"]
    assert web.cwd == tmp_path
    assert web.restart == "on-failure"


def test_relative_paths_resolve_against_the_file_folder(tmp_path: Path, monkeypatch:
                                                        pytest.MonkeyPatch) -> None:
    """Relative paths are taken from the config file's folder, not the current directory."""
    conf = tmp_path / "conf"
    conf.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    absolute = tmp_path / "abs"
    write(conf, f"""
        [procward]
        log_dir = "../var/log"
        state_dir = {str(absolute)!r}

        [api]
        tls_cert = "certs/server.pem"
        tls_key = "certs/server.key"
        client_ca = "./certs/ca.pem"

        [services.web]
        command = ["x"]
        cwd = "app"
    """)
    config = load(Path("..") / "conf" / "procward.toml", environ={})
    assert config.source == conf / "procward.toml"
    assert config.procward.log_dir == tmp_path / "var" / "log"
    assert config.procward.state_dir == absolute
    assert config.api.tls_cert == conf / "certs" / "server.pem"
    assert config.api.tls_key == conf / "certs" / "server.key"
    assert config.api.client_ca == conf / "certs" / "ca.pem"
    assert config.services["web"].cwd == conf / "app"


# -- syntax and file errors ------------------------------------------------------


def test_toml_syntax_error_is_one_problem_with_its_line(tmp_path: Path) -> None:
    """A TOML syntax error yields exactly one problem at the line tomllib names."""
    path = write(tmp_path, """
        [services.web]
        command = ["x"]
        restart = always
    """)
    [(line, key, message)] = problems(path)
    assert line == 3
    assert key == ""
    assert message.startswith("TOML syntax error: ")


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    """A file that does not exist raises ConfigError naming it, not FileNotFoundError."""
    assert problems(tmp_path / "nope.toml") == [(None, "", "no such file")]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 file with a BOM (as Notepad may save it) loads."""
    path = tmp_path / "procward.toml"
    path.write_bytes(b'\xef\xbb\xbf[services.web]\ncommand = ["x"]\n')
    assert list(load(path, environ={}).services) == ["web"]


# -- model errors become plain messages ------------------------------------------


def test_problem_renders_file_line_key_message(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A problem prints as "file:line key: message", with the file as the user named it."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, """
        [services.web]
        command = ["x"]
        restart = "sometimes"
    """)
    with pytest.raises(ConfigError) as info:
        load("procward.toml", environ={})
    assert [str(p) for p in info.value.problems] == [
        'procward.toml:3 services.web.restart: expected one of always, on-failure, never, '
        'got "sometimes"'
    ]


# Each file below is wrong in the ways listed: (line, key, message), in file order.
PROBLEMS = [
    pytest.param("""
        [procward]
        log_level = "loud"

        [services.web]
        command = ["x"]
        restrat = "always"
        instances = "abc"
        stop_timeout = "soon"
        memory_max = "lots"
        autostart = "maybe"

        [services.worker]
        cwd = "."
    """, [
        (2, "procward.log_level", 'expected one of debug, info, warning, error, got "loud"'),
        (6, "services.web.restrat", 'unknown key "restrat" (did you mean "restart"?)'),
        (7, "services.web.instances", 'expected an integer, got "abc"'),
        (8, "services.web.stop_timeout",
         'expected a duration such as "250ms", "5s", "2m" or "1h", got "soon"'),
        (9, "services.web.memory_max",
         'expected a size such as "50MB", "1GiB" or a number of bytes, got "lots"'),
        (10, "services.web.autostart", 'expected true or false, got "maybe"'),
        (12, "services.worker.command", "required key missing"),
    ], id="every problem is reported at once"),
    pytest.param("""
        [service.web]
        command = ["x"]
    """, [(1, "service", 'unknown key "service" (did you mean "services"?)')],
                 id="unknown top level table suggests the right one"),
    pytest.param("""
        [services.web]
        command = []
        instances = 0
        logs = { keep = -1 }
    """, [
        (2, "services.web.command", "must not be empty"),
        (3, "services.web.instances", "must be at least 1, got 0"),
        (4, "services.web.logs.keep", "must be at least 0, got -1"),
    ], id="bounds and empty lists read plainly"),
    pytest.param("""
        [services.web]
        command = ["x"]

        backoff = { initial = "1s", max = "later" }
    """, [
        (4, "services.web.backoff.max",
         'expected a duration such as "250ms", "5s", "2m" or "1h", got "later"'),
    ], id="inline table keys point at their line"),
    pytest.param("""
        [services.web]
        command = ["x"]
        start_limit.burst = 0
    """, [(3, "services.web.start_limit.burst", "must be at least 1, got 0")],
                 id="dotted keys point at their line"),
    pytest.param("""
        [services.web]
        command = [
            "python",
            3,
        ]
    """, [(4, "services.web.command.1", "expected a string, got 3")],
                 id="multiline array element points at its own line"),
    pytest.param("""
        [services.web]
        command = ["x"]

        [[services.web.alerts]]
        pattern = "ERROR"

        [[services.web.alerts]]
        pattern = "WARN"
        stream = "stdxxx"
        threshold = 0

        [[services.web.alerts]]
        stream = "stderr"
    """, [
        (9, "services.web.alerts.1.stream",
         'expected one of stdout, stderr, both, got "stdxxx"'),
        (10, "services.web.alerts.1.threshold", "must be at least 1, got 0"),
        (12, "services.web.alerts.2.pattern", "required key missing"),
    ], id="arrays of tables are indexed in keys"),
    pytest.param("""
        [services.web]
        command = ["x"]

        [services.web.health]
        http = "http://127.0.0.1:8000/"
        tcp = "127.0.0.1:8000"
    """, [
        (4, "services.web.health",
         "give exactly one probe: http, tcp, command or heartbeat (got http, tcp)"),
    ], id="model rule errors point at the table"),
    pytest.param("""
        [services.web]
        command = ["x"]
        env = { DB = "${DATABASE_URL}" }

        [services.api]
        command = ["python", "${APP}"]
    """, [
        (3, "services.web.env.DB",
         "environment variable DATABASE_URL is not set (give a default with "
         "${DATABASE_URL:-value})"),
        (6, "services.api.command.1",
         "environment variable APP is not set (give a default with ${APP:-value})"),
    ], id="unset variable is a problem at its line"),
    pytest.param("""
        [services.web]
        command = ["x"]
        restart = "${RESTART:-sometimes}"
    """, [
        (3, "services.web.restart", 'expected one of always, on-failure, never, got "sometimes"'),
    ], id="interpolated value is validated"),
    pytest.param("""
        [services.web]
        command = ["x"]
        instances = "${WORKERS}"
    """, [
        (3, "services.web.instances",
         "environment variable WORKERS is not set (give a default with ${WORKERS:-value})"),
    ], id="unset variable is reported once"),
    pytest.param("""
        [services.web]
        command = ["x"]
        depends_on = ["database"]

        [services.databse]
        command = ["y"]
    """, [
        (3, "services.web.depends_on.0", 'unknown service "database" (did you mean "databse"?)'),
    ], id="unknown dependency is a problem"),
    pytest.param("""
        [services.web]
        command = ["x"]
        depends_on = ["api"]

        [services.api]
        command = ["x"]
        depends_on = ["db", "web"]

        [services.db]
        command = ["x"]
        depends_on = ["db"]
    """, [
        (3, "services.web.depends_on", "dependency cycle: web -> api -> web"),
        (11, "services.db.depends_on", "dependency cycle: db -> db"),
    ], id="dependency cycle is named"),
    pytest.param("""
        [services.web]
        command = ["x"]

        [[services.web.alerts]]
        pattern = "ERROR"
        actions = ["ops", "restart", "pager"]

        [alerts.sinks.ops]
        type = "command"
        command = "notify-send procward"
    """, [
        (6, "services.web.alerts.0.actions.2",
         'unknown alert sink "pager"; define it as [alerts.sinks.pager]'),
    ], id="unknown alert sink is a problem"),
    pytest.param(r"""
        [services.web]
        command = ["x"]

        [[services.web.alerts]]
        pattern = '(?u)caf\u00e9'
    """, [(5, "services.web.alerts.0.pattern",
           "not a valid regular expression: bad inline flags: cannot use 'u' flag with a "
           "bytes pattern at position 3")],
                 id="an alert pattern as the matcher compiles it, on bytes"),
    pytest.param("""
        [api]
        listen = "localhost"
        tls_cert = "server.pem"
    """, [(2, "api.listen", 'expected "host:port" such as "127.0.0.1:8080", got "localhost"')],
                 id="listen needs a port"),
    pytest.param("""
        [api]
        listen = "[::1]:9771"
        tls_cert = "server.pem"
    """, [(1, "api", "give both tls_cert and tls_key, or neither")],
                 id="a certificate needs its key"),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEMS)
def test_problems_name_line_key_and_what_is_wrong(tmp_path: Path, text: str,
                                                  expected: list[Problem]) -> None:
    """Every problem of a file comes back at once, each at its line and dotted key, with a
    message that says what was expected and what was given."""
    assert problems(write(tmp_path, text)) == expected


def test_table_given_where_an_array_of_tables_belongs(tmp_path: Path) -> None:
    """Writing [services.x.alerts] instead of [[...]] says to use two brackets."""
    path = write(tmp_path, """
        [services.web]
        command = ["x"]

        [services.web.alerts]
        pattern = "ERROR"
    """)
    [(line, key, message)] = problems(path)
    assert (line, key) == (4, "services.web.alerts")
    assert "[[services.web.alerts]]" in message


def test_lines_after_a_multiline_string_stay_right(tmp_path: Path) -> None:
    """A multi-line string neither hides the keys after it nor shifts their lines."""
    path = write(tmp_path, '''
        [services.web]
        command = ["python", "-c", """
        import time
        [not.a.table]
        """]
        stop_signal = "LOUD"
    ''')
    [(line, key, message)] = problems(path)
    assert (line, key) == (6, "services.web.stop_signal")
    assert message.startswith('expected one of TERM, INT, ') and message.endswith('got "LOUD"')


def test_api_beyond_loopback_needs_tls(tmp_path: Path) -> None:
    """Listening beyond loopback without TLS or allow_insecure is a problem at [api]."""
    path = write(tmp_path, """
        [api]
        listen = "0.0.0.0:9771"
    """)
    [(line, key, message)] = problems(path)
    assert (line, key) == (1, "api")
    assert "tls_cert" in message and "allow_insecure" in message
    write(tmp_path, """
        [api]
        listen = "0.0.0.0:9771"
        allow_insecure = true
    """)
    assert load(path, environ={}).api.allow_insecure


# -- interpolation ---------------------------------------------------------------


def test_interpolation_in_strings_lists_and_inline_tables(tmp_path: Path) -> None:
    """${VAR} and ${VAR:-default} fill every string value; $$ is a literal dollar."""
    path = write(tmp_path, """
        [services.web]
        command = ["${PY}", "-m", "http.server", "${PORT:-8000}"]
        env = { GREETING = "${WHO:-world}", PRICE = "$$5", HOME_AS_IS = "$HOME", EMPTY = "${E:-x}" }
        instances = "${WORKERS:-2}"
    """)
    config = load(path, environ={"PY": "python3", "E": ""})
    web = config.services["web"]
    assert web.command == ["python3", "-m", "http.server", "8000"]
    assert web.env == {"GREETING": "world", "PRICE": "$5", "HOME_AS_IS": "$HOME", "EMPTY": "x"}
    assert web.instances == 2


def test_set_variables_win_over_defaults(tmp_path: Path) -> None:
    """A set, non-empty variable replaces its ${VAR:-default}."""
    path = write(tmp_path, """
        [services.web]
        command = "serve --port ${PORT:-8000}"
    """)
    config = load(path, environ={"PORT": "9000"})
    assert config.services["web"].command == ["serve", "--port", "9000"]


def test_keys_are_not_interpolated(tmp_path: Path) -> None:
    """A ${...} in a key stays as written (only values are interpolated)."""
    path = write(tmp_path, """
        [services.web]
        command = ["x"]
        env = { "${NAME}" = "v" }
    """)
    config = load(path, environ={"NAME": "changed"})
    assert config.services["web"].env == {"${NAME}": "v"}


def test_malformed_interpolation_is_a_problem(tmp_path: Path) -> None:
    """A "${" that is not ${NAME} or ${NAME:-default} is reported, pointing to $$."""
    path = write(tmp_path, """
        [services.web]
        command = ["echo", "${not closed"]
    """)
    [(line, key, message)] = problems(path)
    assert (line, key) == (2, "services.web.command.1")
    assert "$$" in message


# -- profiles --------------------------------------------------------------------

PROFILED = """
    [procward]
    log_level = "info"

    [services.web]
    command = [
        "serve",
        "--dev",
    ]
    env = { MODE = "dev", KEEP = "yes" }

    [profiles.prod.procward]
    log_level = "warning"

    [profiles.prod.services.web]
    command = ["serve", 8]
    env = { MODE = "prod" }

    [profiles.prod.services.extra]
    restart = "never"

    [profiles.fine.services.web]
    command = ["serve", "--fine"]
    env = { MODE = "fine" }
"""


def test_profile_overlays_tables_and_replaces_values(tmp_path: Path) -> None:
    """A profile merges tables key by key and replaces arrays and scalars whole."""
    path = write(tmp_path, PROFILED)
    config = load(path, profile="fine", environ={})
    assert config.services["web"].command == ["serve", "--fine"]
    assert config.services["web"].env == {"MODE": "fine", "KEEP": "yes"}
    assert config.procward.log_level == "info"
    assert list(config.services) == ["web"]


def test_no_profile_leaves_the_file_alone(tmp_path: Path) -> None:
    """Without a profile the [profiles] tables are ignored and never reach the model."""
    path = write(tmp_path, PROFILED)
    config = load(path, environ={})
    assert config.services["web"].command == ["serve", "--dev"]
    assert not hasattr(config, "profiles")


def test_profile_from_environment(tmp_path: Path) -> None:
    """$PROCWARD_PROFILE chooses the profile when none is passed."""
    path = write(tmp_path, PROFILED)
    config = load(path, environ={"PROCWARD_PROFILE": "fine"})
    assert config.services["web"].env["MODE"] == "fine"


def test_problem_from_a_profile_points_into_the_profile(tmp_path: Path) -> None:
    """A bad value that came from a profile is reported at the profile's line."""
    path = write(tmp_path, PROFILED)
    assert problems(path, profile="prod") == [
        (15, "services.web.command.1", "expected a string, got 8"),
        (18, "services.extra.command", "required key missing"),
    ]


def test_unknown_profile_is_a_problem(tmp_path: Path) -> None:
    """Naming a profile the file does not define is a problem suggesting the closest one."""
    path = write(tmp_path, PROFILED)
    [(_, key, message)] = problems(path, profile="prd")
    assert key == "profiles"
    assert message == 'unknown profile "prd" (did you mean "prod"?); this file defines fine, prod'


# -- env_file --------------------------------------------------------------------


def test_env_file_merges_under_env(tmp_path: Path) -> None:
    """env_file variables are added to env; keys written in env win over the file."""
    (tmp_path / "app.env").write_text(textwrap.dedent("""
        # a comment

        export TOKEN=abc
        PORT=1
        QUOTED="two words # kept"
        SINGLE='$not_expanded'
        BARE=value  # comment
    """), encoding="utf-8")
    path = write(tmp_path, """
        [services.web]
        command = ["x"]
        env_file = "app.env"
        env = { PORT = "8000" }
    """)
    web = load(path, environ={}).services["web"]
    assert web.env_file == tmp_path / "app.env"
    assert web.env == {
        "TOKEN": "abc",
        "PORT": "8000",
        "QUOTED": "two words # kept",
        "SINGLE": "$not_expanded",
        "BARE": "value",
    }


def test_missing_env_file_is_a_problem_at_its_line(tmp_path: Path) -> None:
    """An env_file that does not exist is reported at the env_file line."""
    path = write(tmp_path, """
        [services.web]
        command = ["x"]
        env_file = "missing.env"
    """)
    assert problems(path) == [
        (3, "services.web.env_file", f"no such file: {tmp_path / 'missing.env'}"),
    ]


def test_bad_env_file_line_is_a_problem(tmp_path: Path) -> None:
    """A line in the env_file that is not KEY=VALUE is reported with its own line number."""
    (tmp_path / ".env").write_text("A=1\nnot a variable\n", encoding="utf-8")
    path = write(tmp_path, """
        [services.web]
        command = ["x"]
        env_file = ".env"
    """)
    [(line, key, message)] = problems(path)
    assert (line, key) == (3, "services.web.env_file")
    assert message.startswith(f"{tmp_path / '.env'}:2: expected KEY=VALUE")


# -- what spans services ---------------------------------------------------------


def test_invalid_service_names_are_problems(tmp_path: Path) -> None:
    """Service names with spaces, colons or a leading dash are each reported at their table."""
    path = write(tmp_path, """
        [services."my web"]
        command = ["x"]

        [services."web:0"]
        command = ["x"]

        [services.-web]
        command = ["x"]

        [services.ok_name-1]
        command = ["x"]
    """)
    found = problems(path)
    assert [(line, key) for line, key, _ in found] == [
        (1, 'services."my web"'),
        (4, 'services."web:0"'),
        (7, "services.-web"),
    ]
    assert all("letters, digits" in message for _, _, message in found)


# -- finding the file ------------------------------------------------------------


def test_find_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-c wins, then $PROCWARD_CONFIG, then ./procward.toml, then the platform default."""
    monkeypatch.chdir(tmp_path)
    env = {"PROCWARD_CONFIG": "from-env.toml"}
    assert find_config_path("given.toml", env) == Path("given.toml")
    assert find_config_path(None, env) == Path("from-env.toml")
    assert find_config_path(None, {}) == default_config_path({})
    (tmp_path / "procward.toml").write_text("", encoding="utf-8")
    assert find_config_path(None, {}) == Path("procward.toml")


def test_default_config_path_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default lives in /etc/procward, or under %ProgramData% on Windows."""
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_config_path({}) == Path("/etc/procward/procward.toml")
    monkeypatch.setattr(sys, "platform", "win32")
    assert default_config_path({"ProgramData": "D:" + os.sep + "Data"}) == Path(
        "D:" + os.sep + "Data", "procward", "procward.toml"
    )

