"""The one keymap (viz/keymap.py): one meaning per key, and documented once."""

from pathlib import Path

import pytest

from viz import keymap

DOC = Path(__file__).resolve().parents[1] / "docs" / "viewers.md"


def test_the_viewers_doc_shows_the_keymap_as_it_is():
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index("<!-- keymap:start -->"), text.index("<!-- keymap:end -->")
    assert text[start:end].split("\n", 1)[1].strip() == keymap.markdown_table()


def test_no_key_has_two_meanings():
    keys = [key for entry in keymap.KEYMAP for key in entry.keys]
    assert len(keys) == len(set(keys))


def test_a_key_bound_twice_is_refused(monkeypatch):
    twice = (*keymap.KEYMAP, keymap._key("space", "space", "other", "x", keymap.BOTH, "x"))
    monkeypatch.setattr(keymap, "KEYMAP", twice)
    with pytest.raises(ValueError, match="'space' is bound to toggle_pause and other"):
        keymap._check_unique()


def test_both_viewers_offer_help_quit_and_the_twin_keys():
    for viewer in (keymap.TUI, keymap.VIEW):
        actions = keymap.action_keys(viewer)
        for action in ("help", "quit", "toggle_pause", "step", "warp_up", "warp_down",
                       "next_node", "previous_node", "next_view"):
            assert action in actions, (viewer, action)
    assert "ctrl+c" in keymap.action_keys(keymap.TUI)["quit"].keys


def test_vtk_names_for_the_punctuation_keys():
    assert keymap.vtk_keysym("full_stop") == "period"
    assert keymap.vtk_keysym("question_mark") == "question"
    assert keymap.vtk_keysym("right_square_bracket") == "bracketright"
    assert keymap.vtk_keysym("c") == "c"
