"""Durations and sizes as a configuration writes them."""

from __future__ import annotations

import pytest

from procward.config import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),
        ("7", 7.0),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_duration_units(text: object, seconds: float) -> None:
    """Each duration unit, a bare number and a number of seconds give float seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5 minutes", "s", "", "-5s", "1w", True, -1, None, [5]])
def test_duration_rejects(bad: object) -> None:
    """Anything but a non-negative number or a known unit is refused with an example."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_duration_message_quotes_like_toml() -> None:
    """A bad duration string is shown in double quotes, as the user wrote it in TOML."""
    with pytest.raises(ValueError) as info:
        parse_duration("soon")
    assert str(info.value) == 'expected a duration such as "250ms", "5s", "2m" or "1h", got "soon"'


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50MB", 50 * 1024**2),
        ("50MiB", 50 * 1024**2),
        ("50mb", 50 * 1024**2),
        ("1GiB", 1024**3),
        ("1GB", 1024**3),
        ("10KB", 10 * 1024),
        ("10k", 10 * 1024),
        ("2T", 2 * 1024**4),
        ("100B", 100),
        ("1.5MB", int(1.5 * 1024**2)),
        ("123", 123),
        (4096, 4096),
    ],
)
def test_size_units(text: object, size: int) -> None:
    """KB/MB/GB and KiB/MiB/GiB both count in powers of 1024; bare numbers are bytes."""
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["50 megabytes", "MB", "-1MB", -5, 1.5, False, None])
def test_size_rejects(bad: object) -> None:
    """Negative, fractional-byte, boolean and unit-less-garbage sizes are refused."""
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_duration_rejects_nan_and_inf(value: float) -> None:
    """TOML's nan and inf are numbers but not durations."""
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)
