"""The terminal dashboard (`odc tui`): the fleet as numbers, trends and alarms, live.

Built on textual and fed only by the twin's stream and command socket (``viz.stream``).
"""

from __future__ import annotations

__all__ = ["DashboardApp"]


def __getattr__(name: str):
    # Lazy, so importing the package (or its pure model) does not load textual.
    if name == "DashboardApp":
        from viz.tui.app import DashboardApp

        return DashboardApp
    raise AttributeError(name)
