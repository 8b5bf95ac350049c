"""The wheel works outside the source tree: code, assets and the dashboard's .tcss all ship.

The wheel is built from a copy of the sources (so the checkout gets no build/ folder),
installed with ``pip install --target`` and run with PYTHONPATH pointing there, from a
directory outside the repository, by this interpreter (whose site-packages has the
dependencies, so nothing downloads).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "twin", "viz", "bridge", "odc", "assets")
ANY_PORT = "tcp://127.0.0.1:*"

# What the installed code says about where it found things; run inside the installed tree.
WHERE = """
import json, twin.scenario, viz.fleet_scene, bridge.definitions, viz.tui.app as app
from pathlib import Path
print(json.dumps({
    "twin": twin.scenario.__file__,
    "scenarios": str(twin.scenario.SCENARIOS_DIR),
    "default": str(twin.scenario.SCENARIOS_DIR / "default.toml"),
    "texture": str(viz.fleet_scene.EARTH_TEXTURE),
    "testbed": str(bridge.definitions.TESTBEDS_DIR / "flatsat.toml"),
    "tcss": str(Path(app.__file__).parent / app.DashboardApp.CSS_PATH),
}))
"""


def _setuptools_version() -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return (0,)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    # The dev extras bring setuptools>=77, which builds offline; an older one cannot read
    # pyproject.toml's license field, so pip fetches a new one into an isolated build.
    isolation = ["--no-build-isolation"] if _setuptools_version() >= (77,) else []
    _pip("wheel", "--no-deps", *isolation, "-w", str(tmp / "dist"), str(src))
    (built,) = (tmp / "dist").glob("odc_twin-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Path:
    """The folder the wheel was installed into (``pip install --target``)."""
    target = wheel.parent.parent / "site"
    _pip("install", "--no-deps", "--target", str(target), str(wheel))
    return target


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"


def _run(installed: Path, cwd: Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def test_wheel_ships_every_package_asset_and_the_tcss(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = sorted(p.relative_to(ROOT / "assets").as_posix()
                    for p in (ROOT / "assets").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts)
    assert "scenarios/default.toml" in assets
    missing = [a for a in assets if f"odc_assets/{a}" not in names]
    assert not missing, f"assets missing from the wheel: {missing}"
    assert "viz/tui/dashboard.tcss" in names
    packages = sorted(p.relative_to(ROOT).as_posix()
                      for top in ("twin", "viz", "bridge", "odc")
                      for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)
    missing = [p for p in packages if p not in names]
    assert not missing, f"modules missing from the wheel: {missing}"


def test_installed_code_finds_its_data_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    result = _run(installed, tmp_path, "-c", WHERE, timeout_s=60)
    assert result.returncode == 0, result.stderr
    where = {key: Path(value) for key, value in json.loads(result.stdout).items()}
    for key, path in where.items():
        assert path.is_relative_to(installed), f"{key} came from {path}, not the install"
        if key != "scenarios":
            assert path.is_file(), f"{key}: {path} is missing"


def test_installed_headless_demo_runs_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    result = _run(installed, tmp_path, "-m", "odc.cli", "demo", "--headless", "--duration", "5",
                  "--pub", ANY_PORT, "--cmd", ANY_PORT, "--ingest", ANY_PORT, timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert "headless on scenario 'default', 40 nodes" in result.stdout
    assert "connection LIVE" in result.stdout


def test_every_python_package_of_the_tree_is_listed_for_the_wheel() -> None:
    # A package missing from pyproject's list is left out of the wheel: the installed twin
    # then fails on an import the source tree never misses.
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("twin", "viz", "bridge", "odc")
             for init in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set(), "add these to pyproject.toml's packages"
