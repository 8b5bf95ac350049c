"""The dashboard's "Coming up" panel, fed by a real twin's meta.autonomy over the stream:
pending timeline entries with their countdown or trigger, and the rules."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.tuiutil import drawn
from tests.twinutil import running_twin
from twin.scenario import parse_scenario
from twin.scenario.loader import SCENARIOS_DIR
from viz.tui.app import DashboardApp
from viz.tui.upcoming import UpcomingPanel, countdown, upcoming_text

TIMELINE = """
[[timeline]]
name = "policy-sun"
at_s = 3600.0
command = { cmd = "set_policy", policy = "sun_aware" }

[[timeline]]
name = "cap-after-eclipse"
after = { event = "eclipse_entry", sat = "mid-53-02-03" }
offset_s = 120.0
command = { cmd = "set_power_cap", sat = "mid-53-02-03", power_w = 4000.0 }
"""


def test_countdown_words() -> None:
    assert [countdown(s) for s in (0.2, 42, 245, 7800, 90000)] == [
        "now", "in 42s", "in 4m05s", "in 2h10m", "in 1d01h"]


def test_malformed_autonomy_is_skipped_not_raised() -> None:
    assert "no timeline" in upcoming_text(None, 0.0).plain
    odd = {"timeline": [3, {"commands": "x"}, {"due_t_utc": "soon"}], "rules": ["r"]}
    assert "waiting" in upcoming_text(odd, None).plain


def test_panel_shows_what_is_coming_from_a_real_twin(tmp_path: Path) -> None:
    scenario = parse_scenario((SCENARIOS_DIR / "default.toml").read_text() + TIMELINE,
                              source="upcoming.toml", base_dir=SCENARIOS_DIR)

    async def run(pub: str, cmd: str) -> str:
        app = DashboardApp(pub, cmd)
        async with app.run_test(size=(160, 44)) as pilot:
            for _ in range(100):  # meta comes within its 3 s interval, or on request
                await pilot.pause(0.1)
                if app.query_one(UpcomingPanel).autonomy:
                    break
            await drawn(pilot, app)  # the panel shows with the next draw
            assert app.query_one(UpcomingPanel).display  # a twin with a timeline: shown
            text = str(app.query_one(UpcomingPanel).render())
            folder = Path(os.environ.get("ODC_SHOTS", str(tmp_path)))
            folder.mkdir(parents=True, exist_ok=True)
            app.save_screenshot("tui_upcoming.svg", str(folder))
        return text

    with running_twin(scenario, rate_hz=5.0, warp=10.0) as twin:
        text = asyncio.run(run(twin.addresses.pub, twin.addresses.command))
    assert "set_policy" in text and "in 5" in text  # an hour ahead, a few steps in: 59m..
    assert "waiting" in text and "eclipse_entry (mid-53-02-03) + 120 s" in text
    assert "set_power_cap" in text
    assert "junction_hot ×0" in text and "soc_low ×0" in text
