"""A validated configuration as JSON and back, without pydantic.

The daemon receives its configuration this way from a short-lived process that
loaded and validated the file, so the daemon itself never imports pydantic.
Rebuilding trusts the data: it was validated on the other side.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from procward.config._models import Config

__all__ = ["config_from_json", "config_to_json"]


def config_to_json(config: Config) -> str:
    return json.dumps(dataclasses.asdict(config), default=str)


def config_from_json(text: str) -> Config:
    config = _build(Config, json.loads(text))
    assert isinstance(config, Config)
    return config


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _build(tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        return _build(get_args(tp)[0], value)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        members = [a for a in get_args(tp) if a is not type(None)]
        return _build(members[0], value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{name: _build(hints[name], v) for name, v in value.items()})
    if origin is list:
        return [_build(get_args(tp)[0], v) for v in value]
    if origin is dict:
        return {k: _build(get_args(tp)[1], v) for k, v in value.items()}
    if tp is Path:
        return Path(value)
    if tp is float:
        return float(value)
    return value
