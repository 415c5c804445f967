"""The engine: supervises the services of one configuration.

``Supervisor`` is its only public face; everything else here is internal.
"""

from procward.engine._control import Control, ReloadOutcome
from procward.engine._events import Event, EventKind
from procward.engine._instance import InstanceStatus
from procward.engine._state import State
from procward.engine._supervisor import EVENTS_FILE, ReloadResult, Supervisor

__all__ = [
    "EVENTS_FILE",
    "Control",
    "Event",
    "EventKind",
    "InstanceStatus",
    "ReloadOutcome",
    "ReloadResult",
    "State",
    "Supervisor",
]
