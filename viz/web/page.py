"""The 3D page's layout (trame): a status bar with the twin's controls over the remote view.

The image is the desktop viewer's scene with its HUD; the bar repeats what an operator
needs at a glance (connection, simulated time, running or paused, warp), the buttons
send the same commands as the keys, and the twin's answer to the last one (its error
when it refused) is shown beside them.
"""

from __future__ import annotations

from typing import Any

CSS = """
html, body { margin: 0; height: 100%; background: #000; overflow: hidden; }
#odc-root { position: fixed; inset: 0; display: flex; flex-direction: column;
  font: 14px/1.3 system-ui, sans-serif; color: #e6edf3; outline: none; }
.odc-bar { display: flex; align-items: center; gap: 10px; padding: 6px 10px;
  background: #0c181f; border-bottom: 1px solid #24404f; white-space: nowrap;
  overflow: hidden; }
.odc-bar a { color: #8cc8ff; text-decoration: none; font-weight: 600; }
.odc-pill { padding: 2px 8px; border-radius: 4px; font-weight: 600; background: #24404f; }
.odc-live { background: #1f6f3f; } .odc-stale { background: #8a2a1d; }
.odc-paused { background: #8a6d1d; }
.odc-bar button { background: #163040; color: #e6edf3; border: 1px solid #2f5468;
  border-radius: 4px; padding: 3px 10px; font: inherit; cursor: pointer; }
.odc-bar button:hover { background: #1f4257; }
.odc-bar kbd { color: #9fb3c8; font-size: 12px; margin-left: 4px; }
.odc-message { color: #f0c674; margin-left: 6px; flex: 1; min-width: 0;
  overflow: hidden; text-overflow: ellipsis; }
.odc-error { color: #ff8a7a; }
.odc-view { flex: 1; position: relative; min-height: 0; }
"""

# Keys anywhere on the page go to the view, as in the desktop window; only without a
# modifier (ctrl+r must still reload the page). Space would scroll the page.
KEY_SCRIPT = """
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
  if (event.key === " ") { event.preventDefault(); }
  if (window.trame) { window.trame.trigger("odc_key", [event.key]); }
});
"""


def _button(html: Any, label: str, key: str, browser_key: str) -> None:
    # mousedown.prevent: a click leaves the focus where it was, so a later space is the
    # pause key, not a second click of this button.
    with html.Button(click=f"trigger('odc_key', [{browser_key!r}])", title=label,
                     mousedown="$event.preventDefault()", classes="odc-button"):
        html.Span(label)
        html.Kbd(key)


def build(server: Any, view: Any) -> None:
    """Lay out the page and wire its keys and buttons to ``view`` (a ``WebView``)."""
    from trame.ui.html import DivLayout
    from trame.widgets import client, html
    from trame.widgets import vtk as vtk_widgets

    state = server.state
    state.trame__title = "ODC Twin — 3D view"
    for name in ("odc_connection", "odc_clock", "odc_warp", "odc_time", "odc_message",
                 "odc_refused", "odc_selected"):
        state[name] = ""
    state.odc_nodes = 0

    @server.trigger("odc_key")
    def on_key(key: str) -> None:
        if isinstance(key, str) and len(key) <= 16:  # a browser's key name, nothing else
            view.key(key)

    with DivLayout(server, template_name="main"):
        client.Style(CSS)
        client.Script(KEY_SCRIPT)
        with html.Div(id="odc-root"):
            with html.Div(classes="odc-bar"):
                html.A("ODC Twin", href="/", title="index")
                html.Span("{{ odc_connection || 'CONNECTING' }}", id="odc-connection",
                          classes=("'odc-pill ' + (odc_connection === 'LIVE' ? 'odc-live' "
                                   ": odc_connection === 'STALE' ? 'odc-stale' : '')",))
                html.Span("{{ odc_clock }}", id="odc-clock", v_show="odc_clock",
                          classes=("'odc-pill ' + (odc_clock === 'PAUSED' ? "
                                   "'odc-paused' : '')",))
                html.Span("{{ odc_warp }}", id="odc-warp")
                html.Span("{{ odc_time }}", id="odc-time")
                html.Span("{{ odc_nodes }} nodes", v_show="odc_nodes")
                html.Span("▸ {{ odc_selected }}", id="odc-selected", v_show="odc_selected",
                          title="the selected node: [ ] or a click to change")
                _button(html, "pause / resume", "space", " ")
                _button(html, "step", ".", ".")
                _button(html, "warp ÷2", "-", "-")
                _button(html, "warp ×2", "+", "+")
                _button(html, "keys", "?", "?")
                html.Span("{{ odc_refused || odc_message }}", id="odc-message",
                          title=("odc_refused || odc_message",),
                          classes=("'odc-message' + ((odc_refused || "
                                   "/: (?!ok)|error/.test(odc_message)) ? ' odc-error' : '')",))
            with html.Div(classes="odc-view"):
                # Half-size images while the camera turns (a quarter of the pixels to
                # render and encode), full size once it stops.
                view.remote_view = vtk_widgets.VtkRemoteView(
                    view.plotter.ren_win, ref="odc_view", interactive_ratio=0.5,
                    interactive_quality=70, still_quality=90,
                    picking_modes=("['click']",), click=(view.click, "[$event]"))
