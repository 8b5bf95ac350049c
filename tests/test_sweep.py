"""`odc sweep` on a real 2-worker Dask LocalCluster (processes): identical results on a
re-run, resume after an interruption, a failing run recorded without stopping the sweep,
the report with non-empty plots; and bad specs rejected before anything runs."""

from __future__ import annotations

import base64
import io
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from twin.sweep import SpecError, SweepError, dask_client, load_spec, read_rows, run_sweep

distributed = pytest.importorskip("distributed")

# Eight runs of ten minutes of `default`, four simulations (the two launchers price the same
# fleet); one combination breaks the heater thermostat's rule (on at 286.15 K, off at
# 284.15 K), which only the pair shows: its two runs must fail alone.
SPEC = """
[sweep]
scenario = "default"
duration_s = 600.0
step_s = 60.0
seeds = [7]
series_samples = 5
output = "{output}"
[grid]
"power.heater_on_k" = [280.15, 286.15]
"power.heater_off_k" = [284.15, 290.15]
"economics.launch_vehicle" = ["starship", "falcon9"]
"""
KPI_COLUMNS = ("usd_per_pflop_day", "space_over_terrestrial", "delivered_over_installed",
               "violation_frac", "binding_limit", "status", "error", "run_id", "seed")


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dask:
        yield dask


def write_spec(folder: Path, name: str, text: str = SPEC) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text.replace("{output}", str(folder / f"{name}-out")), encoding="utf-8")
    return path


def results(rows: list[dict]) -> list[tuple]:
    """What a run must reproduce: everything but its wall time."""
    return [tuple(row.get(k) for k in KPI_COLUMNS) for row in rows]


def test_sweep_reruns_identically_resumes_and_records_a_failed_run(
        client: distributed.Client, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, "first"))
    assert len(spec.runs) == 8
    outcome = run_sweep(spec, client=client, progress=False)
    assert (outcome.done, outcome.failed, outcome.skipped) == (6, 2, 0)
    first = read_rows(outcome.runs_path)
    failed = [r for r in first if r["status"] == "failed"]
    assert len(failed) == 2
    assert all(r["power.heater_on_k"] == 286.15 and r["power.heater_off_k"] == 284.15
               and "heater_off_k" in r["error"] for r in failed)
    ok = [r for r in first if r["status"] == "ok"]
    assert all(r["usd_per_pflop_day"] > 0 and r["binding_limit"] for r in ok)
    # The launcher changes the price, never the fleet's simulated work.
    by_launcher = {r["economics.launch_vehicle"]: r for r in ok
                   if (r["power.heater_on_k"], r["power.heater_off_k"]) == (280.15, 284.15)}
    assert by_launcher["starship"]["delivered_over_installed"] == \
        by_launcher["falcon9"]["delivered_over_installed"]
    assert by_launcher["starship"]["usd_per_pflop_day"] < \
        by_launcher["falcon9"]["usd_per_pflop_day"]

    # The same spec in a fresh folder: identical rows, wall time aside.
    again = load_spec(write_spec(tmp_path, "again"))
    run_sweep(again, client=client, progress=False, report=False)
    assert results(read_rows(again.output / "runs.parquet")) == results(first)

    # Interrupted after two runs, then resumed: the two are skipped, the rest run, and the
    # results are those of the uninterrupted sweep.
    cut = load_spec(write_spec(tmp_path, "cut"))
    partial = run_sweep(cut, client=client, progress=False, max_new_runs=2, report=False)
    assert partial.done + partial.failed == 2 and partial.not_run == 6
    assert len(read_rows(cut.output / "runs.parquet")) == 2
    resumed = run_sweep(cut, client=client, progress=False, report=False)
    assert resumed.skipped == 2 and resumed.done + resumed.failed == 6
    assert results(read_rows(cut.output / "runs.parquet")) == results(first)
    # Nothing left: a third call runs nothing.
    assert run_sweep(cut, client=client, progress=False, report=False).skipped == 8

    # The report: the cheapest design named with its binding limit and ratio, and every
    # plot a real picture (pixel variance, not a blank canvas).
    report = outcome.report_path.read_text(encoding="utf-8")
    assert "Cheapest design per PFLOP-day" in report and "binding limit" in report
    assert "terrestrial reference" in report and "No ageing modelled" in report
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", report)
    assert len(images) >= 6  # 4 KPIs, tornado, Pareto, over time
    for encoded in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(encoded)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert float(np.std(pixels[..., :3])) > 0.05


def bad_spec(tmp_path: Path, old: str, new: str) -> Path:
    return write_spec(tmp_path, "bad", SPEC.replace(old, new))


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ('"power.heater_on_k"', '"power.heater_onn_k"', 'grid."power.heater_onn_k"',
     "Did you mean 'heater_on_k'"),
    ("[280.15, 286.15]", "[]", 'grid."power.heater_on_k"', "empty range"),
    ("[280.15, 286.15]", "{ start = 1.0, stop = 2.0, num = 0 }",
     'grid."power.heater_on_k".num', "empty range"),
    ("[284.15, 290.15]", "[-5.0]", 'grid."power.heater_off_k"', "out of range"),
    ('"economics.launch_vehicle" = ["starship", "falcon9"]',
     '"walker[3].altitude_km" = [500.0]',
     'grid."walker[3].altitude_km"', "index 3 is past the last"),
    ("seeds = [7]", 'seeds = [7]\nkpis = ["usd_per_flop"]', "sweep.kpis", "unknown KPI"),
    ("seeds = [7]", "seed = [7]", "sweep.seed", "unknown key"),
    ('scenario = "default"', 'scenario = "nowhere"', "sweep.scenario", "no scenario"),
])
def test_bad_specs_name_file_and_key(tmp_path: Path, old: str, new: str, key: str,
                                     words: str) -> None:
    path = bad_spec(tmp_path, old, new)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.file == str(path) and caught.value.key == key
    assert words in str(caught.value)
    assert not (tmp_path / "bad-out").exists()  # nothing ran


@pytest.mark.parametrize(("table", "key", "words"), [
    ('{ dist = "uniform", low = 5.0, high = 1.0 }', 'distributions."power.heater_on_k"',
     "cannot sample"),
    ('{ dist = "normal", mean = 280.0, sd = 0.0 }', 'distributions."power.heater_on_k".sd',
     "cannot sample"),
    ('{ dist = "loguniform", low = 0.0, high = 1.0 }',
     'distributions."power.heater_on_k".low', "cannot sample"),
    ('{ dist = "beta", a = 1.0 }', 'distributions."power.heater_on_k".dist',
     "unknown distribution"),
    ('{ dist = "choice", values = [] }', 'distributions."power.heater_on_k".values',
     "cannot sample"),
])
def test_unsampleable_distributions_are_rejected(tmp_path: Path, table: str, key: str,
                                                 words: str) -> None:
    text = ('[sweep]\nscenario = "default"\nduration_s = 600.0\nsamples = 3\n'
            f'[distributions]\n"power.heater_on_k" = {table}\n')
    path = tmp_path / "mc.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.key == key and words in str(caught.value)


def test_monte_carlo_draws_are_reproducible(tmp_path: Path) -> None:
    text = ('[sweep]\nscenario = "default"\nduration_s = 600.0\nsamples = 6\n'
            'sampling_seed = 3\nseeds = 2\n[distributions]\n'
            '"power.battery_capacity_wh" = { dist = "uniform", low = 12000.0, high = 24000.0 }\n'
            '"economics.launch_cost_per_kg_usd" = { dist = "loguniform", low = 200.0, '
            'high = 3000.0 }\n"workload.policy" = { dist = "choice", values = '
            '["sun_aware", "first_fit"] }\n')
    path = tmp_path / "mc.toml"
    path.write_text(text, encoding="utf-8")
    one, two = load_spec(path), load_spec(path)
    assert len(one.runs) == 12 and one.runs == two.runs
    assert len({run.run_id for run in one.runs}) == 12
    for run in one.runs:
        assert 12000.0 <= run.params["power.battery_capacity_wh"] <= 24000.0
        assert 200.0 <= run.params["economics.launch_cost_per_kg_usd"] <= 3000.0


def test_an_unreachable_scheduler_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = load_spec(write_spec(tmp_path, "nowhere"))
    with pytest.raises(SweepError, match="cannot reach the Dask scheduler"):
        run_sweep(spec, scheduler=f"tcp://127.0.0.1:{port}", progress=False,
                  connect_timeout_s=1.0)
    assert not spec.output.exists()  # nothing ran, nothing was written
    with pytest.raises(SweepError, match="tcp://HOST:8786"), dask_client("localhost:8786"):
        pass


def test_odc_sweep_command_checks_the_spec(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from odc.cli import main

    good = write_spec(tmp_path, "good")
    assert main(["sweep", str(good), "--check"]) == 0
    assert "8 runs of" in capsys.readouterr().err
    bad = bad_spec(tmp_path, "[280.15, 286.15]", "[]")
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and 'grid."power.heater_on_k"' in err and "empty range" in err


def test_pareto_front_and_sensitivities_by_hand() -> None:
    from twin.sweep.report import pareto_front, sensitivities

    # (risk, cost): (0.0, 5) and (0.2, 3) and (0.5, 1) trade off; (0.3, 4) and (0.2, 6)
    # are beaten by (0.2, 3).
    points = [(0.0, 5.0), (0.3, 4.0), (0.2, 3.0), (0.5, 1.0), (0.2, 6.0)]
    assert pareto_front(points) == [0, 2, 3]
    grid = [{"status": "ok", "a": a, "b": b, "usd_per_pflop_day": 10.0 * a}
            for a in (1.0, 2.0, 3.0) for b in ("x", "y") for _ in range(2)]
    for row in grid:
        row["usd_per_pflop_day"] += 5.0 if row["b"] == "y" else 0.0
    spans = sensitivities(grid, ("a", "b"))
    assert spans["a"] == (pytest.approx(12.5), pytest.approx(32.5))  # means at a = 1 and 3
    assert spans["b"] == (pytest.approx(20.0), pytest.approx(25.0))
    # Many distinct values: a straight line through them, at their 10th and 90th percentiles.
    mc = [{"status": "ok", "c": float(c), "usd_per_pflop_day": 3.0 * c + 1.0}
          for c in range(101)]
    low, high = sensitivities(mc, ("c",))["c"]
    assert (low, high) == (pytest.approx(31.0), pytest.approx(271.0))
