"""Large fleets end to end (issue 22): ``odc view`` subscribes for what it draws, the
``node`` command gives one node's full row, and ``Twin.subscribe`` is the twin's stream.

A real twin on loopback stands for a megafleet: the 40-node ``default`` scenario with the
full-state threshold at 10 (``odc run --full-state-max-sats 10``), so its ``state`` has
no node rows, and, for the viewer, a draw budget of 16 nodes (every 3rd node drawn), as a
million is drawn 1 in 10. The viewer renders offscreen (Mesa EGL/llvmpipe).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq

pv = pytest.importorskip("pyvista")

from viz.viewer import ViewerApp, ViewOptions, prefer_egl  # noqa: E402

prefer_egl()

from twinutil import connected, request, running_twin  # noqa: E402
from viewerstate import tick_until  # noqa: E402

from odc.client import State, Twin, TwinCommandError  # noqa: E402
from twin.runtime.server import Addresses  # noqa: E402
from viz import lod  # noqa: E402
from viz.stream import CommandClient, StreamClient  # noqa: E402

SHOTS = Path("/tmp/shots/view-subscribe")
REDUCED = {"full_state_max_sats": 10}
FAST = {"warp": 3000.0, "rate_hz": 50.0}


# --------------------------------------------------------------------------- node command
def test_node_command_returns_every_field_of_one_node():
    with running_twin("default", paused=True, **REDUCED) as twin, \
            connected(zmq.DEALER, twin.addresses.command) as sock:
        reply = request(sock, {"cmd": "node", "sat": "mid-53-01-08"})
        assert reply["ok"] is True, reply
        sat = reply["sat"]
        assert sat == 7 and reply["name"] == "mid-53-01-08" and reply["group"] == "mid-53"
        engine = twin.engine
        for f in engine.fields:
            array = f.array
            if f.spec.per_sat and array.shape[0] == engine.n_sats:
                expected = array[sat]
            elif array.ndim == 2 and array.shape[1] == engine.n_sats:
                expected = array[:, sat]  # station x node: the node's column
            else:
                assert f.spec.name not in reply["row"]
                continue
            np.testing.assert_array_equal(np.asarray(reply["row"][f.spec.name]), expected,
                                          err_msg=f.spec.name)
            assert reply["units"][f.spec.name] == f.spec.unit
        assert request(sock, {"cmd": "node", "sat": 40})["error"] == \
            "node: 'sat' index 40 out of range 0..39"
        assert "needs 'sat'" in request(sock, {"cmd": "node"})["error"]


# --------------------------------------------------------------------------- client
@pytest.mark.twin_scenario("default", **FAST, **REDUCED)
def test_client_subscription_receives_exactly_the_asked_fields(twin: Twin) -> None:
    n = twin.twin_meta["sats"]["n"]
    reduced = next(twin.states(idle_timeout_s=5.0))
    assert not any(name in reduced.values for name in ("soc_frac", "pos_gcrs_km"))
    states = twin.subscribe(["pos_gcrs_km", "soc_frac"], dtype="float32", every=3)
    first, second = next(states), next(states)
    states.close()
    assert isinstance(first, State) and set(first.values) == {"pos_gcrs_km", "soc_frac"}
    assert first.nodes.tolist() == list(range(0, n, 3))
    assert first["pos_gcrs_km"].dtype == np.float32 and first["pos_gcrs_km"].shape == (14, 3)
    assert first["soc_frac"].dtype == np.float32 and first["soc_frac"].shape == (14,)
    assert second.step > first.step and "n_sats" in first.fleet
    assert np.all(np.linalg.norm(first["pos_gcrs_km"], axis=1) > 6500.0)
    whole = next(twin.subscribe(["limit_level"]))
    assert whole.nodes is None and whole["limit_level"].shape == (n,)
    with pytest.raises(TwinCommandError, match="stop 100 is past the fleet's 40 nodes"):
        next(twin.subscribe(["soc_frac"], stop=100))
    with pytest.raises(ValueError, match="did you mean 'soc_frac'"):
        next(twin.subscribe(["soc_frc"]))
    # A field's wait reads the twin's stream of it: it works on a reduced twin.
    assert twin.wait_for("soc_frac", ">", 0.0, timeout_s=10.0)["soc_frac"].shape == (n,)
    row = twin.node(sat=5)
    assert row["sat"] == 5 and {"soc_frac", "temp_compute_k", "in_contact"} <= set(row["row"])


# --------------------------------------------------------------------------- viewer
def _viewer(addresses: Addresses) -> tuple[ViewerApp, StreamClient, CommandClient]:
    stream = StreamClient(addresses.pub, stale_after_s=1.0)
    commands = CommandClient(addresses.command, timeout_s=2.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[1280, 720]), stream, commands,
                    ViewOptions(show_fps=False))
    return app, stream, commands


def _drawn_where_the_twin_has_them(app: ViewerApp, twin) -> bool:
    """The drawn points are the twin's positions of the subscribed nodes, now (paused)."""
    positions = twin.engine.fields[0].array  # pos_gcrs_km
    assert twin.engine.fields[0].spec.name == "pos_gcrs_km"
    drawn = app.scene.drawn
    return drawn is not None and app.scene.sats.points.shape == (len(drawn), 3) and \
        np.allclose(app.scene.sats.points, positions[drawn], atol=0.05)


def test_viewer_subscribes_draws_survives_a_restart_and_shows_the_picked_row(monkeypatch):
    monkeypatch.setattr(lod, "DRAW_BUDGET", 16)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_twin("default", rate_hz=10.0, **REDUCED) as twin:
        addresses = twin.addresses
        app, stream, commands = _viewer(addresses)
        try:
            assert app.wait_for_frame(30.0), "no frame drawn from the subscription"
            assert app.reduced and app.subscription.topic is not None
            assert app.scene.drawn.tolist() == list(range(0, 40, 3))
            assert tick_until(app, lambda: app.subscription.flagged.topic is not None, 10.0)
            live = {s["top_field"]: s for s in
                    commands.send("subscriptions")["subscriptions"]}
            drawn_sub, flagged = live[None], live["limit_level"]  # two, and only two
            assert len(live) == 2 and drawn_sub["float32"] and drawn_sub["n_selected"] == 14
            assert "temp_compute_k" in drawn_sub["fields"] and "pos_itrs_km" in drawn_sub["fields"]
            assert {"pos_gcrs_km", "limit_level", "fault_flags"} <= set(flagged["fields"])
            commands.send("pause")
            step = commands.send("status")["step"]
            assert tick_until(app, lambda: app.scene.header.get("step") == step and
                              _drawn_where_the_twin_has_them(app, twin), 10.0)
            assert tick_until(app, lambda: "showing 14 of 40 nodes, float32, 1 in 3"
                              in app.scene.hud_top.GetInput(), 5.0)
            # The coloured field changes: so does the subscription.
            app.do("next_field")
            field = app.scene.field.name
            assert tick_until(app, lambda: field in app.subscription.granted.get(
                "fields", ()), 10.0), app.subscription.error
            commands.send("step", n=1)
            assert tick_until(app, lambda: field in app.scene.arrays and np.isfinite(
                app.scene.arrays[field][app.scene.drawn]).all(), 10.0)
            # Pick a drawn node: its full row comes on demand, unsubscribed fields and all.
            node = int(app.scene.drawn[4])
            app.pick(app.scene.sats.points[4])
            assert app.scene.selected == node
            name = twin.engine.scenario.satellites[node].name
            assert tick_until(app, lambda: node in app.subscription.node_rows and
                              name in app.scene.hud_node.GetInput() and
                              "Jobs running" in app.scene.hud_node.GetInput(), 10.0)
            jobs = next(f.array for f in twin.engine.fields
                        if f.spec.name == "jobs_running")[node]
            assert f"Jobs running: {jobs}" in app.scene.hud_node.GetInput()
            app.render()
            app.pl.screenshot(str(SHOTS / "subscribed_40_as_megafleet.png"))
            drawn = app.frames_drawn
        except BaseException:
            app.close_subscription()
            app.pl.close()
            stream.close()
            commands.close()
            raise
    try:
        # The twin goes away and another starts on the same addresses: it knows nothing
        # of the viewer's subscription until the viewer asks again, on its own.
        with running_twin("default", rate_hz=10.0, addresses=Addresses(
                addresses.pub, addresses.command, addresses.ingest), **REDUCED):
            assert tick_until(app, lambda: app.frames_drawn > drawn + 3, 30.0), \
                app.subscription.status_line(None)
            live = commands.send("subscriptions")["subscriptions"]
            assert sorted(str(s["n_selected"]) for s in live) == ["14", "None"]
            assert np.isfinite(app.scene.sats.points).all()
            app.render()
            app.pl.screenshot(str(SHOTS / "after_restart.png"))
            drawn = app.frames_drawn
        # And a twin with full states again: drawn from them, as before.
        with running_twin("default", rate_hz=10.0, addresses=Addresses(
                addresses.pub, addresses.command, addresses.ingest)):
            assert tick_until(app, lambda: app.frames_drawn > drawn + 3 and not app.reduced,
                              30.0)
            # The level of detail's own sample of the whole frame (budget 16), not every 3rd.
            assert app.scene.sample_every is None
            assert app.scene.drawn.tolist() == lod.drawn_nodes(40).tolist()
            assert np.isfinite(app.scene.sats.points).all() and app.receiving_line() is None
    finally:
        app.close_subscription()
        app.pl.close()
        stream.close()
        commands.close()


def test_a_small_fleet_is_drawn_from_the_default_state_as_before():
    with running_twin("default", rate_hz=10.0) as twin:
        app, stream, commands = _viewer(twin.addresses)
        try:
            assert app.wait_for_frame(30.0)
            for _ in range(5):
                app.tick(50.0)
            assert not app.reduced and app.subscription.topic is None
            assert app.scene.drawn is None and app.receiving_line() is None
            assert commands.send("subscriptions")["subscriptions"] == []
        finally:
            app.close_subscription()
            app.pl.close()
            stream.close()
            commands.close()


def test_flagged_nodes_outside_the_sample_are_drawn_and_forgotten_when_they_clear():
    """The flagged nodes' stream (top by limit_level) adds its rows to the drawn sample's
    for one frame: a node in alarm outside the sample is flagged where it is, and once it
    leaves that stream its row is "no data" again, never a stale alarm."""
    from twin.protocol.codec import Message
    from viz.view_subscription import SelectionFrames

    n = 12
    meta = {"sats": {"n": n}, "fields": [
        {"name": "pos_gcrs_km", "dtype": "<f8", "shape": [n, 3], "per_sat": True},
        {"name": "limit_level", "dtype": "|u1", "shape": [n], "per_sat": True},
        {"name": "in_contact", "dtype": "|b1", "shape": [2, n], "per_sat": False}]}
    frames = SelectionFrames()
    frames.configure(meta)
    sample = np.arange(0, n, 3)

    def message(nodes, level, contact=True):
        arrays = {"sat_index": nodes.astype("<i4"),
                  "pos_gcrs_km": np.full((nodes.size, 3), 7000.0, np.float32) +
                  nodes[:, None], "limit_level": np.full(nodes.size, level, np.uint8)}
        if contact:
            arrays["in_contact"] = np.ones((2, nodes.size), bool)
        return Message("sub/x", {"t_utc": 0.0, "step": 1, "sub": "x"}, arrays)

    state = frames.frame(message(sample, 0), extra=message(np.array([4, 7]), 2, False))
    level, pos = state.arrays["limit_level"], state.arrays["pos_gcrs_km"]
    assert np.flatnonzero(level == 2).tolist() == [4, 7]
    assert pos[4, 0] == 7004.0 and pos[3, 0] == 7003.0 and np.isnan(pos[5]).all()
    contact = state.arrays["in_contact"]
    assert contact[:, sample].all() and not contact[:, 4].any()
    assert frames.n_selected == 4 and "sub" not in state.header
    state = frames.frame(message(sample, 0), extra=message(np.array([7]), 2, False))
    assert np.flatnonzero(state.arrays["limit_level"] == 2).tolist() == [7]
    assert np.isnan(state.arrays["pos_gcrs_km"][4]).all()
    with pytest.raises(Exception, match="sat_index out of range"):
        frames.frame(message(np.array([0, 12]), 0))


# --------------------------------------------------------------------------- dashboard
def test_the_dashboards_node_screen_fetches_the_row_the_stream_lacks():
    """``odc tui`` on a reduced stream: the node screen asks the twin (``node``) and shows
    the node's values, as the twin has them."""
    import asyncio

    from twinutil import receive

    from viz.stream import LIVE
    from viz.tui.app import DashboardApp, StreamUpdate
    from viz.tui.screens import VALUE_WIDTH, DetailScreen

    with running_twin("default", paused=True, **REDUCED) as twin, \
            connected(zmq.DEALER, twin.addresses.command) as command, \
            connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub:
        assert request(command, {"cmd": "meta"})["ok"]
        meta = receive(sub, "meta")
        assert request(command, {"cmd": "step", "n": 1})["ok"]
        state = receive(sub, "state")
        assert state.header["reduced"] is True
        soc = float(next(f.array for f in twin.engine.fields if f.spec.name == "soc_frac")[6])

        async def run() -> None:
            app = DashboardApp(twin.addresses.pub, twin.addresses.command, connect=False)
            async with app.run_test(size=(120, 40)) as pilot:
                app.feed(StreamUpdate(meta=meta, connection=LIVE))
                app.feed(StreamUpdate(state=state, connection=LIVE))
                await pilot.pause(0.2)
                screen = DetailScreen(app.model, 6)
                app.push_screen(screen)
                for _ in range(50):
                    await pilot.pause(0.1)
                    app.feed(StreamUpdate(state=state, connection=LIVE))
                    if 6 in app.node_rows and screen._field_rows():
                        break
                rows = {key: value for key, _, value, _ in screen._field_rows()}
                assert app.node_rows[6]["row"]["soc_frac"] == pytest.approx(soc)
                expected = app.model.quantities.field("soc_frac").format(soc, VALUE_WIDTH)
                assert rows["soc_frac"].strip() == expected.strip()
                assert {"temp_compute_k", "jobs_running", "pos_gcrs_km"} <= set(rows)
                assert "in_contact" not in rows and "elevation_deg" not in rows
                from textual.widgets import DataTable

                table = screen.query_one("#detail-fields", DataTable)
                for _ in range(30):  # the screen redraws at its own pace
                    app.feed(StreamUpdate(state=state, connection=LIVE))
                    await pilot.pause(0.1)
                    if table.row_count == len(rows):
                        break
                assert table.row_count == len(rows)
                SHOTS.mkdir(parents=True, exist_ok=True)
                app.save_screenshot("tui-node-row-120x40.svg", str(SHOTS))

        asyncio.run(run())


def test_the_viewers_subscriptions_are_let_go_when_replaced_and_at_close():
    """Colouring by another field asks for another subscription: the viewer lets the old
    one go at once (``unsubscribe``), and its close lets the last go; neither waits out
    the twin's 30 s holding one of its 32 slots."""
    import time

    from viz.async_commands import AsyncCommands
    from viz.view_subscription import ViewSubscription

    with running_twin("default", paused=True, **REDUCED) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command:
        meta = request(command, {"cmd": "meta"})["meta"]
        subs = ViewSubscription(AsyncCommands(twin.addresses.command))

        def live() -> list[list[str]]:
            return [s["fields"] for s in request(command, {"cmd": "subscriptions"})[
                "subscriptions"]]

        def until(condition, what: str) -> None:
            deadline = time.monotonic() + 10.0
            while not condition():
                assert time.monotonic() < deadline, what
                subs.poll(meta, colour)
                time.sleep(0.05)

        colour = "temp_compute_k"
        until(lambda: subs.topic is not None, "the first grant")
        assert [colour in fields for fields in live()] == [True]
        first = subs.topic
        colour = "soc_frac"
        until(lambda: subs.topic not in (None, first), "the second grant")
        until(lambda: [colour in fields for fields in live()] == [True],
              "the first subscription let go")
        subs.close()
        deadline = time.monotonic() + 10.0
        while live() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live() == [], "the viewer's close left its subscription running"
