"""The engine: supervises the services of one configuration.

``Supervisor`` is its only public face; everything else here is internal.
"""

from procward.engine._events import Event, EventKind
from procward.engine._instance import InstanceStatus
from procward.engine._state import State
from procward.engine._supervisor import EVENTS_FILE, Supervisor

__all__ = ["EVENTS_FILE", "Event", "EventKind", "InstanceStatus", "State", "Supervisor"]
