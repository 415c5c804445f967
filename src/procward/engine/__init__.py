"""The engine: supervises the services of one configuration.

``Supervisor`` is its only public face for acting; ``Control`` is the narrow
one the control API uses. Events come with a typed payload per kind
(``StateChange``, ``Exit``, ...). Everything else here is internal.
"""

from procward.engine._control import Control, ReloadOutcome
from procward.engine._events import (
    AlertFailure,
    AlertFired,
    AuthFailure,
    ControlAction,
    DaemonNote,
    Event,
    EventKind,
    Exit,
    HealthChange,
    LogDropped,
    LogError,
    LogResumed,
    MemoryMax,
    NotifyRejection,
    NotifyReport,
    Payload,
    Reload,
    SpawnFailure,
    StateChange,
)
from procward.engine._instance import InstanceStatus
from procward.engine._state import Health, State
from procward.engine._supervisor import EVENTS_FILE, ReloadResult, Supervisor

__all__ = [
    "EVENTS_FILE",
    "AlertFailure",
    "AlertFired",
    "AuthFailure",
    "Control",
    "ControlAction",
    "DaemonNote",
    "Event",
    "EventKind",
    "Exit",
    "Health",
    "HealthChange",
    "InstanceStatus",
    "LogDropped",
    "LogError",
    "LogResumed",
    "MemoryMax",
    "NotifyRejection",
    "NotifyReport",
    "Payload",
    "Reload",
    "ReloadOutcome",
    "ReloadResult",
    "SpawnFailure",
    "State",
    "StateChange",
    "Supervisor",
]
