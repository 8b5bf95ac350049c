"""The 3D viewer's colour bar: the colour field's range or an enum's swatches, beside the fleet.

A mixin of ``viz.fleet_scene.FleetScene``: the bar is rebuilt whenever the colour field
changes and its range follows the values the nodes are painted with, in the field's
display unit (°C, %, kW), with the published limits marked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from viz import hud_text, node_colours


def nice_ticks(low: float, high: float, most: int = 6) -> np.ndarray:
    """Round values inside ``[low, high]`` for the bar's labels: multiples of 1, 2, 2.5 or
    5 times a power of ten, at most ``most`` of them (``-4.25..89.25`` gives 0, 20, ... 80
    where even spacing gave ``19.12``, ``65.88``)."""
    low, high = sorted((float(low), float(high)))
    if not (np.isfinite(low) and np.isfinite(high)) or high - low <= 0.0:
        return np.array([low]) if np.isfinite(low) else np.array([])
    raw = (high - low) / max(most - 1, 1)
    power = 10.0 ** np.floor(np.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = factor * power
        first, last = np.ceil(low / step - 1e-9), np.floor(high / step + 1e-9)
        if last - first + 1 <= most:
            break
    ticks = np.arange(first, last + 1) * step
    return np.round(ticks, 10) + 0.0  # no -0.0, no 0.30000000000000004


class ColourBar:
    """The colour bar of a ``FleetScene``: the lookup table the nodes are painted with.

    The host class provides the plotter, the colour table and the field being shown;
    this mixin keeps ``bar`` (the VTK scalar bar), ``bar_host`` (the hidden actor whose
    mapper holds its lookup table) and ``categories`` (an enum's codes and colours).
    """

    pl: Any
    table: np.ndarray
    field: node_colours.ColourField | None
    clim: tuple[float, float] | None
    categories: tuple[list[int], np.ndarray] | None
    text: Any

    def _build_colour_bar(self) -> None:
        """A hidden one-point mesh hosts the lookup table that the colour bar shows."""
        import pyvista as pv

        self.pl.remove_actor("colour_bar_host", reset_camera=False, render=False)
        if getattr(self, "bar", None) is not None:
            for prop in (self.bar.GetTitleTextProperty(), self.bar.GetLabelTextProperty(),
                         self.bar.GetAnnotationTextProperty()):
                self.text.discard(prop)
        if self.pl.scalar_bars:
            self.pl.remove_scalar_bar()
        self.categories = None
        self._bar_range: tuple[float, ...] | None = None  # set on the first update
        self._bar_ticks: tuple[float, ...] | None = None
        if self.field is None:
            return
        host = pv.PolyData(np.zeros((1, 3), dtype=np.float32))
        host["value"] = np.zeros(1)
        title = hud_text.scalar_bar_title(self.field)
        # The bar shows the same table the nodes are painted with (floor included).
        import matplotlib.colors

        cmap = matplotlib.colors.ListedColormap(self.table / 255.0)
        self.bar_host = self.pl.add_mesh(
            host, scalars="value", cmap=cmap, clim=(0.0, 1.0), name="colour_bar_host",
            pickable=False, reset_camera=False, n_colors=256,
            scalar_bar_args={
                "title": title, "vertical": True, "position_x": 0.89, "position_y": 0.1,
                "width": 0.05, "height": 0.5, "title_font_size": 15, "label_font_size": 12,
                "color": "white", "fmt": "%.4g", "n_labels": 5, "font_family": "courier",
                "unconstrained_font_size": True,
            },
        )
        self.bar_host.SetVisibility(False)
        self.bar = self.pl.scalar_bars[title]
        self.bar.SetDrawAnnotations(True)
        self.bar.SetAnnotationTextScaling(False)
        self.bar.GetAnnotationTextProperty().SetColor(1.0, 0.6, 0.4)
        # Its words scale with the window like the HUD's (sizes at a 720-row window).
        self.text.add(self.bar.GetTitleTextProperty(), 15)
        self.text.add(self.bar.GetLabelTextProperty(), 12)
        self.text.add(self.bar.GetAnnotationTextProperty(), 12)
        self.categories = node_colours.category_colours(self.field, self.table) \
            if self.field.categorical else None
        if self.categories is not None:
            self._category_bar(*self.categories)

    def _category_bar(self, codes: list[int], colours: np.ndarray) -> None:
        """An enum's bar: one swatch per code the catalog names, with its name beside it."""
        import vtk

        lut = vtk.vtkLookupTable()
        lut.IndexedLookupOn()
        lut.SetNumberOfTableValues(max(len(codes), 1))
        for i, (code, rgb) in enumerate(zip(codes, colours, strict=True)):
            lut.SetTableValue(i, *(float(c) / 255.0 for c in rgb), 1.0)
            lut.SetAnnotation(vtk.vtkVariant(float(code)), self.field.reads.label_of(code))
        self.bar_host.GetMapper().SetLookupTable(lut)
        self.bar.SetLookupTable(lut)
        self.bar.GetAnnotationTextProperty().SetColor(1.0, 1.0, 1.0)

    def _update_colour_bar(self) -> None:
        if self.field is None or self.clim is None or self.categories is not None:
            return
        mapper = self.bar_host.GetMapper()
        lut = mapper.GetLookupTable()
        # The bar reads in the display unit (°C, %, kW), as the HUD and the dashboard do;
        # the nodes are painted from the wire values with the same range.
        typical = max(abs(self.clim[0]), abs(self.clim[1]))
        shown = self.field.reads.scale_for(typical)
        bar_range = tuple(sorted(float(shown.convert(v)) for v in self.clim))
        # Compared with the range last set, not the mapper's: a new bar's mapper starts at
        # (0, 1), and a field whose range is (0, 1) then got no labels and no limit marks.
        if getattr(self, "_bar_range", None) != bar_range:
            self._bar_range = bar_range
            mapper.SetScalarRange(*bar_range)
            lut.SetRange(*bar_range)
            lut.ResetAnnotations()
            # Round numbers on the bar, not five even steps of an uneven range; set only
            # when they change (the range moves a little with every state, they rarely).
            ticks = tuple(nice_ticks(*bar_range).tolist())
            if ticks != getattr(self, "_bar_ticks", None):
                import vtk

                self._bar_ticks = ticks
                labels = vtk.vtkDoubleArray()
                for tick in ticks:
                    labels.InsertNextValue(tick)
                self.bar.SetCustomLabels(labels)
                self.bar.SetUseCustomLabels(bool(ticks))
            # Mark the published limits on the bar (only those inside its range show).
            for key, value in sorted(self.field.limits.items()):
                lut.SetAnnotation(float(shown.convert(value)), key.replace("_", " "))
            self.bar.SetTitle(hud_text.scalar_bar_title(self.field, typical))
