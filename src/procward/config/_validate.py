"""pydantic validation of the configuration dataclasses, built once on first use."""

from __future__ import annotations

import functools
from typing import Any, get_type_hints

from pydantic import TypeAdapter

from procward.config._models import Config

__all__ = ["dump_json", "field_types", "validate_config"]


@functools.cache
def _adapter() -> TypeAdapter[Config]:
    return TypeAdapter(Config)


def validate_config(data: dict[str, Any]) -> Config:
    """A ``Config`` from plain data; raises ``pydantic.ValidationError`` listing every problem."""
    return _adapter().validate_python(data)


def dump_json(config: Config) -> str:
    """The configuration as JSON, for ``config_from_data`` in a process without pydantic."""
    return _adapter().dump_json(config).decode()


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their (evaluated) types, with ``Annotated`` kept."""
    return get_type_hints(cls, include_extras=True)
