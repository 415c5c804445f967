"""A validated configuration rebuilt from parsed JSON, without pydantic.

The daemon receives its configuration this way from a short-lived process that
loaded, validated and serialised it (``_validate.dump_json``), so the daemon
itself never imports pydantic. Rebuilding trusts the data: it was validated on
the other side.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from procward.config._models import Config

__all__ = ["config_from_data"]


def config_from_data(data: dict[str, Any]) -> Config:
    """A ``Config`` from the parsed JSON of ``_validate.dump_json``."""
    config = _converter(Config)(data)
    assert isinstance(config, Config)
    return config


def _same(value: Any) -> Any:
    return value


@functools.cache
def _converter(tp: Any) -> Callable[[Any], Any]:
    """A function turning JSON data into ``tp``, worked out once per type."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _converter(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        inner = _converter(next(a for a in get_args(tp) if a is not type(None)))
        return lambda v: None if v is None else inner(v)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp
        fields = [(name, _converter(hint)) for name, hint in get_type_hints(cls).items()
                  if not name.startswith("__")]

        def build(value: dict[str, Any]) -> Any:
            return cls(**{name: convert(value[name]) for name, convert in fields
                          if name in value})

        return build
    if origin is list:
        item = _converter(get_args(tp)[0])
        return list if item is _same else lambda v: [item(x) for x in v]
    if origin is dict:
        entry = _converter(get_args(tp)[1])
        return dict if entry is _same else lambda v: {k: entry(x) for k, x in v.items()}
    if tp is Path:
        return Path
    if tp is float:
        return float
    return _same
