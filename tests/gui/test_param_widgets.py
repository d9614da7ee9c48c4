"""Model settings as the user sees them: the same editors in the app and the napari plugin."""

from __future__ import annotations

from PySide6 import QtWidgets

from core.models.registry import get_entry
from core.models.spec import AUTO
from deblur_gui.param_widgets import param_editor, param_value, set_param_value
from deblur_gui.state import describe_params


def test_a_setting_whose_smallest_value_turns_it_off_reads_off(qtbot):
    p = get_entry("cyclegan").params["brightness_px"]
    w = param_editor(p, 8.0, qt=QtWidgets)
    qtbot.addWidget(w)
    assert param_value(w) == 8.0 and w.text() != "off"
    set_param_value(w, 0.0)
    assert w.text() == "off" and param_value(w) == 0.0          # off, not auto
    assert describe_params("comi", {"orientations": 2, "brightness_px": 0.0}) == \
        "views averaged 2, keep brightness off"
    assert describe_params("cyclegan", {"brightness_px": 8.0}) == "keep brightness above 8"
    # a whole-number setting too: Match the input at 0 steps reads "off", as its label says
    steps = param_editor(get_entry("comi").params["match_steps"], 0, qt=QtWidgets)
    qtbot.addWidget(steps)
    assert steps.text() == "off" and param_value(steps) == 0
    set_param_value(steps, 1)
    assert steps.text() == "1" and param_value(steps) == 1
    assert describe_params("comi", {"match_steps": 0}) == "match the input off"


def test_auto_settings_round_trip_and_edits_reach_the_callback(qtbot):
    p = get_entry("richardson-lucy").params["psf_radius"]
    seen = []
    w = param_editor(p, AUTO, lambda *_: seen.append(1), qt=QtWidgets)
    qtbot.addWidget(w)
    assert param_value(w) == AUTO and "auto" in w.text()
    set_param_value(w, 3.0)
    assert param_value(w) == 3.0 and seen
    for name, q in get_entry("ddpm").params.items():      # every kind of setting round-trips
        e = param_editor(q, q.default, qt=QtWidgets)
        qtbot.addWidget(e)
        assert param_value(e) == q.default, name
