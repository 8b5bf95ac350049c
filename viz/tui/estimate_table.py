"""The dashboard's state-estimate table for a mirrored node (``viz.estimate`` read out).

Three things side by side per estimated quantity: the measurement, the open-loop
prediction and the estimate with its ±1σ (the junction is estimated only, never
measured); then the tracked parameters and the diagnosis.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from viz.estimate import (
    diagnosis_text,
    estimate_rows,
    has_estimate,
    kelvin_text,
    sigma_text,
    tracked_rows,
    tracked_text,
)
from viz.mirror import MirrorBinding

NOMINAL_BAND_FRAC = 0.15  # the twin's default drift band: shade what leaves it


def estimate_table(model: Any, binding: MirrorBinding) -> Table | None:
    """A rich Table of the binding's estimate, or None when the twin publishes none."""
    arrays, catalog = model.arrays, model.quantities
    if not has_estimate(arrays):
        return None
    table = Table(title=Text("State estimate (Kalman filter)", style="bold"),
                  title_justify="left", expand=True, box=None, padding=(0, 1),
                  header_style="bold")
    for heading in ("Quantity", "Measured", "Open loop", "Estimate", "±1σ"):
        table.add_column(heading, justify="left" if heading == "Quantity" else "right")
    for row in estimate_rows(arrays, binding):
        table.add_row(row.label, kelvin_text(catalog, row.measured)
                      if row.quantity != "temp_junction_k" else Text("not measured",
                                                                     style="dim"),
                      kelvin_text(catalog, row.open_loop),
                      Text(kelvin_text(catalog, row.estimate), style="bold"),
                      sigma_text(row.sigma))
    for row in tracked_rows(arrays, binding):
        off = row.unit == "" and abs(row.value - 1.0) > NOMINAL_BAND_FRAC
        table.add_row(Text(row.label, style="dim"), "", "",
                      Text(tracked_text(row), style="bold white on red" if off else ""),
                      Text("tracked" if row.sigma != 0.0 else "", style="dim"))
    diagnosis = diagnosis_text(arrays, catalog, binding)
    if diagnosis:
        style = "dim" if diagnosis == "none" else "bold white on red"
        table.add_row(Text("Diagnosis", style="bold"), "", "", Text(diagnosis, style=style), "")
    return table
