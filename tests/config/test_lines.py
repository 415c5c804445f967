"""The line mapper: every key path of a TOML text mapped to the line that writes it."""

from __future__ import annotations

import tomllib

from procward.config._lines import format_key, key_lines, line_for

DOC = '''\
# a comment with = and [brackets]
title = "x # not a comment"

[procward]
log_dir = "logs"   # trailing comment
a."b.c" . d = 1

[services.web]
command = [
  "python",   # first
  'x = [1]',
]
backoff = { initial = "1s", max = "1m" }
nested = { a = { b = [1, { c = 2 }] } }
text = """
line one
[not.a.table]
"""
after_text = true
quoted = \'\'\'it's\'\'\'\'\'
after_quoted = 1
when = 1979-05-27 07:32:00Z

[[services.web.alerts]]
pattern = "ERROR"

[[services.web.alerts]]
pattern = "WARN"

[services.web.alerts.extra]
k = 1

[services."my web"]
command = "x"
'''


def test_doc_is_valid_toml() -> None:
    """The fixture itself is TOML tomllib accepts, so the mapper sees only valid input."""
    tomllib.loads(DOC)


def test_tables_keys_and_dotted_keys() -> None:
    """Headers, plain keys and dotted/quoted keys map to the line that writes them."""
    lines = key_lines(DOC)
    assert lines[("title",)] == 2
    assert lines[("procward",)] == 4
    assert lines[("procward", "log_dir")] == 5
    assert lines[("procward", "a", "b.c", "d")] == 6
    assert lines[("services", "web")] == 8
    assert lines[("services", "my web", "command")] == 34


def test_multiline_arrays_index_each_element() -> None:
    """A multi-line array maps to the key's line, and each element to its own line."""
    lines = key_lines(DOC)
    assert lines[("services", "web", "command")] == 9
    assert lines[("services", "web", "command", 0)] == 10
    assert lines[("services", "web", "command", 1)] == 11


def test_inline_tables_map_to_their_line() -> None:
    """Keys inside inline tables, however nested, map to the line of the inline table."""
    lines = key_lines(DOC)
    assert lines[("services", "web", "backoff", "initial")] == 13
    assert lines[("services", "web", "backoff", "max")] == 13
    assert lines[("services", "web", "nested", "a", "b", 1, "c")] == 14


def test_strings_hide_their_content() -> None:
    """Text inside (multi-line) strings is never taken for tables, keys or comments."""
    lines = key_lines(DOC)
    assert ("not", "a", "table") not in lines
    assert lines[("services", "web", "text")] == 15
    assert lines[("services", "web", "after_text")] == 19
    assert lines[("services", "web", "after_quoted")] == 21
    assert lines[("services", "web", "when")] == 22


def test_arrays_of_tables_are_indexed() -> None:
    """Each [[x]] header starts a new index, and [x.sub] belongs to the latest element."""
    lines = key_lines(DOC)
    assert lines[("services", "web", "alerts", 0)] == 24
    assert lines[("services", "web", "alerts", 0, "pattern")] == 25
    assert lines[("services", "web", "alerts", 1, "pattern")] == 28
    assert lines[("services", "web", "alerts", 1, "extra", "k")] == 31


def test_crlf_line_endings() -> None:
    """Windows line endings count one line per CRLF."""
    lines = key_lines("[a]\r\nb = 1\r\n\r\nc = 2\r\n")
    assert lines[("a", "b")] == 2
    assert lines[("a", "c")] == 4


def test_line_for_falls_back_to_longest_prefix() -> None:
    """A path with no line of its own gets the line of its nearest written ancestor."""
    lines = key_lines(DOC)
    assert line_for(lines, ("services", "web", "backoff", "factor")) == 13
    assert line_for(lines, ("services", "web", "restart")) == 8
    assert line_for(lines, ("nowhere", "at", "all")) is None


def test_format_key_quotes_odd_parts() -> None:
    """Key paths print dotted, with indices bare and keys that need it quoted."""
    path = ("services", "web", "alerts", 0, "pattern")
    assert format_key(path) == "services.web.alerts.0.pattern"
    assert format_key(("services", "my web")) == 'services."my web"'
    assert format_key(("env", "a.b")) == 'env."a.b"'
