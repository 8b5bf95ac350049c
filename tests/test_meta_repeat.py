"""A ``meta`` the twin republishes unchanged is taken without decoding its body again
(viz.meta_repeat): the viewer keeps the header it has, with the new framing, and rebuilds
nothing; a meta whose body changed, or with bad framing, is decoded (or refused) as before.
"""

from __future__ import annotations

import time

import msgpack
import pytest

from twin.protocol.codec import WireError
from viz.meta_repeat import MetaRepeats, split_framing


def _frames(seq: int, names: list[str], run_id: int = 7, t_utc: float = 100.0) -> list:
    """A meta as the twin frames it: the framing keys first, then the body."""
    header = {"v": 1, "seq": seq, "t_utc": t_utc, "run_id": run_id,
              "sats": {"n": len(names), "names": names}}
    return [b"meta", msgpack.packb(header, use_bin_type=True)]


def _decoded(frames: list):
    from twin.protocol.codec import decode

    return decode(frames)


def test_a_repeat_keeps_the_decoded_header_with_its_new_framing():
    repeats = MetaRepeats()
    first = _frames(1, ["a", "b"])
    message = _decoded(first)
    assert repeats.take(first) is None  # nothing remembered yet
    repeats.remember(message, first)
    again = repeats.take(_frames(1_000_000, ["a", "b"], t_utc=160.5))
    assert again is message and again.header["seq"] == 1_000_000
    assert again.header["t_utc"] == 160.5 and again.header["sats"]["names"] == ["a", "b"]
    # Another body, another run, another topic: not a repeat (decoded in full).
    assert repeats.take(_frames(3, ["a", "c"])) is None
    assert repeats.take(_frames(3, ["a", "b"], run_id=8)) is None
    assert repeats.take([b"state", _frames(3, ["a", "b"])[1]]) is None
    with pytest.raises(WireError, match="seq"):
        repeats.take(_frames(-4, ["a", "b"]))


def test_split_framing_needs_the_framing_first():
    framing, rest = split_framing(memoryview(_frames(5, ["x"])[1]))
    assert framing == {"v": 1, "seq": 5, "t_utc": 100.0, "run_id": 7}
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(bytes(rest))
    assert next(unpacker) == "sats"  # the next key starts the rest
    late = msgpack.packb({"sats": {}, "v": 1, "seq": 1, "t_utc": 0.0})
    assert split_framing(memoryview(late)) is None
    assert split_framing(memoryview(b"\xc1garbage")) is None


def test_a_viewer_takes_the_twins_repeated_meta_without_rebuilding():
    pv = pytest.importorskip("pyvista")
    from twinutil import running_twin

    from viz.stream import StreamClient
    from viz.viewer import ViewerApp, ViewOptions, prefer_egl

    prefer_egl()
    with running_twin("default", meta_interval_s=0.2) as twin:
        stream = StreamClient(twin.addresses.pub, stale_after_s=1.0)
        app = ViewerApp(pv.Plotter(off_screen=True, window_size=[320, 180]), stream, None,
                        ViewOptions(show_fps=False))
        try:
            assert app.wait_for_frame(30.0)
            meta, sats = app.meta, app.scene.sats
            seq, taken = meta["seq"], stream.received.get("meta", 0)
            deadline = time.monotonic() + 20.0
            while stream.received.get("meta", 0) < taken + 3 and time.monotonic() < deadline:
                app.tick(50.0)
            assert stream.received.get("meta", 0) >= taken + 3 and stream.bad.count == 0
            assert app.meta is meta and meta["seq"] > seq  # kept, framing updated
            assert app.scene.sats is sats  # nothing rebuilt
        finally:
            app.pl.close()
            stream.close()


def test_the_dashboard_does_not_read_a_repeated_meta_again():
    """``odc tui``'s model takes a repeat (the same header object) without reading its
    million names again; a meta decoded anew is read in full."""
    from viz.tui.model import FleetModel

    repeats = MetaRepeats()
    first = _frames(1, ["a", "b"])
    message = _decoded(first)
    repeats.remember(message, first)
    model = FleetModel()
    model.apply_meta(message)
    names = model.names
    again = repeats.take(_frames(2, ["a", "b"]))
    model.apply_meta(again)
    assert model.names is names  # not rebuilt
    model.apply_meta(_decoded(_frames(3, ["a", "c"])))
    assert model.names == ["a", "c"]
