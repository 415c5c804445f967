"""Turns a procward.toml into a validated ``Config``.

MINIMAL PLACEHOLDER: to be replaced by the full loader (line numbers,
interpolation, profiles, env_file, dependency checks).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from procward.config._models import Config
from procward.errors import ConfigError, ConfigProblem

__all__ = ["find_config_path", "load_config"]


def find_config_path(explicit: str | os.PathLike[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("PROCWARD_CONFIG"):
        return Path(environ["PROCWARD_CONFIG"])
    return Path("procward.toml")


def load_config(path: str | os.PathLike[str], *, profile: str | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    path = Path(path).resolve()
    data = tomllib.loads(path.read_text())
    data.pop("profiles", None)
    base = path.parent
    proc = data.setdefault("procward", {})
    proc["log_dir"] = str(base / proc.get("log_dir", "logs"))
    proc["state_dir"] = str(base / proc.get("state_dir", "state"))
    for svc in data.get("services", {}).values():
        svc["cwd"] = str(base / svc.get("cwd", "."))
    try:
        return Config.model_validate({"source": path, **data})
    except ValidationError as e:
        raise ConfigError([ConfigProblem(path, None, ".".join(map(str, err["loc"])), err["msg"])
                           for err in e.errors()]) from None
