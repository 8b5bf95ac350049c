"""The 3D view's colour bar reads round numbers (issue 16 review: the temperature bar read
-4.25, 19.12, 42.5, 65.88, 89.25). The ticks, and a real off-screen scene's bar."""

from __future__ import annotations

import numpy as np
import pytest

from viz.colour_bar import nice_ticks
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from maputil import EngineStates  # noqa: E402
from test_map_view import press  # noqa: E402


def is_round(values: np.ndarray) -> bool:
    """Every value a whole multiple of one step of 1, 2, 2.5 or 5 times a power of ten."""
    if len(values) < 2:
        return True
    step = float(np.round(values[1] - values[0], 12))
    mantissa = step / 10.0 ** np.floor(np.log10(step) + 1e-9)
    return any(np.isclose(mantissa, m) for m in (1.0, 2.0, 2.5, 5.0)) and \
        np.allclose(values / step, np.round(values / step)) and \
        np.allclose(np.diff(values), step)


@pytest.mark.parametrize(("low", "high"), [(-4.25, 89.25), (89.5, 90.0), (0.0, 100.0),
                                           (-73.1, 40.0), (0.0, 3.2e9), (-0.001, 0.002),
                                           (0.0, 7.91), (17.3, 17.31)])
def test_ticks_are_round_inside_the_range_and_few(low, high):
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 6, ticks
    assert ticks.min() >= low - 1e-12 and ticks.max() <= high + 1e-12, ticks
    assert is_round(ticks), ticks
    # Not too sparse either: they cover at least half of the range.
    assert ticks.max() - ticks.min() >= 0.5 * (high - low), ticks


def test_degenerate_ranges():
    assert list(nice_ticks(5.0, 5.0)) == [5.0]
    assert len(nice_ticks(float("nan"), 1.0)) == 0


def test_the_scene_bar_shows_round_labels_for_every_field():
    twin = EngineStates("default", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[1280, 720]), None, None,
                    ViewOptions(show_fps=False, trails=False))
    try:
        app.apply_meta(twin.meta)
        assert app.apply_state(twin.step())
        seen = 0
        for _ in app.scene.fields:
            app.render()
            bar = app.scene.bar
            if app.scene.categories is None:  # a number field, not an enum's swatches
                labels = bar.GetCustomLabels()
                assert labels is not None, (app.scene.field.name, app.scene.clim)
                values = np.array([labels.GetValue(i)
                                   for i in range(labels.GetNumberOfTuples())])
                low, high = bar.GetLookupTable().GetRange()
                assert bar.GetUseCustomLabels() and len(values) >= 1, app.scene.field.name
                assert values.min() >= low - 1e-9 and values.max() <= high + 1e-9
                assert is_round(values), (app.scene.field.name, values)
                seen += 1
            press(app, "c")
        assert seen >= 3
    finally:
        app.pl.close()
