"""TLS and mutual TLS with certificates made by the test (trustme), against a real daemon."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trustme
from api_daemon import toml_list

from procward.testing import python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs POSIX daemons")

BODY = f"""
[services.s]
command = {toml_list(python("import time; time.sleep(600)"))}
start_seconds = 0.1
"""


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("ops@example.test")
    stranger = trustme.CA().issue_cert("intruder@example.test")
    files = {
        "ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key",
        "client": tmp_path / "client.pem", "stranger": tmp_path / "stranger.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    files["cert"].write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    stranger.private_key_and_cert_chain_pem.write_to_path(str(files["stranger"]))
    return files


def _cli(d: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCWARD_")}
    return subprocess.run([sys.executable, "-m", "procward", *args], check=False,
                          capture_output=True, text=True, timeout=30, env=env, cwd=d.root)


def _get(url: str, context: ssl.SSLContext, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_tls(start_daemon: Any, pki: dict[str, Path], tmp_path: Path) -> None:
    """With tls_cert and tls_key the API speaks only HTTPS, and clients must trust its CA."""
    d = start_daemon(BODY, api=f'listen = "127.0.0.1:0"\ntls_cert = "{pki["cert"]}"\n'
                              f'tls_key = "{pki["key"]}"')
    assert d.url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(pki["ca"]))
    assert _get(d.url + "/v1/services", trusting, d.token) == 200
    with pytest.raises(urllib.error.URLError):  # plain system trust: an unknown CA
        _get(d.url + "/v1/services", ssl.create_default_context(), d.token)
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # no TLS at all
        urllib.request.urlopen(d.url.replace("https", "http") + "/healthz", timeout=10)

    local = d.cli("status", "--json")  # the local CLI trusts the daemon's own certificate
    assert local.returncode == 0, local.stderr
    remote = _cli(d, "status", "--json", "--url", d.url, "--token", d.token,
                  "--cacert", str(pki["ca"]))
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["services"][0]["name"] == "s"
    untrusted = _cli(d, "status", "--url", d.url, "--token", d.token)
    assert untrusted.returncode == 3 and "TLS" in untrusted.stderr


def test_mutual_tls(start_daemon: Any, pki: dict[str, Path]) -> None:
    """With client_ca a client needs a certificate from that CA as well as a token."""
    d = start_daemon(BODY, api=f'listen = "127.0.0.1:0"\ntls_cert = "{pki["cert"]}"\n'
                              f'tls_key = "{pki["key"]}"\nclient_ca = "{pki["ca"]}"')
    with_cert = ssl.create_default_context(cafile=str(pki["ca"]))
    with_cert.load_cert_chain(str(pki["client"]))
    assert _get(d.url + "/v1/services", with_cert, d.token) == 200

    without = ssl.create_default_context(cafile=str(pki["ca"]))
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        _get(d.url + "/v1/services", without, d.token)
    wrong = ssl.create_default_context(cafile=str(pki["ca"]))
    wrong.load_cert_chain(str(pki["stranger"]))
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        _get(d.url + "/v1/services", wrong, d.token)

    # A client certificate is not a token: both are needed.
    assert _get(d.url + "/v1/services", with_cert, "pw_wrong") == 401

    ok = _cli(d, "status", "--url", d.url, "--token", d.token, "--cacert", str(pki["ca"]),
              "--cert", str(pki["client"]))
    assert ok.returncode == 0, ok.stderr
    refused = _cli(d, "status", "--url", d.url, "--token", d.token, "--cacert", str(pki["ca"]))
    assert refused.returncode == 3


def test_bad_tls_files_fail_the_start_clearly(tmp_path: Path, pki: dict[str, Path]) -> None:
    """TLS files that cannot be loaded fail the start with a message naming the settings."""
    cfg = tmp_path / "procward.toml"
    cfg.write_text(f'[api]\nlisten = "127.0.0.1:0"\ntls_cert = "{pki["ca"]}"\n'
                   f'tls_key = "{pki["ca"]}"\n{BODY}')
    out = subprocess.run([sys.executable, "-m", "procward", "run", "-c", str(cfg)],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "TLS" in out.stderr and "tls_key" in out.stderr
