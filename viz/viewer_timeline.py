"""The replay's timeline bar in the 3D view: the recording's span, where the replay is, and
a click or drag on it to seek there.

Shown only while the viewer follows a replay (``odc replay``: it learns so from the
``replay`` messages, whose header carries ``span_utc`` and ``position_utc``). A click on
the bar sends the replay's ``seek`` command (docs/recording.md) for the time under the
cursor; dragging seeks as the cursor moves (at most every ``DRAG_SEEK_S``) and once more
where the button is released. The bar takes the click, so it neither turns the camera nor
picks a node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from viz.vtk_actors import overlay_actor, text_actor

# The bar across the bottom of the window, in normalized viewport coordinates: above the
# event line, clear of the node panel on the left and the colour bar on the right.
BAR_X0, BAR_X1, BAR_Y = 0.30, 0.70, 0.075
BAR_HALF_HEIGHT_PX = 5
# Clicks this many pixels above or below the bar still count (a thin bar is hard to hit).
GRAB_MARGIN_PX = 8
DRAG_SEEK_S = 0.15
TRACK_RGB = (0.25, 0.28, 0.35)
PLAYED_RGB = (0.35, 0.6, 1.0)
CURSOR_RGB = (1.0, 1.0, 1.0)


def clock_text(t_utc: float) -> str:
    return datetime.fromtimestamp(t_utc, UTC).strftime("%H:%M:%S")


def _rectangle_actor(renderer: Any, rgb: tuple[float, float, float]) -> tuple[Any, Any]:
    """A filled rectangle in display pixels (its four points are set later)."""
    import vtk

    points = vtk.vtkPoints()
    points.SetNumberOfPoints(4)
    polys = vtk.vtkCellArray()
    polys.InsertNextCell(4, [0, 1, 2, 3])
    data = vtk.vtkPolyData()
    data.SetPoints(points)
    data.SetPolys(polys)
    actor = overlay_actor(renderer, data, rgb)
    actor.SetVisibility(False)
    return actor, points


def _place(points: Any, x0: float, y0: float, x1: float, y1: float) -> None:
    for i, (x, y) in enumerate(((x0, y0), (x1, y0), (x1, y1), (x0, y1))):
        points.SetPoint(i, x, y, 0.0)
    points.Modified()


class ReplayTimeline:
    """The bar's actors and its mouse handling.

    Args:
        renderer: The VTK renderer of the view (the HUD's).
        window_size: A callable giving the window's ``(width, height)`` in pixels.
        seek: Called with the recorded time (UTC seconds) to go to; returns the reply.
    """

    def __init__(self, renderer: Any, window_size: Callable[[], tuple[int, int]],
                 seek: Callable[[float], Mapping[str, Any]], text: Any = None) -> None:
        self.window_size = window_size
        self.seek = seek
        self.track, self._track_points = _rectangle_actor(renderer, TRACK_RGB)
        self.played, self._played_points = _rectangle_actor(renderer, PLAYED_RGB)
        self.cursor, self._cursor_points = _rectangle_actor(renderer, CURSOR_RGB)
        self.start_text = text_actor(renderer, BAR_X0, BAR_Y, size=12, halign="right",
                                     valign="centered")
        self.end_text = text_actor(renderer, BAR_X1, BAR_Y, size=12, valign="centered")
        self.now_text = text_actor(renderer, BAR_X0, BAR_Y, size=12, halign="centered",
                                   valign="bottom", bold=True)
        self.texts = (self.start_text, self.end_text, self.now_text)
        if text is not None:  # the scene's scaler: the bar's times scale like the HUD
            for actor in self.texts:
                text.add(actor.GetTextProperty(), 12)
        self.span_utc: tuple[float, float] | None = None
        self.position_utc = float("nan")
        self.dragging = False
        self.last_reply: Mapping[str, Any] | None = None
        self._last_drag_seek = -np.inf
        self._last_seek_x = float("nan")
        self.show(False)

    @property
    def visible(self) -> bool:
        return bool(self.track.GetVisibility())

    def show(self, on: bool) -> None:
        for actor in (self.track, self.played, self.cursor, *self.texts):
            actor.SetVisibility(on)

    # ------------------------------------------------------------------ drawing
    def bar_pixels(self) -> tuple[float, float, float, float]:
        """The bar's ``(x0, x1, y0, y1)`` in display pixels (origin bottom left)."""
        width, height = self.window_size()
        y = BAR_Y * height
        return (BAR_X0 * width, BAR_X1 * width, y - BAR_HALF_HEIGHT_PX,
                y + BAR_HALF_HEIGHT_PX)

    def update(self, replay: Mapping[str, Any] | None) -> None:
        """Follow the newest ``replay`` header (None: not a replay, the bar hides)."""
        span = None
        if replay is not None:
            try:
                start, end = (float(t) for t in replay["span_utc"])
                position = float(replay["position_utc"])
                span = (start, end) if np.isfinite([start, end, position]).all() else None
            except (KeyError, TypeError, ValueError):
                span = None  # the stream checks replay headers; this is belt and braces
        self.span_utc = span
        self.show(span is not None)
        if span is None:
            return
        self.position_utc = position
        x0, x1, y0, y1 = self.bar_pixels()
        start, end = span
        fraction = float(np.clip((position - start) / (end - start), 0.0, 1.0)) \
            if end > start else 1.0
        x = x0 + fraction * (x1 - x0)
        _place(self._track_points, x0, y0, x1, y1)
        _place(self._played_points, x0, y0, x, y1)
        _place(self._cursor_points, x - 2, y0 - 4, x + 2, y1 + 4)
        width, height = self.window_size()
        self.start_text.SetInput(clock_text(start) + " ")
        self.end_text.SetInput(" " + clock_text(end))
        self.now_text.SetInput(clock_text(position))
        self.now_text.SetPosition(x / width, (y1 + 6) / height)

    # ------------------------------------------------------------------ mouse
    def time_at(self, x_px: float) -> float | None:
        """The recorded time under a pixel column (clamped to the span), or None."""
        if self.span_utc is None:
            return None
        x0, x1, _, _ = self.bar_pixels()
        fraction = float(np.clip((x_px - x0) / (x1 - x0), 0.0, 1.0))
        start, end = self.span_utc
        return start + fraction * (end - start)

    def hit(self, x_px: float, y_px: float) -> bool:
        """Whether a click at this pixel lands on the bar."""
        if not self.visible or self.span_utc is None:
            return False
        x0, x1, y0, y1 = self.bar_pixels()
        return x0 - GRAB_MARGIN_PX <= x_px <= x1 + GRAB_MARGIN_PX and \
            y0 - GRAB_MARGIN_PX <= y_px <= y1 + GRAB_MARGIN_PX

    def press(self, x_px: float, y_px: float) -> bool:
        """A left-button press; returns whether the bar took it (and seeked)."""
        if not self.hit(x_px, y_px):
            return False
        self.dragging = True
        self._seek_at(x_px)
        return True

    def move(self, x_px: float, _y_px: float) -> bool:
        """The mouse moved; while dragging, seek (throttled). Returns whether it was taken."""
        if not self.dragging:
            return False
        if time.monotonic() - self._last_drag_seek >= DRAG_SEEK_S:
            self._seek_at(x_px)
        return True

    def release(self, x_px: float, _y_px: float) -> bool:
        """The button came up: a drag ends with a seek where it was released."""
        if not self.dragging:
            return False
        self.dragging = False
        if x_px != self._last_seek_x:  # a click already seeked where it was released
            self._seek_at(x_px)
        return True

    def _seek_at(self, x_px: float) -> None:
        t_utc = self.time_at(x_px)
        if t_utc is None:
            return
        self._last_drag_seek = time.monotonic()
        self._last_seek_x = x_px
        self.last_reply = self.seek(t_utc)

    def attach(self, interactor: Any, after: Callable[[], None]) -> None:
        """Take the window's mouse events before the camera and the picker do.

        Args:
            interactor: The VTK render window interactor.
            after: Called after the bar took an event (refresh and render).
        """
        handlers = {"LeftButtonPressEvent": self.press, "MouseMoveEvent": self.move,
                    "LeftButtonReleaseEvent": self.release}
        tags: dict[str, int] = {}

        def observe(obj: Any, event: str) -> None:
            x, y = obj.GetEventPosition()
            if handlers[event](x, y):
                # Abort the event: the trackball and the picker never see it.
                obj.GetCommand(tags[event]).SetAbortFlag(1)
                after()

        for event in handlers:
            tags[event] = interactor.AddObserver(event, observe, 10.0)
