"""How the CLI's client commands find (or fail to find) a daemon, said plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from procward.cli import EXIT_BAD_CONFIG, EXIT_UNREACHABLE, main


@pytest.mark.parametrize(("argv", "code", "said"), [
    (["--url", "ftp://host/", "--token", "t"], EXIT_BAD_CONFIG, "not an http(s) URL"),
    (["--url", "http://h:99999/", "--token", "t"], EXIT_BAD_CONFIG, "not an http(s) URL"),
    (["--url", "http://127.0.0.1:9/"], EXIT_BAD_CONFIG, "--url needs a token"),
    (["--url", "http://127.0.0.1:9/", "--token", "t"], EXIT_UNREACHABLE,
     "procward does not answer at http://127.0.0.1:9"),
])
def test_a_url_that_leads_nowhere_is_explained(argv: list[str], code: int, said: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed --url, one without a token, or one where nothing answers each gets its
    own exit code and a message saying what to do."""
    assert main(["status", *argv]) == code
    assert said in capsys.readouterr().err


def test_a_configuration_with_mistakes_is_named(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not TOML, or a profile it lacks, is reported with file and line."""
    path = tmp_path / "procward.toml"
    path.write_text("[procward\n", encoding="utf-8")
    assert main(["status", "-c", str(path)]) == EXIT_BAD_CONFIG
    assert f"{path}:1: TOML syntax error" in capsys.readouterr().err
    path.write_text('[profiles.prod.procward]\nstate_dir = "s"\n', encoding="utf-8")
    assert main(["status", "-c", str(path), "--profile", "prd"]) == EXIT_BAD_CONFIG
    assert 'unknown profile "prd" (did you mean "prod"?)' in capsys.readouterr().err
