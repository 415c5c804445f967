"""Alerts: rules matched on output lines, built-in alerts, and the sinks they go to.

``match`` owns the rules and the tee in the output path, ``builtin`` the
alerts raised from the engine's events, ``sinks`` their delivery;
``AlertManager`` is the supervisor's one handle on all of it.
"""

from procward.engine.alerts.alert import Alert
from procward.engine.alerts.match import AlertTee, InstanceRules
from procward.engine.alerts.sinks import AlertManager

__all__ = ["Alert", "AlertManager", "AlertTee", "InstanceRules"]
