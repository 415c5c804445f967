"""Every exception procward defines for its callers sits under ProcwardError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import procward
from procward.errors import ProcwardError

# Modules that import only on another platform (they assert it first).
_ELSEWHERE = {"procward._os.windows", "procward.oshost.windows", "procward.oshost._windows"} \
    if sys.platform != "win32" else {"procward._os.posix", "procward._os._guardian"}


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(procward.__path__, "procward.")]
    return [n for n in names if not any(n == e or n.startswith(e + "_") for e in _ELSEWHERE)
            and not n.endswith("__main__")]


def test_public_exceptions_derive_from_procward_error() -> None:
    """A public exception class anywhere in the package is a ProcwardError, so one
    ``except ProcwardError`` catches everything procward raises on purpose."""
    outside = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == name and not attr.startswith("_")
                    and not issubclass(value, ProcwardError)):
                outside.append(f"{name}.{attr}")
    assert outside == []
