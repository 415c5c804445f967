"""The token store: hashed at rest, roles, changes seen without a restart."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from procward.api import TokenStore


def test_local_admin_token_is_made_once_and_kept_hashed(tmp_path: Path) -> None:
    """The local admin token is made on the first start, kept on later ones, stored hashed and
    readable only by its owner."""
    store = TokenStore(tmp_path)
    store.ensure_local_admin()
    token = (tmp_path / "admin.token").read_text().strip()
    store.ensure_local_admin()  # a second start keeps the same token
    assert (tmp_path / "admin.token").read_text().strip() == token
    info = store.check(token)
    assert info is not None and info.name == "local-admin" and info.role == "admin"
    assert token not in (tmp_path / "tokens.json").read_text()
    if sys.platform != "win32":
        assert (tmp_path / "admin.token").stat().st_mode & 0o077 == 0


def test_roles_and_revocation(tmp_path: Path) -> None:
    """A read token may only look, an admin token may do anything, and a replaced or revoked
    token stops working."""
    store = TokenStore(tmp_path)
    reader = store.new("grafana", "read")
    admin = store.new("ops", "admin")
    r, a = store.check(reader), store.check(admin)
    assert r is not None and r.allows("GET") and not r.allows("POST")
    assert a is not None and a.allows("POST") and a.allows("DELETE")
    assert store.check(reader + "x") is None
    assert store.check("") is None
    replaced = store.new("grafana", "read")  # same name: the old token stops working
    assert store.check(reader) is None and store.check(replaced) is not None
    assert store.revoke("ops") and store.check(admin) is None
    assert not store.revoke("ops")
    with pytest.raises(ValueError):
        store.new("local-admin", "admin")
    with pytest.raises(ValueError):
        store.new("x", "root")  # type: ignore[arg-type]


def test_another_process_adding_a_token_is_seen_at_once(tmp_path: Path) -> None:
    """A token another process adds is accepted at once, without a restart."""
    daemon_side = TokenStore(tmp_path)
    daemon_side.ensure_local_admin()
    made = TokenStore(tmp_path).new("later", "read")  # as `procward token new` does
    assert daemon_side.check(made) is not None


def test_a_damaged_file_lets_nobody_in(tmp_path: Path) -> None:
    """A tokens file that is not valid JSON, or lacks digests, lets no token in."""
    store = TokenStore(tmp_path)
    token = store.new("a", "admin")
    (tmp_path / "tokens.json").write_text("{not json")
    assert store.check(token) is None
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": [{"name": "a"}]}))
    assert store.check(token) is None
