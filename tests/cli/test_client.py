"""The CLI client's own URL handling, checked against the standard library's."""

from __future__ import annotations

from urllib.parse import quote as std_quote
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procward.cli._client import quote, split_url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9771",
    "http://127.0.0.1:9771/",
    "https://Host.Example:443/procward/",
    "https://host.example/prefix/v",
    "http://[::1]:9771/x",
    "HTTP://[FE80::1]/",
    "http://localhost:80?x=1#frag",
    "https://h:65535/a/b?q",
])
def test_split_url_agrees_with_urlsplit(url: str) -> None:
    parts = urlsplit(url)
    assert split_url(url) == (parts.scheme, parts.hostname, parts.port, parts.path)


@pytest.mark.parametrize("url", [
    "ftp://host/", "host:9771", "http://", "http://:80/", "http://h:0/", "http://h:99999/",
    "http://h:x/", "http://user@h/", "http://[::1/", "http://[::1]x/",
])
def test_split_url_refuses_what_is_not_an_http_url(url: str) -> None:
    assert split_url(url) is None


@given(st.text())
def test_quote_agrees_with_urllib(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates: no service has such a name, and urllib refuses them too
    assert quote(text) == std_quote(text, safe="")
