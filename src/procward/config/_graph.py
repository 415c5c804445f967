"""The ``depends_on`` graph: its cycles, the order services stop in, how long a stop takes.

The one walk of the dependency graph: the loader asks it for cycles, the
engine for the stop order, the OS service backends (through the CLI) for the
longest a whole stop can take. ``graphlib`` orders; only the cycle report,
which must name every distinct cycle rather than the first one met, is ours.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from procward.config._models import ServiceConfig

__all__ = ["dependency_cycles", "stop_budget", "stop_order"]


def _stop_graph(services: Mapping[str, ServiceConfig]) -> graphlib.TopologicalSorter[str]:
    """Each service with what must stop before it: the services that depend on it."""
    graph: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in services:
        graph.add(name)
    for name, svc in services.items():
        for dep in svc.depends_on:
            if dep in services:
                graph.add(dep, name)
    return graph


def stop_order(services: Mapping[str, ServiceConfig]) -> list[list[str]]:
    """The services in the order they stop: the names in one list stop together,
    every dependent in a list before the services it depends on."""
    graph = _stop_graph(services)
    graph.prepare()
    levels = []
    while graph.is_active():
        ready = list(graph.get_ready())
        # In the file's order within a level, so events read as the file does.
        levels.append([n for n in services if n in ready])
        graph.done(*ready)
    return levels


def stop_budget(services: Mapping[str, ServiceConfig]) -> float:
    """The longest a full stop of ``services`` can take: ``stop_timeout`` summed along
    each chain of dependents (they stop one after the other), the longest chain."""
    finished: dict[str, float] = {}
    for name in _stop_graph(services).static_order():
        dependents = [n for n, s in services.items() if name in s.depends_on]
        finished[name] = services[name].stop_timeout + max(
            (finished[d] for d in dependents), default=0.0)
    return max(finished.values(), default=0.0)


def dependency_cycles(deps: Mapping[str, list[str]], order: list[str]) -> list[list[str]]:
    """Each distinct cycle of ``deps`` (name -> what it depends on), starting at its
    service listed first in ``order``."""
    rank = {name: i for i, name in enumerate(order)}
    found: dict[frozenset[tuple[str, str]], list[str]] = {}
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = stack[stack.index(name) :]
            start = min(range(len(cycle)), key=lambda i: rank[cycle[i]])
            cycle = cycle[start:] + cycle[:start]
            edges = frozenset(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
            found.setdefault(edges, cycle)
            return
        if name in done:
            return
        stack.append(name)
        for dep in deps.get(name, []):
            visit(dep, stack)
        stack.pop()
        done.add(name)

    for name in order:
        visit(name, [])
    return list(found.values())
