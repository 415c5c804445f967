"""The validated configuration is kept, and used again only for the file as it was.

Every load here is a real one: a child Python process validates, unless the
kept answer is used (``IsolatedLoad.validated`` says which; the first test
also shows that no child is started, by pointing ``sys.executable`` nowhere).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from procward.config import IsolatedLoad
from procward.config._cache import KEEP, ConfigCache
from procward.errors import ConfigError

CONFIG = '[services.a]\ncommand = ["sleep", "600"]\n'


def kept_entries() -> list[Path]:
    return sorted((Path(os.environ["XDG_CACHE_HOME"]) / "procward" / "configs").glob("*.json"))


def load(path: Path, profile: str | None = None) -> tuple[bool, list[str]]:
    """Whether a child validated, and service a's command."""
    loading = IsolatedLoad(path, profile=profile)
    return loading.validated, loading.result().services["a"].command


def test_an_unchanged_file_is_not_validated_again(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "procward.toml"
    cfg.write_text(CONFIG)
    first = IsolatedLoad(cfg)
    assert first.validated
    config = first.result()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    again = IsolatedLoad(cfg)
    assert not again.validated
    assert again.result() == config
    assert len(kept_entries()) == 1


def test_a_changed_file_is_validated_again(tmp_path: Path) -> None:
    """Same size, same second: the bytes decide, not the file's times."""
    cfg = tmp_path / "procward.toml"
    cfg.write_text(CONFIG)
    assert load(cfg) == (True, ["sleep", "600"])
    cfg.write_text(CONFIG.replace("600", "700"))
    assert load(cfg) == (True, ["sleep", "700"])
    assert load(cfg) == (False, ["sleep", "700"])
    cfg.write_text(CONFIG.replace("600", "700").replace("command", "commant"))
    with pytest.raises(ConfigError) as info:
        IsolatedLoad(cfg).result()
    assert (2, "services.a.commant") in [(p.line, p.key) for p in info.value.problems]


def test_a_file_that_reads_the_environment_is_never_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its answer can change while the file does not, and may hold secrets."""
    monkeypatch.setenv("SECRET_ARG", "s3cret-from-env")
    (tmp_path / "a.env").write_text("TOKEN=s3cret-from-file\n")
    with_var = tmp_path / "var.toml"
    with_var.write_text('[services.a]\ncommand = ["sleep", "${SECRET_ARG}"]\n')
    with_default = tmp_path / "default.toml"
    with_default.write_text('[services.a]\ncommand = ["sleep", "${UNSET_HERE:-5}"]\n')
    with_file = tmp_path / "file.toml"
    with_file.write_text(CONFIG + 'env_file = "a.env"\n')
    for cfg in (with_var, with_default, with_file):
        assert load(cfg)[0]
        assert load(cfg)[0]
    assert kept_entries() == []
    monkeypatch.setenv("SECRET_ARG", "changed")
    assert load(with_var) == (True, ["sleep", "changed"])


def test_each_profile_has_its_own_entry(tmp_path: Path) -> None:
    cfg = tmp_path / "procward.toml"
    cfg.write_text(CONFIG + '[profiles.dev.services.a]\ncommand = ["sleep", "1"]\n')
    assert load(cfg) == (True, ["sleep", "600"])
    assert load(cfg, "dev") == (True, ["sleep", "1"])
    assert load(cfg) == (False, ["sleep", "600"])
    assert load(cfg, "dev") == (False, ["sleep", "1"])
    assert len(kept_entries()) == 2


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="file ownership and modes are POSIX")
def test_an_entry_others_could_have_written_is_ignored(tmp_path: Path) -> None:
    """An entry names the commands the daemon runs: one writable by others is not trusted."""
    cfg = tmp_path / "procward.toml"
    cfg.write_text(CONFIG)
    load(cfg)
    [entry] = kept_entries()
    assert entry.stat().st_mode & 0o777 == 0o600
    entry.chmod(0o666)
    assert load(cfg)[0]
    assert entry.stat().st_mode & 0o777 == 0o600  # written again, as its owner's alone


def test_a_damaged_or_foreign_entry_is_a_miss(tmp_path: Path) -> None:
    cfg = tmp_path / "procward.toml"
    cfg.write_text(CONFIG)
    load(cfg)
    [entry] = kept_entries()
    entry.write_bytes(entry.read_bytes()[:100])
    assert load(cfg) == (True, ["sleep", "600"])
    # Kept by other configuration code (another procward version, or an edited checkout).
    header, _, answer = entry.read_text().partition("\n")
    fields = json.loads(header)
    fields["code"][0] = "0.0.0-other"
    entry.write_text(json.dumps(fields) + "\n" + answer.replace('"600"', '"666"'))
    assert load(cfg) == (True, ["sleep", "600"])


def test_only_the_newest_entries_are_kept(tmp_path: Path) -> None:
    """The oldest go first, by file time; the entry just written always stays, even
    when its time is not the newest (file times are coarse, and clocks move)."""
    folder = tmp_path / "configs"
    caches = [ConfigCache(str(folder), str(tmp_path / f"c{i}.toml"), None)
              for i in range(KEEP + 5)]
    later = time.time_ns() + 3600 * 10**9
    for i, cache in enumerate(caches[:-1]):
        cache.store("0" * 64, "{}\n")
        os.utime(cache.entry, ns=(later + i * 10**9,) * 2)  # one a second, oldest first
    caches[-1].store("0" * 64, "{}\n")  # now: older than all the others' times
    kept = {p.name for p in folder.iterdir()}
    assert kept == {os.path.basename(c.entry) for c in caches[-KEEP:]}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX owners")
def test_a_cache_folder_another_user_owns_is_not_used(tmp_path: Path) -> None:
    """sudo can keep the invoking user's HOME or XDG_CACHE_HOME: as another user
    (root), procward keeps its cache in its own home, never in that one."""
    import pwd

    from procward.config._paths import user_cache_dir

    if os.geteuid() == 0:
        foreign = tmp_path / "someone"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
    else:
        foreign = Path("/usr")  # root's; nothing is written there
    own_cache = os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, ".cache")
    expected = os.path.join(own_cache, "procward") if os.path.isdir(own_cache) and \
        os.stat(own_cache).st_uid == os.geteuid() else None
    for environ in ({"XDG_CACHE_HOME": str(foreign / ".cache")}, {"HOME": str(foreign)}):
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("XDG_CACHE_HOME", raising=False)
            for key, value in environ.items():
                mp.setenv(key, value)
            found = user_cache_dir()
        assert found == expected, (environ, found)
    mine = tmp_path / "mine"
    assert user_cache_dir({"XDG_CACHE_HOME": str(mine / "not-yet")}) == str(
        mine / "not-yet" / "procward")
