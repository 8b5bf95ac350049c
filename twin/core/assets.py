"""Where the bundled data lives: scenarios, TLE catalogs, the Earth texture, testbeds.

In a source tree (and an editable install) it is the ``assets/`` folder beside ``twin/``.
A wheel ships that folder as the package ``odc_assets`` (pyproject.toml maps it), because
a top-level ``assets`` package in site-packages would clash with other projects'. The
source tree's folder wins when both exist, so code and data always come from one checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SOURCE_ASSETS_DIR: Path = Path(__file__).resolve().parents[2] / "assets"
"""assets/ of the checkout this module was imported from; absent in an installed wheel."""
PACKAGE = "odc_assets"
"""The name assets/ is installed under from a wheel."""


def assets_dir() -> Path:
    """The bundled assets folder: the checkout's ``assets/``, else the installed package.

    Raises:
        FileNotFoundError: neither is there (a broken install); the message says where
            it looked.
    """
    if (SOURCE_ASSETS_DIR / "scenarios").is_dir():
        return SOURCE_ASSETS_DIR
    try:
        installed = Path(str(files(PACKAGE)))
    except ModuleNotFoundError:
        installed = None
    if installed is None or not (installed / "scenarios").is_dir():
        raise FileNotFoundError(
            f"bundled assets not found: no {SOURCE_ASSETS_DIR} and no installed "
            f"{PACKAGE!r} package; reinstall odc-twin (pip install .)")
    return installed
